//! The backend over the shared stack: stateless instances over shared
//! Redis, Kafka and PostgreSQL, any number of them.
//!
//! - Redis holds the hot state and makes every decision about a line or a
//!   stock in one Lua script ([`lua`], keys in [`keys`]).
//! - Kafka is the waiting stage of the queue (one one-partition topic per
//!   event: the offset the broker acknowledges is the entry's place, and
//!   admission walks the places in offset order, see [`line`]) and the
//!   event stream (the reserved topic and the seat-map topics)
//!   ([`messages`]).
//! - Waiters are woken by Redis pub/sub, with a slow poll as the fallback
//!   ([`wakeups`]).
//! - PostgreSQL is the system of record: the persistence consumer writes
//!   reservations and its offsets in one transaction, turning PENDING into
//!   CONFIRMED exactly once in effect ([`pg`], [`consumers`]). It is also
//!   the authority for the seat map, points and payments ([`seats`],
//!   [`payments`]).
//! - A reservation accepted by Redis is recorded there (and marked pending)
//!   by the same script; if the Kafka send or the process fails right
//!   after, the reconciler re-publishes what PostgreSQL lacks
//!   ([`reconcile`]).
//! - Redis that lost its data (no marker key) is rebuilt from PostgreSQL
//!   and the broker by one instance while every instance refuses requests
//!   that need it ([`rebuild`]).
//! - Seat-map events are written to an outbox in the transaction of the
//!   change they report, sent after the commit, and sent again by a relay
//!   when that send failed ([`outbox`]).
//!
//! Layout: the operations are [`queue`], [`reserve`], [`seats`],
//! [`payments`]; the background loops [`consumers`], [`reconcile`],
//! [`sweepers`], [`outbox`] (the relay), [`health`]; the plumbing
//! [`kafka`] (producer, leased consumers), [`pg`] (schema, persistence,
//! leases), [`redis_conn`] (one Redis or a Redis Cluster) and [`error`].

pub mod activations;
pub mod admission;
pub mod concert_list;
pub mod consumers;
pub mod error;
pub mod health;
pub mod kafka;
pub mod keys;
pub mod line;
pub mod lua;
pub mod messages;
pub mod ops_metrics;
pub mod outbox;
pub mod payments;
pub mod pg;
pub mod producer;
pub mod queue;
pub mod rebuild;
pub mod reconcile;
pub mod redis_conn;
pub mod reserve;
pub mod seat_cache;
pub mod seat_lock;
pub mod seat_options;
pub mod seats;
pub mod sweepers;
pub mod wakeups;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use tokio::sync::{watch, Notify};
use tracing::info;

use super::{ComponentHealth, Operations, Queue};
use crate::concert::SeatEventCounts;
use crate::config::TestHooks;
use crate::error::Result;
use crate::model::EventGauges;
use health::{Component, Health};
use keys::{events_key, EventKeys, Topics};
use lua::RedisScripts;
use redis_conn::{RedisConn, RedisTarget};

/// How the backend reaches its stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub redis_url: String,
    pub kafka_brokers: String,
    /// The producer's `linger.ms`.
    pub kafka_linger_ms: u32,
    pub postgres_url: String,
    pub partitions: i32,
    /// Isolates a deployment on a shared stack: Redis key prefix,
    /// PostgreSQL schema, Kafka topic prefix.
    pub namespace: String,
    pub instance_id: String,
    /// How a seat hold claims its seat, and the seat-map cache.
    pub seats: seat_options::SeatOptions,
}

#[derive(Clone)]
pub struct StackBackend {
    shared: Arc<Shared>,
}

struct Shared {
    /// The stack's handles, shared with the background tasks.
    stack: Stack,
    /// Test hook: never send the reserved topic's record from the request path.
    drop_publish: bool,
    /// Test hook: acknowledge reservations without waiting for a replica
    /// (see `reserve`).
    no_replica_wait: bool,
    /// Names this instance's claims on places in line (unique per start).
    claimer: String,
    /// Dropped with the backend: stops every background task.
    _stop: watch::Sender<bool>,
}

