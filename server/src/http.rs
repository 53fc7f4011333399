//! The HTTP layer: accept loop with graceful shutdown, the one dispatch
//! point, and the helpers every route uses (bodies, tokens, JSON replies).

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::backend::Backend;
use crate::config::AbuseLimits;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::now_unix;
use crate::ratelimit::RateLimiter;
use crate::routes;
use crate::token::{Claims, TokenError, TokenSigner};
use crate::validate::MAX_BODY_BYTES;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Everything a request handler needs, shared by all connections.
pub struct App {
    pub backend: Backend,
    pub signer: TokenSigner,
    admin_token_digest: [u8; 32],
    pub metrics: Metrics,
    pub sse_heartbeat: Duration,
    /// Flips to true when shutdown starts, so long-lived SSE streams end.
    pub stopping: watch::Receiver<bool>,
    rate_limiter: Option<RateLimiter>,
    user_rate_limiter: Option<RateLimiter<String>>,
    pub limits: AbuseLimits,
    /// Open SSE streams, in total and per token (see `sse_slot`).
    sse_streams: Arc<Mutex<SseCounts>>,
    /// Negative control: SSE streams show positions that go up.
    pub unsafe_sse: bool,
}

impl App {
    pub fn new(
        backend: Backend,
        signer: TokenSigner,
        admin_token: &str,
        sse_heartbeat: Duration,
        limits: AbuseLimits,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        let mut metrics = Metrics::new();
        backend.register_metrics(&mut metrics.registry);
        App {
            backend,
            signer,
            admin_token_digest: Sha256::digest(admin_token.as_bytes()).into(),
            metrics,
            sse_heartbeat,
            stopping,
            rate_limiter: RateLimiter::new(limits.rate_limit_rps),
            user_rate_limiter: RateLimiter::new(limits.user_rate_limit_rps),
            limits,
            sse_streams: Arc::default(),
            unsafe_sse: false,
        }
    }

    /// Handles one request: rate limit, dispatch, map errors, record metrics.
    pub async fn handle(&self, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
        let start = Instant::now();
        let (route, result) = self.dispatch(req, peer).await;
        let response = result.unwrap_or_else(|e| error_response(&e));
        self.metrics
            .observe_request(route, response.status().as_u16(), start.elapsed());
        response
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        peer: IpAddr,
    ) -> (&'static str, Result<Response<Body>>) {
        let Some((route, method)) = routes::Route::resolve(req.uri().path()) else {
            return ("unmatched", Err(Error::not_found("no such route")));
        };
        let label = route.label();
        if req.method() != method {
            // RFC 9110 15.5.6: a 405 names the methods the route takes.
            let mut refused = error_response(&Error::MethodNotAllowed);
            refused.headers_mut().insert(
                ALLOW,
                HeaderValue::from_str(method.as_str()).expect("a method is a valid header"),
            );
            return (label, Ok(refused));
        }
        if route.rate_limited() {
            if let Some(limiter) = &self.rate_limiter {
                if let Err(retry_after_secs) = limiter.check(&peer) {
                    return (label, Err(Error::RateLimited { retry_after_secs }));
                }
            }
        }
        (label, route.call(self, req).await)
    }

    /// The request body, within the body read timeout.
    pub async fn read_body(&self, req: Request<Incoming>) -> Result<Bytes> {
        read_body_within(req, Duration::from_millis(self.limits.body_read_timeout_ms)).await
    }

