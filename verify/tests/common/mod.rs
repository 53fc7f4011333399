//! Test helpers: the reference server as verify's target, options for
//! quick runs, and a fault-injecting proxy.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use testkit::fake::{self, Request, Response, StatusCode};
use testkit::{start, Backend, TestServer};
use verify::{CheckName, Options, Target};

/// The reference server in process on `backend`, with extra flags;
/// `--hold-ttl` defaults to check 6's default TTL.
pub async fn reference(backend: &Backend, args: &[&str]) -> TestServer {
    let ttl = format!("{}ms", verify::DEFAULT_HOLD_TTL_MS);
    let mut args = args.to_vec();
    if !args.contains(&"--hold-ttl") {
        args.extend(["--hold-ttl", &ttl]);
    }
    start(backend, &args).await
}

/// The reference server in process on the embedded backend, and verify's
/// target for it.
pub async fn embedded(args: &[&str]) -> (TestServer, Target) {
    let server = reference(&Backend::Memory, args).await;
    let target = Target::external(&server.base, Some(&server.admin_token)).unwrap();
    (server, target)
}

/// Default options, quiet, limited to `checks`.
pub fn options(checks: &[CheckName]) -> Options {
    let mut o = Options::defaults();
    o.quiet = true;
    o.checks = checks.to_vec();
    o
}

/// `(N, P)` from an over-selling check's summary or headline, "... N
/// purchases succeeded, P possible (...)": how many buyers got an item and
/// how many could have. Panics when the text carries no such count.
pub fn purchases(summary: &str) -> (u64, u64) {
    let (before, after) = summary
        .split_once(" purchases succeeded, ")
        .unwrap_or_else(|| panic!("no purchase count in {summary:?}"));
    let n = before.rsplit(' ').next().unwrap();
    let p = after.split(' ').next().unwrap();
    let parse = |x: &str| {
        x.parse::<u64>()
            .unwrap_or_else(|_| panic!("{x:?} is not a count in {summary:?}"))
    };
    (parse(n), parse(p))
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
    let client = reqwest::Client::new();
    let count = Arc::new(AtomicUsize::new(0));
    fake::serve(move |req| {
        let (client, upstream, count) = (client.clone(), upstream.clone(), count.clone());
        async move { forward(req, &client, &upstream, &count, fault, every).await }
    })
    .await
}

async fn forward(
    req: Request<fake::Bytes>,
    client: &reqwest::Client,
    upstream: &str,
    count: &AtomicUsize,
    fault: Fault,
    every: usize,
) -> Response<fake::Bytes> {
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
        if name != fake::header::HOST {
            out = out.header(name, value);
        }
    }
    let answer = out.body(req.into_body()).send().await.unwrap();
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    let bytes = answer.bytes().await.unwrap();
    if faulty {
        return unavailable();
    }
    let mut response = Response::new(bytes);
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert("content-type", ct);
    }
    response
}

fn unavailable() -> Response<fake::Bytes> {
    fake::json(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"error":"UNAVAILABLE","message":"injected by the test proxy"}"#,
    )
}
