//! The scenarios goose runs, one module each, and what they share: the run
//! context (hosts, events, recorder, pacer) and one way to make a request,
//! timed by our own recorder: through each user's own hyper connection, or
//! with `--goose-metrics` through goose's client so goose counts it too.

pub mod browse;
mod conn;
pub mod flash_sale;
pub mod hold_and_pay;
pub mod mixed;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::goose::{GooseMethod, GooseRequest, GooseUser, Scenario, Transaction, TransactionError};
use serde_json::Value;
use tokio::sync::Mutex;

use self::conn::Conn;

use crate::pacing::{Pacer, Slot};
use crate::record::Recorder;
use crate::setup::Prepared;

/// Which scenario a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Enter the queue, wait for ACTIVE (SSE or polling), reserve one item.
    FlashSale,
    /// Read events and reservations.
    Browse,
    /// One purchase in five, reads otherwise.
    Mixed,
    /// The concert seat map: charge points, enter, hold a random free
    /// seat, pay (some users abandon the hold instead).
    HoldAndPay,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::FlashSale => "flash_sale",
            Kind::Browse => "browse",
            Kind::Mixed => "mixed",
            Kind::HoldAndPay => "hold_and_pay",
        }
    }

    /// Fraction of iterations that buy (sizes the events' stock).
    pub fn purchase_share(self) -> f64 {
        match self {
            Kind::FlashSale => 1.0,
            Kind::Browse => 0.0,
            Kind::Mixed => mixed::PURCHASE_SHARE,
            Kind::HoldAndPay => 1.0,
        }
    }
}

/// How a waiting buyer learns it was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wait {
    /// `GET /api/v1/queue/stream` until `event: active`.
    Sse,
    /// `GET /api/v1/queue/status` every 20 ms.
    Poll,
}

/// Everything a goose user of this run can see.
pub struct Ctx {
    pub kind: Kind,
    pub hosts: Vec<String>,
    pub prepared: Prepared,
    pub recorder: Arc<Recorder>,
    /// Open model; `None` is the closed model (iterations start until the
    /// measured window closes).
    pub pacer: Option<Pacer>,
    pub wait: Wait,
    /// Unique per run and process, so users never collide across processes.
    pub user_prefix: String,
    pub next_user: AtomicU64,
    /// Under faults (`loadgen job --faults`): what each request met, when.
    pub timeline: Option<Arc<crate::faults::Timeline>>,
    /// Requests go through goose's client (`--goose-metrics`: goose then
    /// counts them) instead of each user's own connection.
    pub via_goose: bool,
}

impl Ctx {
    pub fn next_user_id(&self) -> String {
        let n = self.next_user.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.user_prefix)
    }

    /// Waits for the next iteration's start. `None` when the run has no
    /// more iterations for this user (it then idles until goose stops it).
    /// The first call opens the measured window.
    pub async fn begin(&self) -> Option<Slot> {
        let (start, end) = self.recorder.open_window();
        let slot = match &self.pacer {
            Some(pacer) => pacer.next_slot(start).await,
            None if Instant::now() < end => Some(Slot {
                intended: Instant::now(),
                lag: Duration::ZERO,
            }),
            None => None,
        };
        if slot.is_some() {
            self.recorder.iteration_started();
        } else {
            // Idle in short naps so goose's stop is seen quickly.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slot
    }

    /// Records one whole iteration under the scenario's own name.
    pub fn finish(&self, slot: &Slot, started: Instant, ok: bool) {
        let raw = started.elapsed();
        self.recorder
            .record(self.kind.name(), raw, raw + slot.lag, ok);
        if let (Some(timeline), true) = (&self.timeline, ok) {
            timeline.served();
        }
    }
}

/// What a user was given at start: its host's index, and its own
/// connection to that host (locked by that user alone).
#[derive(Clone)]
struct Session {
    host: usize,
    conn: Arc<Mutex<Conn>>,
}

/// A request's outcome: status (0 when none came back) and body (parsed
/// only when a field is asked for: most replies are only counted).
pub struct Reply {
    pub status: u16,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The JSON body (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A string field of the JSON body.
    pub fn field(&self, field: &str) -> Option<String> {
        self.json().get(field)?.as_str().map(str::to_owned)
    }
}

/// One request of an iteration.
pub struct Req<'a> {
    /// Its transaction name (goose's and ours).
    pub name: &'static str,
    pub method: GooseMethod,
    pub path: &'a str,
    pub body: Option<&'a Value>,
    pub token: Option<&'a str>,
    /// `Idempotency-Key` header (payments).
    pub key: Option<&'a str>,
    /// How late the iteration started (only its first request carries it,
    /// so each late start counts once).
    pub lag: Duration,
}