/// The backend's own metrics: where a reservation's time goes.
#[derive(Clone)]
struct StackMetrics {
    /// Request path: the reserved topic's send, until the broker acked.
    kafka_send: prometheus_client::metrics::histogram::Histogram,
    /// From acceptance in Redis to the PostgreSQL commit (CONFIRMED).
    confirm_lag: prometheus_client::metrics::histogram::Histogram,
    /// Reservations re-published by the reconciler.
    republished: prometheus_client::metrics::counter::Counter,
    /// Seat events sent by the outbox relay (their first send failed).
    seat_events_relayed: prometheus_client::metrics::counter::Counter,
}

/// The stack's handles. The background tasks hold these, not the backend
/// itself, so that the backend can drop and its tasks stop.
#[derive(Clone)]
pub(crate) struct Stack {
    ns: String,
    redis: RedisConn,
    scripts: Arc<RedisScripts>,
    pg: Pool,
    producer: producer::KafkaProducer,
    topics: Arc<Topics>,
    health: Arc<Health>,
    /// Kept for the backend's lifetime: librdkafka clients created and
    /// dropped while others run have been seen to crash.
    admin: Arc<AdminClient<DefaultClientContext>>,
    metrics: StackMetrics,
    partitions: i32,
    /// Test hook: hold each persistence batch this long.
    persist_delay: Duration,
    /// How long an unpaid seat hold lasts.
    hold_ttl: Duration,
    seat_events: SeatEventCounts,
    /// Wakes SSE streams and duplicate `enter`s (see [`wakeups`]).
    wakeups: Arc<wakeups::Wakeups>,
    /// Rebalances the admission consumer when an event (a line) is created.
    line_added: Arc<Notify>,
    /// Test hook: never send seat events right after their commit.
    drop_seat_events: bool,
    /// The seat-hold strategy, its lock's counters, the seat-map cache.
    seat_map: Arc<seat_options::SeatMap>,
    /// Consumer lag, pool usage, Redis memory (see [`ops_metrics`]).
    ops: Arc<ops_metrics::OpsGauges>,
    /// Whether a Redis that lost its data is detected and rebuilt (off
    /// only by the test hook `--debug-no-redis-rebuild`, see [`rebuild`]).
    rebuild_redis: bool,
    /// Reads the reserved topic's ends and the lines for a rebuild.
    rebuild_reader: Arc<rdkafka::consumer::BaseConsumer>,
}

impl StackBackend {
    pub async fn start(
        options: StackOptions,
        hold_ttl: Duration,
        hooks: TestHooks,
    ) -> anyhow::Result<Self> {
        let ns = options.namespace.clone();
        anyhow::ensure!(
            !ns.is_empty()
                && ns.len() <= 40
                && ns
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "--namespace must be 1..=40 characters of [a-z0-9_]"
        );
        let target = RedisTarget::parse(&options.redis_url).map_err(anyhow::Error::msg)?;
        let redis = RedisConn::connect(&target)
            .await
            .map_err(|e| anyhow::anyhow!("Redis at {}: {e}", options.redis_url))?;
        let pool = pg::connect(&options.postgres_url, &ns, 16)?;
        pg::migrate(&pool, &ns)
            .await
            .map_err(|e| anyhow::anyhow!("PostgreSQL migrations: {e}"))?;
        let topics = Arc::new(Topics::new(&ns));
        let admin = Arc::new(kafka::admin(&options.kafka_brokers)?);
        kafka::create_topics(&admin, &topics.all(), options.partitions).await?;
        let (stop, stopped) = watch::channel(false);
        let stack = Stack {
            ns: ns.clone(),
            redis,
            scripts: Arc::new(RedisScripts::new()),
            pg: pool,
            producer: kafka::producer(&options.kafka_brokers, options.kafka_linger_ms)?,
            topics,
            health: Arc::new(Health::all_up()),
            admin,
            metrics: StackMetrics {
                kafka_send: crate::metrics::latency_histogram(),
                confirm_lag: crate::metrics::latency_histogram(),
                republished: Default::default(),
                seat_events_relayed: Default::default(),
            },
            partitions: options.partitions,
            persist_delay: Duration::from_millis(hooks.persist_delay_ms),
            hold_ttl,
            seat_events: SeatEventCounts::default(),
            wakeups: Arc::new(wakeups::Wakeups::new(&ns)),
            line_added: Arc::new(Notify::new()),
            drop_seat_events: hooks.drop_seat_events,
            seat_map: Arc::new(seat_options::SeatMap::new(options.seats.clone())),
            ops: Default::default(),
            rebuild_redis: !hooks.no_redis_rebuild,
            rebuild_reader: kafka::reader(&options.kafka_brokers, &ns)?,
        };
        // A Redis without its data must not serve the first request either.
        if stack.rebuild_redis && !stack.complete_or_fresh().await.unwrap_or(false) {
            stack.health.set_redis_incomplete(true);
        }
        let wakeups = stack.wakeups.clone();
        let stop_wakeups = stopped.clone();
        let subscriber_urls = stack.redis.subscriber_urls(&target);
        tokio::spawn(async move { wakeups.run(subscriber_urls, stop_wakeups).await });
        tokio::spawn(stack.clone().health_loop(stopped.clone()));
        tokio::spawn(stack.clone().queue_sweep_loop(stopped.clone()));
        tokio::spawn(stack.clone().reconcile_loop(stopped.clone()));
        tokio::spawn(stack.clone().hold_sweep_loop(stopped.clone()));
        tokio::spawn(
            stack
                .clone()
                .ops_loop(options.kafka_brokers.clone(), stopped.clone()),
        );
        tokio::spawn(stack.clone().activations_loop(stopped.clone()));
        if stack.rebuild_redis {
            tokio::spawn(stack.clone().rebuild_loop(stopped.clone()));
        }
        if !hooks.no_outbox_relay {
            tokio::spawn(stack.clone().outbox_relay_loop(stopped.clone()));
        }
        stack.spawn_consumers(&options, stopped);
        info!(namespace = %ns, instance = %options.instance_id, "stack backend started");
        Ok(StackBackend {
            shared: Arc::new(Shared {
                stack,
                drop_publish: hooks.drop_publish,
                no_replica_wait: hooks.no_replica_wait,
                claimer: format!("{:016x}", rand::random::<u64>()),
                _stop: stop,
            }),
        })
    }