    /// The per-user rate limit (429 with `Retry-After`), checked once the
    /// handler knows the user and before it changes anything.
    pub fn check_user_rate(&self, user_id: &str) -> Result<()> {
        match &self.user_rate_limiter {
            Some(limiter) => limiter
                .check(&user_id.to_owned())
                .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs }),
            None => Ok(()),
        }
    }

    /// A place for one more SSE stream of `token`, held until the guard
    /// drops with the stream: 429 over the per-token cap, 503 over the
    /// total one.
    pub fn sse_slot(&self, token: &str) -> Result<SseSlot> {
        let mut counts = self.sse_streams.lock().expect("sse counts lock poisoned");
        let total_cap = self.limits.max_sse_streams;
        if total_cap > 0 && counts.total >= total_cap {
            return Err(Error::Unavailable(
                "an SSE stream (the server's cap is reached)",
            ));
        }
        let per_token = counts.per_token.entry(token.to_owned()).or_insert(0);
        let token_cap = self.limits.max_sse_per_token;
        if token_cap > 0 && *per_token >= token_cap {
            return Err(Error::RateLimited {
                retry_after_secs: 1,
            });
        }
        *per_token += 1;
        counts.total += 1;
        Ok(SseSlot {
            counts: self.sse_streams.clone(),
            token: token.to_owned(),
        })
    }

    /// SSE streams open now.
    pub fn sse_open(&self) -> usize {
        self.sse_streams
            .lock()
            .expect("sse counts lock poisoned")
            .total
    }

    /// Checks `Authorization: Bearer <admin token>` in constant time.
    pub fn require_admin<B>(&self, req: &Request<B>) -> Result<()> {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Error::Unauthorized("admin bearer token missing"))?;
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.admin_token_digest)) {
            Ok(())
        } else {
            Err(Error::Unauthorized("admin bearer token is wrong"))
        }
    }

    /// The queue token from `X-Queue-Token` or, where allowed, `?token=`.
    pub fn queue_claims<B>(&self, req: &Request<B>, allow_query: bool) -> Result<Claims> {
        let header = req
            .headers()
            .get("x-queue-token")
            .map(|v| {
                v.to_str()
                    .map_err(|_| Error::Unauthorized("queue token is malformed"))
            })
            .transpose()?;
        let token = match header {
            Some(t) => Cow::Borrowed(t),
            None if allow_query => query_param(req.uri().query(), "token")
                .ok_or(Error::Unauthorized("queue token missing"))?,
            None => return Err(Error::Unauthorized("queue token missing (X-Queue-Token)")),
        };
        let claims = self.signer.verify(&token, now_unix()).map_err(|e| {
            Error::Unauthorized(match e {
                TokenError::Malformed => "queue token is malformed",
                TokenError::BadSignature => "queue token signature is invalid",
                TokenError::Expired => "queue token has expired",
            })
        })?;
        self.check_user_rate(&claims.user_id)?;
        Ok(claims)
    }
}

#[derive(Default)]
struct SseCounts {
    total: usize,
    per_token: HashMap<String, usize>,
}

/// One open SSE stream; dropping it (the stream ended or the client left)
/// frees its place.
pub struct SseSlot {
    counts: Arc<Mutex<SseCounts>>,
    token: String,
}

impl Drop for SseSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("sse counts lock poisoned");
        counts.total -= 1;
        if let Some(n) = counts.per_token.get_mut(&self.token) {
            *n -= 1;
            if *n == 0 {
                counts.per_token.remove(&self.token);
            }
        }
    }
}

/// The value of `name` in a query string, percent-decoded (a client may
/// send an id's `:` as `%3A`). Not UTF-8 once decoded: kept raw, so the id
/// check refuses its `%`.
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<Cow<'a, str>> {
    let raw = query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)?;
    Some(
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .unwrap_or(Cow::Borrowed(raw)),
    )
}

/// Reads a request body, refusing more than 16 KiB before parsing anything,
/// and a body not received whole within `timeout` (slow senders).
pub async fn read_body_within(req: Request<Incoming>, timeout: Duration) -> Result<Bytes> {
    if timeout.is_zero() {
        return read_body(req).await;
    }
    tokio::time::timeout(timeout, read_body(req))
        .await
        .map_err(|_| {
            Error::bad_request(format!(
                "the request body was not received within {} ms",
                timeout.as_millis()
            ))
        })?
}