/// One request, seen by goose (under `name`) and recorded by us: raw from
/// send to the end of the body, corrected with `lag`.
pub async fn call(
    user: &mut GooseUser,
    ctx: &Ctx,
    req: Req<'_>,
) -> Result<Reply, Box<TransactionError>> {
    let Req {
        name,
        method,
        path,
        body,
        token,
        key,
        lag,
    } = req;
    if !ctx.via_goose {
        let (reply, raw) = own_connection(user, method, path, body, token, key).await?;
        return Ok(finish_call(ctx, name, raw, lag, reply));
    }
    let mut builder = user.get_request_builder(&method, path)?;
    if let Some(body) = body {
        builder = builder.json(body);
    }
    if let Some(token) = token {
        builder = builder.header("X-Queue-Token", token);
    }
    if let Some(key) = key {
        builder = builder.header("Idempotency-Key", key);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .set_request_builder(builder)
        .build();
    let started = Instant::now();
    let response = user.request(request).await?;
    let reply = match response.response {
        Ok(r) => {
            let status = r.status().as_u16();
            Reply {
                status,
                body: r.bytes().await.unwrap_or_default(),
            }
        }
        Err(_) => Reply {
            status: 0,
            body: bytes::Bytes::new(),
        },
    };
    Ok(finish_call(ctx, name, started.elapsed(), lag, reply))
}

/// One request over the user's own connection: its reply and how long it
/// took, from before the send to the end of the body.
async fn own_connection(
    user: &GooseUser,
    method: GooseMethod,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
    key: Option<&str>,
) -> Result<(Reply, Duration), Box<TransactionError>> {
    let conn = match user.get_session_data::<Session>() {
        Some(session) => Arc::clone(&session.conn),
        None => return Err(Box::new("a user without a connection".into())),
    };
    let mut headers = Vec::new();
    if let Some(token) = token {
        headers.push(("X-Queue-Token", token));
    }
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    let json = body.map(|b| serde_json::to_vec(b).expect("a JSON value serialises"));
    let method = match method {
        GooseMethod::Get => hyper::Method::GET,
        GooseMethod::Post => hyper::Method::POST,
        GooseMethod::Put => hyper::Method::PUT,
        GooseMethod::Delete => hyper::Method::DELETE,
        GooseMethod::Patch => hyper::Method::PATCH,
        GooseMethod::Head => hyper::Method::HEAD,
        GooseMethod::Custom => return Err(Box::new("no scenario sends a custom method".into())),
    };
    let started = Instant::now();
    let mut conn = conn.lock().await;
    let sent = tokio::time::timeout(
        conn::REQUEST_TIMEOUT,
        conn.send(method, path, &headers, json),
    )
    .await;
    let reply = match sent {
        Ok(Ok((status, body))) => Reply { status, body },
        // A request that failed or timed out came back with nothing.
        _ => Reply {
            status: 0,
            body: bytes::Bytes::new(),
        },
    };
    Ok((reply, started.elapsed()))
}

/// Records one request that took `raw`, corrected with `lag`.
fn finish_call(ctx: &Ctx, name: &'static str, raw: Duration, lag: Duration, reply: Reply) -> Reply {
    ctx.recorder.record(name, raw, raw + lag, reply.ok());
    if let Some(timeline) = &ctx.timeline {
        timeline.request(reply.status);
    }
    if reply.status == 429 {
        ctx.recorder.rate_limited();
    }
    reply
}

/// The transaction every scenario starts a user with: pick its host,
/// round-robin over `--host`.
fn pick_host(ctx: Arc<Ctx>) -> Transaction {
    Transaction::new(Arc::new(move |user: &mut GooseUser| {
        let ctx = Arc::clone(&ctx);
        Box::pin(async move {
            let index = user.weighted_users_index % ctx.hosts.len();
            user.set_base_url(&ctx.hosts[index])?;
            let conn = Conn::new(&ctx.hosts[index])
                .map_err(|e| Box::new(TransactionError::Custom(format!("{e:#}"))))?;
            user.set_session_data(Session {
                host: index,
                conn: Arc::new(Mutex::new(conn)),
            });
            Ok(())
        })
    }))
    .set_name("pick_host")
    .set_on_start()
}

/// Refuses a `--host` the users' connections cannot reach (not a plain
/// `http://` URL with a host), before anything is sent.
pub fn check_host(url: &str) -> anyhow::Result<()> {
    Conn::new(url).map(|_| ())
}

pub fn host_of(user: &GooseUser) -> usize {
    user.get_session_data::<Session>().map_or(0, |s| s.host)
}

/// The goose scenario for `ctx.kind`.
pub fn scenario(ctx: Arc<Ctx>) -> Scenario {
    let name = ctx.kind.name();
    let iteration = {
        let ctx = Arc::clone(&ctx);
        Transaction::new(Arc::new(move |user: &mut GooseUser| {
            let ctx = Arc::clone(&ctx);
            Box::pin(async move {
                let Some(slot) = ctx.begin().await else {
                    return Ok(());
                };
                let started = Instant::now();
                let outcome = match ctx.kind {
                    Kind::FlashSale => flash_sale::iteration(user, &ctx, slot.lag).await,
                    Kind::Browse => browse::iteration(user, &ctx, slot.lag).await,
                    Kind::Mixed => mixed::iteration(user, &ctx, slot.lag).await,
                    Kind::HoldAndPay => hold_and_pay::iteration(user, &ctx, slot.lag).await,
                };
                // An iteration goose could not carry out failed: it is
                // recorded, not left outstanding.
                ctx.finish(&slot, started, matches!(outcome, Ok(true)));
                outcome.map(|_| ())
            })
        }))
        .set_name(name)
    };
    Scenario::new(name)
        .register_transaction(pick_host(Arc::clone(&ctx)))
        .register_transaction(iteration)
}