    /// A setting every instance of this deployment shares (see
    /// [`pg::fleet_setting`]).
    pub async fn fleet_setting(
        &self,
        name: &str,
        candidate: &str,
    ) -> std::result::Result<(String, bool), error::StackError> {
        pg::fleet_setting(&self.stack().pg, name, candidate).await
    }

    fn stack(&self) -> &Stack {
        &self.shared.stack
    }

    /// UNAVAILABLE naming the first of `components` the health loop saw down.
    fn require(&self, components: &[Component]) -> Result<()> {
        self.stack().health.require(components)
    }

    async fn pg(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.stack().pg.get().await?)
    }

    fn redis(&self) -> RedisConn {
        self.stack().redis.clone()
    }

    fn keys(&self, event_id: &str) -> EventKeys {
        EventKeys::new(&self.stack().ns, event_id)
    }
}

impl Operations for StackBackend {
    async fn health(&self) -> Vec<ComponentHealth> {
        self.stack().health.components()
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let m = &self.stack().metrics;
        registry.register(
            "kafka_send_seconds",
            "ticket.reserved send on the reserve path, until acknowledged",
            m.kafka_send.clone(),
        );
        registry.register(
            "reservation_confirm_lag_seconds",
            "From acceptance in Redis to the commit in PostgreSQL",
            m.confirm_lag.clone(),
        );
        registry.register(
            "reservations_republished",
            "Accepted reservations re-published by the reconciler",
            m.republished.clone(),
        );
        registry.register(
            "seat_events_relayed",
            "Seat-map events sent by the outbox relay after their first send failed",
            m.seat_events_relayed.clone(),
        );
        self.stack().seat_events.register(registry);
        self.stack().seat_map.register(registry);
        self.stack().ops.register(registry);
    }

    async fn gauges(&self) -> Vec<EventGauges> {
        let ids: Vec<String> = redis::AsyncCommands::srandmember_multiple(
            &mut self.redis(),
            events_key(&self.stack().ns),
            500,
        )
        .await
        .unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Ok(v) = self.event(&id).await {
                out.push(EventGauges {
                    event_id: v.event_id,
                    remaining: v.remaining,
                    waiting: v.waiting,
                    active: v.active,
                });
            }
        }
        out
    }
}

/// An interval that, when a tick is missed, waits a full period again
/// rather than bursting to catch up.
fn delayed_interval(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// The next tick of a background loop: false once the backend is dropped.
async fn next_tick(interval: &mut tokio::time::Interval, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stop.changed() => false,
        _ = interval.tick() => true,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