/// Reads a request body, refusing more than 16 KiB before parsing anything.
pub async fn read_body(req: Request<Incoming>) -> Result<Bytes> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(Error::PayloadTooLarge);
    }
    match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::PayloadTooLarge),
        Err(_) => Err(Error::bad_request("could not read the request body")),
    }
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>> {
    let body = serde_json::to_vec(value).map_err(|e| Error::Internal(Box::new(e)))?;
    Ok(Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(full(body))
        .expect("static headers are valid"))
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

/// The contract's error shape. Internal errors are logged here and sent
/// without detail.
pub fn error_response(err: &Error) -> Response<Body> {
    let message = match err {
        Error::Internal(source) => {
            tracing::error!(error = %source, "internal error");
            "internal error".to_owned()
        }
        other => other.to_string(),
    };
    let body = serde_json::to_vec(&ErrorBody {
        error: err.code(),
        message,
    })
    .unwrap_or_default();
    let mut response = Response::builder()
        .status(err.status())
        .header(CONTENT_TYPE, "application/json")
        .body(full(body))
        .expect("static headers are valid");
    if let Error::RateLimited { retry_after_secs } = err {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
    }
    response
}

/// Accepts connections until `shutdown` resolves, then stops accepting,
/// ends SSE streams and waits up to `drain` for in-flight requests.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    stop_streams: watch::Sender<bool>,
    drain: Duration,
) {
    let limits = app.limits.clone();
    let header_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    // HTTP/1.1 only: the contract (SSE included) is HTTP/1.1, and hyper's
    // header timeout and head size limit guard HTTP/1 connections only; a
    // client that opened HTTP/2 with prior knowledge and then went quiet
    // would be held until the connection cap.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper starts this when a connection waits for a request head: it
        // cuts slow-header clients and idle keep-alive connections alike.
        .header_read_timeout((!header_timeout.is_zero()).then_some(header_timeout))
        .max_buf_size(limits.max_header_bytes as usize);
    let connections = (limits.max_connections > 0)
        .then(|| Arc::new(tokio::sync::Semaphore::new(limits.max_connections)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let permit = match &connections {
                    None => None,
                    Some(sem) => match sem.clone().try_acquire_owned() {
                        Ok(permit) => Some(permit),
                        Err(_) => {
                            tokio::spawn(refuse_connection(stream));
                            continue;
                        }
                    },
                };
                let app = app.clone();
                let peer_ip = peer.ip();
                let service = service_fn(move |req| {
                    let app = app.clone();
                    // Boxed: the handler's state machine is ~3 KiB, and hyper
                    // would otherwise move it by value on every request.
                    Box::pin(async move { Ok::<_, Infallible>(app.handle(req, peer_ip).await) })
                });
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let mut stopping = stop_streams.subscribe();
                tokio::spawn(async move {
                    // hyper's header timer starts once the protocol is known;
                    // a client that sends no byte at all is cut here. The
                    // watcher counts as an open connection, so shutdown must
                    // not wait out this timeout for a client still silent.
                    if !header_timeout.is_zero() {
                        let mut byte = [0u8; 1];
                        tokio::select! {
                            first = tokio::time::timeout(header_timeout, stream.peek(&mut byte)) => {
                                match first {
                                    Ok(Ok(n)) if n > 0 => {}
                                    _ => return,
                                }
                            }
                            _ = stopping.wait_for(|stop| *stop) => return,
                        }
                    }
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn).await {
                        debug!(error = %e, %peer, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    info!("shutting down: no longer accepting, draining in-flight requests");
    let _ = stop_streams.send(true);
    tokio::select! {
        () = graceful.shutdown() => info!("all connections drained"),
        () = tokio::time::sleep(drain) => warn!(?drain, "drain deadline passed; closing remaining connections"),
    }
}

/// Answers a connection over the cap with 503 and closes it, instead of
/// leaving the client waiting in the backlog.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BODY: &str =
        r#"{"error":"UNAVAILABLE","message":"too many connections; nothing was applied"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}

/// The address a listener ended up on, for logs and for tests.
pub fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}
