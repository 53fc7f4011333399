//! The reference server in process on 127.0.0.1 and a free port, and
//! calls of the contract over real HTTP.

use std::time::Duration;

use clap::Parser;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::http::{call, eventually};
use crate::stack::{real_stack, RealStack};

/// The admin token of servers started here, unless the flags give one.
pub const ADMIN: &str = "test-admin-token";
/// The token secret of servers started here, unless the flags give one:
/// instances on one stack accept each other's tokens.
pub const SECRET: &str = "test-secret";

/// How long a server may take to answer its health with 200.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Where a test server keeps its state.
#[derive(Debug, Clone)]
pub enum Backend {
    Memory,
    /// The real stack, in the stack's namespace (instances started with
    /// one `Backend` share their state).
    Real(RealStack),
}

impl Backend {
    /// The real stack in a fresh namespace; `None` (a skip) or a failure
    /// under CI when it is absent, by [`real_stack`]'s rule.
    pub fn real() -> Option<Backend> {
        real_stack().map(Backend::Real)
    }

    /// The `ticket-server` flags that select this backend.
    pub fn flags(&self) -> Vec<String> {
        match self {
            Backend::Memory => Vec::new(),
            Backend::Real(stack) => stack.flags(),
        }
    }
}

/// A reference server started by [`start`] (or one running elsewhere).
pub struct TestServer {
    pub base: String,
    pub admin_token: String,
    pub client: reqwest::Client,
    running: Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
}

/// The value after `flag` in `args`.
fn given<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| *a == flag)?;
    args.get(i + 1).copied()
}

/// The request rate limits, which are on by default (10 a second per IP
/// and per user): tests drive many users from 127.0.0.1 faster than that.
pub const RATE_LIMITS: [&str; 2] = ["--rate-limit-rps", "--user-rate-limit-rps"];

/// Starts the reference server in this process on `backend`, with extra
/// `ticket-server` flags (`--admin-token` and `--token-secret` default to
/// [`ADMIN`] and [`SECRET`]; each of the [`RATE_LIMITS`] to 0, off), and
/// returns once its health answers 200.
pub async fn start(backend: &Backend, args: &[&str]) -> TestServer {
    launch(backend, args, true).await
}

/// [`start`] with the server's own defaults for the rate limits (on, as
/// deployed) unless `args` set them.
pub async fn start_with_default_limits(backend: &Backend, args: &[&str]) -> TestServer {
    launch(backend, args, false).await
}

async fn launch(backend: &Backend, args: &[&str], limits_off: bool) -> TestServer {
    let flags = backend.flags();
    let admin_token = given(args, "--admin-token").unwrap_or(ADMIN);
    let mut all = vec!["ticket-server", "--listen", "127.0.0.1:0"];
    all.extend(flags.iter().map(String::as_str));
    if given(args, "--admin-token").is_none() {
        all.extend(["--admin-token", ADMIN]);
    }
    if given(args, "--token-secret").is_none() {
        all.extend(["--token-secret", SECRET]);
    }
    for limit in RATE_LIMITS {
        if limits_off && given(args, limit).is_none() {
            all.extend([limit, "0"]);
        }
    }
    all.extend_from_slice(args);
    let config = ticket_server::Config::try_parse_from(&all)
        .unwrap_or_else(|e| panic!("ticket-server flags {all:?}: {e}"));
    let listener = TcpListener::bind(config.listen).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(ticket_server::run(config, listener, async {
        let _ = stopped.await;
    }));
    // The real backend connects to its stack before it serves: wait until
    // its health says up.
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let health = format!("{base}/actuator/health");
    let up = eventually(
        START_DEADLINE,
        "the server's health to answer 200",
        || async {
            if handle.is_finished() {
                return Some(false);
            }
            let answer = probe.get(&health).send().await;
            answer
                .is_ok_and(|r| r.status() == StatusCode::OK)
                .then_some(true)
        },
    )
    .await;
    if !up {
        panic!("the server stopped while starting: {:?}", handle.await);
    }
    let mut server = TestServer::external(&base);
    server.admin_token = admin_token.to_owned();
    server.running = Some((stop, handle));
    server
}

impl TestServer {
    /// A handle on a server started elsewhere (another process) with the
    /// admin token [`ADMIN`].
    pub fn external(base: &str) -> TestServer {
        TestServer {
            base: base.to_owned(),
            admin_token: ADMIN.to_owned(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(512)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            running: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Signals shutdown and waits for `run` to return (at once for an
    /// external server).
    pub async fn stop(self) -> anyhow::Result<()> {
        let Some((stop, handle)) = self.running else {
            return Ok(());
        };
        let _ = stop.send(());
        handle.await.expect("the server task panicked")
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        call(self.client.post(self.url(path)).json(&body)).await
    }

    /// `POST path` with a JSON body and, if any, a queue token.
    pub async fn post_with_token(
        &self,
        token: Option<&str>,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut req = self.client.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.header("X-Queue-Token", t);
        }
        call(req).await
    }

    /// `POST path` with a JSON body and the admin token.
    pub async fn admin_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let req = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.admin_token);
        call(req.json(&body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        call(self.client.get(self.url(path))).await
    }

    pub async fn create_event(&self, body: Value) -> (StatusCode, Value) {
        self.admin_post("/api/v1/admin/events", body).await
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

    /// Enters the queue and asserts it worked.
    pub async fn enter(&self, event: &str, user: &str) -> Value {
        let body = json!({"eventId": event, "userId": user});
        let (status, v) = self.post("/api/v1/queue/enter", body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// Enters the queue (asserted to work) and returns the queue token,
    /// whatever the status.
    pub async fn token(&self, event: &str, user: &str) -> String {
        let entered = self.enter(event, user).await;
        entered["token"].as_str().unwrap().to_owned()
    }

    /// Users `u0`, `u1`, ... `u{n-1}` enter one after another; their
    /// tokens, in that order.
    pub async fn tokens(&self, event: &str, n: usize) -> Vec<String> {
        let mut tokens = Vec::with_capacity(n);
        for i in 0..n {
            tokens.push(self.token(event, &format!("u{i}")).await);
        }
        tokens
    }

    pub async fn status(&self, token: &str) -> (StatusCode, Value) {
        let req = self.client.get(self.url("/api/v1/queue/status"));
        call(req.header("X-Queue-Token", token)).await
    }

    pub async fn reserve(
        &self,
        token: Option<&str>,
        event: &str,
        quantity: Value,
    ) -> (StatusCode, Value) {
        let body = json!({"eventId": event, "quantity": quantity});
        self.post_with_token(token, "/api/v1/tickets/reserve", body)
            .await
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let r = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    }

    /// The event's state, asserted readable.
    pub async fn event_state(&self, id: &str) -> Value {
        let (status, v) = self.get(&format!("/api/v1/events/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }
}
