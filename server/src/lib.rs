//! The reference ticketing server: the contract of `shared/spec/CONTRACT.md`
//! (waiting queue with signed tokens and a live SSE position, atomic stock,
//! reservations) over pluggable backends.
//!
//! Layout:
//! - [`config`]: command line and environment (clap).
//! - [`http`]: accept loop, graceful shutdown, the dispatch point, helpers.
//! - [`routes`]: one module per group of operations.
//! - [`backend`]: the seam; [`backend::memory`] is the embedded backend.
//! - [`token`]: HMAC-signed queue tokens.
//! - [`validate`], [`error`]: bad input in, the contract's errors out.
//! - [`metrics`]: Prometheus exposition.
//!
//! Tests and the verifier embed the server with [`run`]: bind
//! `127.0.0.1:0`, pass the listener and any future as the shutdown signal.

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

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

pub use config::Config;

use backend::{Backend, BackendOptions};
use http::App;
use token::TokenSigner;

/// Runs the server on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    mut config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if let Some(generated) = config.ensure_admin_token() {
        warn!(admin_token = %generated, "no admin token configured; generated one");
    }
    let secret = match &config.token_secret {
        Some(secret) if !secret.is_empty() => secret.clone().into_bytes(),
        _ => {
            warn!("no token secret configured; using a random one (other instances will not accept these tokens)");
            config::random_hex().into_bytes()
        }
    };
    if config.unsafe_race {
        warn!("UNSAFE RACE MODE: the reserve path reads, yields, then writes the stock. Concurrent buyers WILL over-sell. Negative control for the verifier only.");
    }
    if config.unsafe_fifo {
        warn!("UNSAFE FIFO MODE: the newest waiting entry is admitted first. Negative control for the verifier only.");
    }
    if config.unsafe_hold {
        warn!("UNSAFE HOLD MODE: a seat hold reads the seat, yields, then writes. Two users WILL hold one seat. Negative control for the verifier only.");
    }
    if config.unsafe_sse {
        warn!("UNSAFE SSE MODE: streams show positions that go up. Negative control for the verifier only.");
    }
    let backend = Backend::start(
        config.backend,
        BackendOptions {
            unsafe_race: config.unsafe_race,
            unsafe_fifo: config.unsafe_fifo,
            unsafe_hold: config.unsafe_hold,
            hold_ttl: Duration::from_millis(config.hold_ttl_ms()),
            real: Some(backend::real::RealOptions {
                redis_url: config.redis_url.clone(),
                kafka_brokers: config.kafka_brokers.clone(),
                postgres_url: config.postgres_url.clone(),
                partitions: config.kafka_partitions,
                namespace: config.namespace.clone(),
                instance_id: config
                    .instance_id
                    .clone()
                    .unwrap_or_else(|| format!("i-{}", &config::random_hex()[..12])),
                drop_publish: config.debug_drop_publish,
                persist_delay: Duration::from_millis(config.debug_persist_delay_ms),
            }),
        },
    )
    .await?;
    let (stop_streams, stopping) = watch::channel(false);
    let mut app = App::new(
        backend,
        TokenSigner::new(&secret, config.token_ttl_secs),
        config.admin_token.as_deref().unwrap_or_default(),
        Duration::from_secs(config.sse_heartbeat_secs),
        config.rate_limit_rps,
        stopping,
    );
    app.unsafe_sse = config.unsafe_sse;
    let app = Arc::new(app);
    info!(addr = %http::local_addr(&listener), backend = ?config.backend, "listening");
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
