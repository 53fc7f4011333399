//! Test helpers: options for quick runs, and a fault-injecting proxy.
#![allow(dead_code)] // each test binary uses a different subset

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use verify::{CheckName, Options};

/// Default options, quiet, limited to `checks`.
pub fn options(checks: &[CheckName]) -> Options {
    let mut o = Options::defaults();
    o.quiet = true;
    o.checks = checks.to_vec();
    o
}

/// What the proxy does to every `every`-th reserve.
#[derive(Clone, Copy)]
pub enum Fault {
    /// Forward it, then answer 503 instead of the real answer: applied, but
    /// the client cannot know.
    AnswerLost,
    /// Answer 503 without forwarding: never applied.
    Dropped,
}

/// A reverse proxy on 127.0.0.1 in front of `upstream` that injects `fault`
/// into every `every`-th `POST /api/v1/tickets/reserve`. Returns its base URL.
pub async fn faulty_proxy(upstream: String, fault: Fault, every: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let client = reqwest::Client::new();
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (client, upstream, count) = (client.clone(), upstream.clone(), count.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (client, upstream, count) =
                        (client.clone(), upstream.clone(), count.clone());
                    async move {
                        Ok::<_, Infallible>(
                            forward(req, &client, &upstream, &count, fault, every).await,
                        )
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    base
}

async fn forward(
    req: Request<Incoming>,
    client: &reqwest::Client,
    upstream: &str,
    count: &AtomicUsize,
    fault: Fault,
    every: usize,
) -> Response<Full<Bytes>> {
    let faulty = req.uri().path() == "/api/v1/tickets/reserve"
        && count.fetch_add(1, Ordering::Relaxed) % every == every - 1;
    if faulty && matches!(fault, Fault::Dropped) {
        return unavailable();
    }
    let url = format!(
        "{upstream}{}",
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut out = client.request(req.method().clone(), url);
    for (name, value) in req.headers() {
        if name != hyper::header::HOST {
            out = out.header(name, value);
        }
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let answer = out.body(body).send().await.unwrap();
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    let bytes = answer.bytes().await.unwrap();
    if faulty {
        return unavailable();
    }
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert("content-type", ct);
    }
    response
}

fn unavailable() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(
        br#"{"error":"UNAVAILABLE","message":"injected by the test proxy"}"#,
    )));
    *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
    r
}
