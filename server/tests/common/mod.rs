//! Starts the reference server in process on 127.0.0.1:0, with helpers for
//! calling the contract over real HTTP.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN: &str = "test-admin-token";

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Which backend a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    Memory,
    Real,
}

/// The real stack's addresses from the environment (`scripts/services.sh
/// env`). Missing under CI is a failure; elsewhere the test is skipped.
pub fn real_stack() -> Option<[String; 3]> {
    let vars = ["REDIS_URL", "KAFKA_BROKERS", "POSTGRES_URL"].map(|v| std::env::var(v).ok());
    if let [Some(r), Some(k), Some(p)] = vars {
        return Some([r, k, p]);
    }
    if std::env::var_os("CI").is_some() {
        panic!("the real stack is required under CI: run `scripts/services.sh start` and export `scripts/services.sh env`");
    }
    eprintln!("skipped: no real stack (run scripts/services.sh start; eval \"$(scripts/services.sh env)\")");
    None
}

/// A fresh namespace, so tests sharing one stack never see each other.
pub fn namespace() -> String {
    format!("t{:012x}", rand::random::<u64>() >> 16)
}

/// The flags that put a server on the real stack in `namespace`.
pub fn real_flags(namespace: &str) -> Option<Vec<String>> {
    let [redis, kafka, pg] = real_stack()?;
    Some(
        [
            "--backend",
            "real",
            "--redis-url",
            &redis,
            "--kafka-brokers",
            &kafka,
            "--postgres-url",
            &pg,
            "--namespace",
            namespace,
            "--kafka-partitions",
            "2",
        ]
        .map(str::to_owned)
        .to_vec(),
    )
}

/// Starts a server on `stack` (`None`: real stack absent outside CI).
pub async fn start_on(stack: Stack, extra: &[&str]) -> Option<TestServer> {
    match stack {
        Stack::Memory => Some(start(extra).await),
        Stack::Real => {
            let flags = real_flags(&namespace())?;
            let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
            args.extend_from_slice(extra);
            Some(start(&args).await)
        }
    }
}

/// Runs one test body on both backends: `mod NAME { fn memory(); fn real(); }`.
#[macro_export]
macro_rules! on_both_stacks {
    ($name:ident, [$($arg:expr),*], |$s:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                let $s = common::start_on(common::Stack::Memory, &[$($arg),*]).await.unwrap();
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn real() {
                let Some($s) = common::start_on(common::Stack::Real, &[$($arg),*]).await else { return };
                $body
            }
        }
    };
}

/// Starts a server with extra command-line flags.
pub async fn start(extra: &[&str]) -> TestServer {
    let mut args = vec![
        "ticket-server",
        "--admin-token",
        ADMIN,
        "--listen",
        "127.0.0.1:0",
    ];
    if !extra.contains(&"--token-secret") {
        args.extend(["--token-secret", "test-secret"]);
    }
    args.extend_from_slice(extra);
    let config = ticket_server::Config::parse_from(args);
    let listener = TcpListener::bind(config.listen).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(ticket_server::run(config, listener, async {
        let _ = rx.await;
    }));
    // The real backend connects before it listens: wait until it answers.
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while probe
        .get(format!("{base}/actuator/health"))
        .send()
        .await
        .is_err()
    {
        assert!(!handle.is_finished(), "the server stopped while starting");
        assert!(
            Instant::now() < until,
            "the server did not start within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    TestServer {
        base,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestServer {
    /// A handle on a server started elsewhere (another process).
    pub fn external(base: &str) -> TestServer {
        TestServer {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(512)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            shutdown: None,
            handle: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap()
    }

    pub async fn create_event(&self, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url("/api/v1/admin/events"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    /// Creates an event and asserts it worked.
    pub async fn event(&self, id: &str, stock: u64, extra: Value) {
        let mut body = json!({"eventId": id, "stock": stock});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, v) = self.create_event(body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        split(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn enter(&self, event: &str, user: &str) -> Value {
        let r = self
            .client
            .post(self.url("/api/v1/queue/enter"))
            .json(&json!({"eventId": event, "userId": user}))
            .send()
            .await
            .unwrap();
        let (status, v) = split(r).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    pub async fn status(&self, token: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(self.url("/api/v1/queue/status"))
            .header("X-Queue-Token", token)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn reserve(
        &self,
        token: Option<&str>,
        event: &str,
        quantity: Value,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .post(self.url("/api/v1/tickets/reserve"))
            .json(&json!({"eventId": event, "quantity": quantity}));
        if let Some(t) = token {
            req = req.header("X-Queue-Token", t);
        }
        split(req.send().await.unwrap()).await
    }

    pub async fn event_state(&self, id: &str) -> Value {
        let (status, v) = self.get(&format!("/api/v1/events/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }
}

pub async fn split(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// Asserts the contract's error shape and code.
pub fn assert_error(got: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "body: {}", got.1);
    assert_eq!(got.1["error"], code, "body: {}", got.1);
    assert!(
        got.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {}",
        got.1
    );
}

/// Polls `check` until it returns `Some`, failing after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Outcome of one buyer in a race.
pub struct Outcome {
    pub user: String,
    pub status: StatusCode,
    pub body: Value,
}

/// `buyers` users enter (all admitted: the event's capacity must allow it),
/// then all reserve `quantity` at once, released by a barrier.
pub async fn race(server: &TestServer, event: &str, buyers: usize, quantity: u32) -> Vec<Outcome> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(buyers));
    let mut tasks = Vec::new();
    for i in 0..buyers {
        let client = server.client.clone();
        let base = server.base.clone();
        let barrier = barrier.clone();
        let event = event.to_owned();
        tasks.push(tokio::spawn(async move {
            let user = format!("buyer-{i}");
            let r = client
                .post(format!("{base}/api/v1/queue/enter"))
                .json(&json!({"eventId": event, "userId": user}))
                .send()
                .await
                .unwrap();
            let (status, entered) = split(r).await;
            assert_eq!(status, StatusCode::OK, "{entered}");
            assert_eq!(
                entered["status"], "ACTIVE",
                "all buyers must be admitted: {entered}"
            );
            let token = entered["token"].as_str().unwrap().to_owned();
            barrier.wait().await;
            let r = client
                .post(format!("{base}/api/v1/tickets/reserve"))
                .header("X-Queue-Token", token)
                .json(&json!({"eventId": event, "quantity": quantity}))
                .send()
                .await
                .unwrap();
            let (status, body) = split(r).await;
            Outcome { user, status, body }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// Reads SSE events from a streaming response.
pub struct SseReader {
    response: reqwest::Response,
    buf: String,
}

impl SseReader {
    pub async fn open(server: &TestServer, token: &str, last_event_id: Option<&str>) -> SseReader {
        let mut req = server
            .client
            .get(server.url(&format!("/api/v1/queue/stream?token={token}")));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseReader {
            response,
            buf: String::new(),
        }
    }

    /// The next event, `None` when the stream ended; fails after `deadline`.
    pub async fn next(&mut self, deadline: Duration) -> Option<Sse> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut ev = Sse {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev.event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        ev.data = serde_json::from_str(v).unwrap();
                    }
                }
                return Some(ev);
            }
            let chunk = tokio::time::timeout(deadline, self.response.chunk())
                .await
                .expect("no SSE event before the deadline")
                .unwrap()?;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}
