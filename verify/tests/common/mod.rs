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

/// Runs the `verify` binary with `--quiet --out OUT ARGS` (and none of its
/// environment variables); returns its exit status and stdout then stderr.
pub fn verify_bin(args: &[&str], out: &std::path::Path) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_verify"))
        .args(["--quiet", "--out"])
        .arg(out)
        .args(args)
        .env_remove("VERIFY_TARGET")
        .env_remove("ADMIN_TOKEN")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
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
    let response = relay(req, client, upstream).await;
    if faulty {
        return unavailable();
    }
    response
}

/// A flash-sale-only server, as many teams' servers are: the reference
/// server's events, queue and tickets behind a proxy on 127.0.0.1 that
/// answers 404 `NOT_FOUND` (an unknown path, per the contract) for every
/// route of the concert seat map. The proxy reads whole answers, so it
/// carries no SSE stream: run against it with `--poll`. Returns its base URL.
pub async fn flash_sale_only(upstream: String) -> String {
    let client = reqwest::Client::new();
    fake::serve(move |req| {
        let (client, upstream) = (client.clone(), upstream.clone());
        async move {
            let path = req.uri().path();
            let seat_map = [
                "/api/v1/admin/concerts",
                "/api/v1/concerts/",
                "/api/v1/payments",
                "/api/v1/points",
            ]
            .iter()
            .any(|p| path.starts_with(p));
            if seat_map {
                return fake::json(
                    StatusCode::NOT_FOUND,
                    r#"{"error":"NOT_FOUND","message":"no such path"}"#,
                );
            }
            relay(req, &client, &upstream).await
        }
    })
    .await
}

/// Sends `req` on to `upstream` and returns its whole answer.
async fn relay(
    req: Request<fake::Bytes>,
    client: &reqwest::Client,
    upstream: &str,
) -> Response<fake::Bytes> {
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
