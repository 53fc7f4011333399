//! Stand-in HTTP servers on 127.0.0.1 (a proxy that injects faults, a
//! server that stalls): a handler answers each request, its body read.

use std::future::Future;

use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

pub use bytes::Bytes;
pub use hyper::{header, Request, Response, StatusCode};

/// Serves `handler` on 127.0.0.1 and a free port, HTTP/1 and HTTP/2, until
/// the runtime ends. Returns the base URL.
pub async fn serve<F, Fut>(handler: F) -> String
where
    F: Fn(Request<Bytes>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Bytes>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await?.to_bytes();
                    let response = handler(Request::from_parts(parts, body)).await;
                    Ok::<_, hyper::Error>(response.map(Full::new))
                }
            });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    base
}

/// A response with `status` and a JSON `body`.
pub fn json(status: StatusCode, body: &'static str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from_static(body.as_bytes()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// What the stand-in servers answer: enough of the contract for loadgen's
/// set-up (an event, sample purchases) and its browse scenario's reads.
pub fn contract_reply(path: &str) -> Response<Bytes> {
    let status = if path == "/api/v1/admin/events" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json(
        status,
        r#"{"token":"t","status":"ACTIVE","reservationId":"r1","eventId":"e","stock":1}"#,
    )
}

/// A stand-in whose reads (every GET) each take `delay` before answering,
/// whatever the load (they wait side by side): a known added delay to
/// check a load generator's latencies and rate against. Set-up calls
/// answer at once. Returns the base URL.
pub async fn delayed(delay: std::time::Duration) -> String {
    serve(move |req| async move {
        if req.method() == hyper::Method::GET {
            tokio::time::sleep(delay).await;
        }
        contract_reply(req.uri().path())
    })
    .await
}
