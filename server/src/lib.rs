//! The reference ticketing server: the contract of `docs/CONTRACT.md`
//! (waiting queue with signed tokens and a live SSE position, atomic stock,
//! reservations) over pluggable backends.
//!
//! Layout:
//! - [`config`]: command line and environment (clap).
//! - [`http`]: accept loop, graceful shutdown, the dispatch point, helpers.
//! - [`routes`]: one module per group of operations.
//! - [`backend`]: the seam; [`backend::memory`] is the embedded backend,
//!   [`backend::stack`] the one over Redis, Kafka and PostgreSQL.
//! - [`token`]: HMAC-signed queue tokens; [`admin_token`]: the admin
//!   token's file when none was given.
//! - [`validate`], [`error`]: bad input in, the contract's errors out.
//! - [`metrics`]: Prometheus exposition.
//!
//! Tests and the verifier embed the server with [`run`]: bind
//! `127.0.0.1:0`, pass the listener and any future as the shutdown signal.

pub mod admin_token;
pub mod backend;
pub mod concert;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod model;
pub mod ratelimit;
pub mod routes;
pub mod token;
pub mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

pub use config::Config;

use backend::{Backend, BackendOptions};
use http::App;
use token::TokenSigner;

/// Runs the server on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    warn_negative_controls(&config.controls);
    config
        .seats
        .check(config.backend == backend::BackendKind::Real)?;
    let backend = Backend::start(
        config.backend,
        BackendOptions {
            controls: config.controls.clone(),
            hold_ttl: config.hold_ttl,
            stack: Some(backend::stack::StackOptions {
                redis_url: config.redis_url.clone(),
                kafka_brokers: config.kafka_brokers.clone(),
                kafka_linger_ms: config.kafka_linger_ms,
                postgres_url: config.postgres_url.clone(),
                partitions: config.kafka_partitions,
                namespace: config.namespace.clone(),
                instance_id: config
                    .instance_id
                    .clone()
                    .unwrap_or_else(|| format!("i-{}", &config::random_hex()[..12])),
                seats: config.seats.clone(),
            }),
        },
        config.hooks.clone(),
    )
    .await?;
    // Instances of one deployment must accept each other's tokens and the
    // same admin token: on the shared stack, unconfigured ones are shared.
    let admin_token = backend
        .shared_secret("admin_token", config.admin_token.as_deref())
        .await?;
    // Written before the first request is served, so once health answers
    // the file is there; its value never reaches the log.
    if let Some(path) = admin_token::file(&config, http::local_addr(&listener).port()) {
        admin_token::write(&path, &admin_token).with_context(|| {
            format!(
                "no --admin-token given, and the one in use could not be written to {} \
                 (give --admin-token, or --admin-token-file where this user may write)",
                path.display()
            )
        })?;
        info!(path = %path.display(), "no admin token given: the one in use is in this file (mode 0600)");
    }
    let secret = backend
        .shared_secret("token_secret", config.token_secret.as_deref())
        .await?
        .into_bytes();
    let (stop_streams, stopping) = watch::channel(false);
    let mut app = App::new(
        backend,
        TokenSigner::new(&secret, config.token_ttl_secs),
        &admin_token,
        Duration::from_secs(config.sse_heartbeat_secs),
        config.limits.clone(),
        stopping,
    );
    app.unsafe_sse = config.controls.sse;
    let app = Arc::new(app);
    info!(addr = %http::local_addr(&listener), backend = ?config.backend, "listening");
    // On by default: a load run or test answered 429 finds why in the log.
    info!(
        per_ip = config.limits.rate_limit_rps,
        per_user = config.limits.user_rate_limit_rps,
        "request rate limits per second (0: off; --rate-limit-rps, --user-rate-limit-rps)"
    );
    http::serve(
        app,
        listener,
        shutdown,
        stop_streams,
        Duration::from_secs(config.shutdown_timeout_secs),
    )
    .await;
    Ok(())
}

/// Says loudly, at start, which deliberate defects are on.
fn warn_negative_controls(controls: &config::NegativeControls) {
    if controls.race {
        warn!("UNSAFE RACE MODE: the reserve path reads, yields, then writes the stock. Concurrent buyers WILL over-sell. Negative control for the verifier only.");
    }
    if controls.fifo {
        warn!("UNSAFE FIFO MODE: the newest waiting entry is admitted first. Negative control for the verifier only.");
    }
    if controls.hold {
        warn!("UNSAFE HOLD MODE: a seat hold reads the seat, yields, then writes. Two users WILL hold one seat. Negative control for the verifier only.");
    }
    if controls.sse {
        warn!("UNSAFE SSE MODE: streams show positions that go up. Negative control for the verifier only.");
    }
    for (on, what) in [
        (controls.token_reuse, "a used queue token may buy again"),
        (
            controls.capacity,
            "up to twice activeCapacity entries are admitted",
        ),
        (controls.early_buy, "a WAITING token may buy"),
        (
            controls.early_release,
            "held seats show AVAILABLE after half their hold time",
        ),
        (controls.double_charge, "a retried payment is charged again"),
        (
            controls.balance,
            "payments debit one point more than their price",
        ),
    ] {
        if on {
            warn!("UNSAFE MODE: {what}. Negative control for the verifier only.");
        }
    }
}
