//! The real stack (seed 000's design): stateless instances over shared
//! Redis, Kafka and PostgreSQL.
//!
//! - Redis holds the hot state and makes every decision in one Lua script
//!   (see [`scripts`]).
//! - Kafka is the waiting stage of the queue (`ticket.queue`, key = event,
//!   so one partition per event keeps FIFO: the admission consumer assigns
//!   places in offset order) and the event stream (`ticket.reserved`).
//! - PostgreSQL is the system of record: the persistence consumer writes
//!   reservations and its offsets in one transaction, turning PENDING into
//!   CONFIRMED exactly once in effect.
//! - A reservation accepted by Redis is recorded there (and marked pending)
//!   by the same script; if the Kafka send or the process fails right
//!   after, the reconciler re-publishes what PostgreSQL lacks.
//!
//! Layout: [`scripts`] (Redis), [`kafka`] (producer, leased consumers),
//! [`pg`] (schema, persistence, leases).

pub mod kafka;
pub mod pg;
pub mod scripts;
mod seats;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{ComponentHealth, QueueWatch};
use crate::concert::{SeatEvent, SeatEventCounts};
use crate::error::{Error, Result};
use crate::model::{
    new_reservation_id, now_rfc3339, now_unix, Entered, EventGauges, EventSpec, EventView,
    QueueStatus, QueueView, Reservation, ReservationStatus,
};
use crate::token::Claims;
use pg::ReservedEvent;
use scripts::{event_keys, events_key, reservation_index_key, Scripts};

/// How the real backend reaches its stack.
#[derive(Debug, Clone)]
pub struct RealOptions {
    pub redis_url: String,
    pub kafka_brokers: String,
    pub postgres_url: String,
    pub partitions: i32,
    /// Isolates a deployment on a shared stack: Redis key prefix,
    /// PostgreSQL schema, Kafka topic prefix.
    pub namespace: String,
    pub instance_id: String,
    /// Test hook: never send `ticket.reserved` from the request path.
    pub drop_publish: bool,
    /// Test hook: hold each persistence batch this long.
    pub persist_delay: Duration,
}

#[derive(Clone)]
pub struct RealBackend {
    shared: Arc<Shared>,
}

/// The real backend's own metrics: where a reservation's time goes.
#[derive(Clone)]
struct StackMetrics {
    /// Request path: the `ticket.reserved` send, until the broker acked.
    kafka_send: prometheus_client::metrics::histogram::Histogram,
    /// From acceptance in Redis to the PostgreSQL commit (CONFIRMED).
    confirm_lag: prometheus_client::metrics::histogram::Histogram,
    /// Reservations re-published by the reconciler.
    republished: prometheus_client::metrics::counter::Counter,
}

impl StackMetrics {
    fn new() -> Self {
        StackMetrics {
            kafka_send: crate::metrics::latency_histogram(),
            confirm_lag: crate::metrics::latency_histogram(),
            republished: Default::default(),
        }
    }
}

struct Shared {
    /// The stack's handles, shared with the background tasks.
    stack: Worker,
    drop_publish: bool,
    watchers: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Dropped with the backend: stops every background task.
    _stop: watch::Sender<bool>,
}

#[derive(Default)]
struct Health {
    redis: AtomicBool,
    postgres: AtomicBool,
    kafka: AtomicBool,
}

#[derive(Clone, Copy, Debug)]
enum Component {
    Redis,
    Postgres,
    Kafka,
}

/// A queue entry as carried on `ticket.queue`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueEntry {
    event_id: String,
    user_id: String,
    issued_at: u64,
}

/// How long `enter` waits for the admission consumer to place an entry.
const PLACE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a reservation may stay unconfirmed before the reconciler
/// re-publishes it.
const RECONCILE_AFTER_MS: i64 = 3000;

impl RealBackend {
    pub async fn start(options: RealOptions, hold_ttl: Duration) -> anyhow::Result<Self> {
        let ns = options.namespace.clone();
        anyhow::ensure!(
            !ns.is_empty()
                && ns.len() <= 40
                && ns
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "--namespace must be 1..=40 characters of [a-z0-9_]"
        );
        let client = redis::Client::open(options.redis_url.as_str())?;
        let redis = ConnectionManager::new_with_config(
            client,
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_number_of_retries(1),
        )
        .await
        .map_err(|e| anyhow::anyhow!("Redis at {}: {e}", options.redis_url))?;
        let pool = pg::connect(&options.postgres_url, &ns, 16)
            .await
            .map_err(anyhow::Error::msg)?;
        pg::migrate(&pool, &ns)
            .await
            .map_err(|e| anyhow::anyhow!("PostgreSQL migrations: {e}"))?;
        let prefix = if ns == "ticketbench" {
            String::new()
        } else {
            format!("{ns}.")
        };
        let queue_topic = format!("{prefix}ticket.queue");
        let reserved_topic = format!("{prefix}ticket.reserved");
        let seat_topics = SeatEvent::ALL.map(|e| format!("{prefix}{}", e.topic()));
        let admin = Arc::new(kafka::admin(&options.kafka_brokers).map_err(anyhow::Error::msg)?);
        let mut all_topics = vec![queue_topic.as_str(), reserved_topic.as_str()];
        all_topics.extend(seat_topics.iter().map(String::as_str));
        kafka::create_topics(&admin, &all_topics, options.partitions)
            .await
            .map_err(anyhow::Error::msg)?;
        let producer = kafka::producer(&options.kafka_brokers).map_err(anyhow::Error::msg)?;

        let health = Arc::new(Health::default());
        for flag in [&health.redis, &health.postgres, &health.kafka] {
            flag.store(true, Ordering::Relaxed);
        }
        let (stop, stopped) = watch::channel(false);
        let scripts = Arc::new(Scripts::new());
        let metrics = StackMetrics::new();
        let worker = Worker {
            ns: ns.clone(),
            redis,
            scripts,
            pg: pool.clone(),
            producer,
            reserved_topic: reserved_topic.clone(),
            queue_topic: queue_topic.clone(),
            health,
            admin,
            metrics,
            partitions: options.partitions,
            persist_delay: options.persist_delay,
            hold_ttl,
            seat_topics,
            seat_events: SeatEventCounts::default(),
        };
        let backend = RealBackend {
            shared: Arc::new(Shared {
                stack: worker.clone(),
                drop_publish: options.drop_publish,
                watchers: Mutex::new(HashMap::new()),
                _stop: stop,
            }),
        };
        tokio::spawn(worker.clone().health_loop(stopped.clone()));
        tokio::spawn(worker.clone().sweep_loop(stopped.clone()));
        tokio::spawn(worker.clone().reconcile_loop(stopped.clone()));
        tokio::spawn(worker.clone().hold_sweep_loop(stopped.clone()));
        let spec = |consumer: &'static str, topic: &str, fetch_wait_ms: u32| kafka::ConsumerSpec {
            brokers: options.kafka_brokers.clone(),
            postgres_url: options.postgres_url.clone(),
            schema: ns.clone(),
            consumer,
            topic: topic.to_owned(),
            partitions: options.partitions,
            instance: options.instance_id.clone(),
            fetch_wait_ms,
        };
        {
            let worker = worker.clone();
            // Admission is on every buyer's path: fetch often.
            let spec = spec("admission", &queue_topic, 5);
            tokio::spawn(kafka::run_leased(
                spec,
                pool.clone(),
                stopped.clone(),
                move |records, next| {
                    let worker = worker.clone();
                    async move { worker.admit(records, next).await }
                },
            ));
        }
        {
            let worker = worker.clone();
            // Persistence only turns PENDING into CONFIRMED: fetch less.
            let spec = spec("persist", &reserved_topic, 50);
            tokio::spawn(kafka::run_leased(
                spec,
                pool,
                stopped,
                move |records, next| {
                    let worker = worker.clone();
                    async move { worker.persist(records, next).await }
                },
            ));
        }
        info!(namespace = %ns, instance = %options.instance_id, "real backend started");
        Ok(backend)
    }

    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let m = &self.shared.stack.metrics;
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
        self.shared.stack.seat_events.register(registry);
    }

    fn require(&self, components: &[Component]) -> Result<()> {
        let h = &self.shared.stack.health;
        for c in components {
            let (up, name) = match c {
                Component::Redis => (h.redis.load(Ordering::Relaxed), "Redis"),
                Component::Postgres => (h.postgres.load(Ordering::Relaxed), "PostgreSQL"),
                Component::Kafka => (h.kafka.load(Ordering::Relaxed), "Kafka"),
            };
            if !up {
                return Err(Error::Unavailable(name));
            }
        }
        Ok(())
    }

    async fn pg(&self) -> Result<deadpool_postgres::Object> {
        self.shared
            .stack
            .pg
            .get()
            .await
            .map_err(|_| Error::Unavailable("PostgreSQL"))
    }

    fn redis(&self) -> ConnectionManager {
        self.shared.stack.redis.clone()
    }

    fn keys(&self, event_id: &str) -> [String; 10] {
        event_keys(&self.shared.stack.ns, event_id)
    }

    pub async fn create_event(&self, spec: EventSpec) -> Result<EventView> {
        self.require(&[Component::Redis, Component::Postgres])?;
        let mut client = self.pg().await?;
        let tx = client.transaction().await.map_err(pg_down)?;
        let inserted = tx
            .execute(
                "INSERT INTO events (event_id, name, stock, per_user_limit, active_capacity, active_ttl_seconds)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
                &[
                    &spec.event_id,
                    &spec.name,
                    &(spec.stock as i64),
                    &(spec.per_user_limit as i32),
                    &(spec.active_capacity as i32),
                    &(spec.active_ttl_seconds as i32),
                ],
            )
            .await
            .map_err(pg_down)?;
        if inserted == 0 {
            return Err(Error::AlreadyExists(format!(
                "event {} already exists",
                spec.event_id
            )));
        }
        tx.execute(
            "INSERT INTO event_stock (event_id, remaining) VALUES ($1, $2)",
            &[&spec.event_id, &(spec.stock as i64)],
        )
        .await
        .map_err(pg_down)?;
        let keys = self.keys(&spec.event_id);
        let created: i64 = self
            .shared
            .stack
            .scripts
            .create
            .key(&keys[..])
            .arg(spec.stock)
            .arg(spec.per_user_limit)
            .arg(spec.active_capacity)
            .arg(spec.active_ttl_seconds)
            .arg(spec.name.as_deref().unwrap_or(""))
            .invoke_async(&mut self.redis())
            .await
            .map_err(redis_down)?;
        if created == 0 {
            return Err(Error::AlreadyExists(format!(
                "event {} already exists",
                spec.event_id
            )));
        }
        if let Err(e) = tx.commit().await {
            // Undo the Redis side so that nothing was applied.
            let _: redis::RedisResult<()> = self.redis().del(&keys[..]).await;
            return Err(pg_down(e));
        }
        let _: redis::RedisResult<()> = self
            .redis()
            .sadd(events_key(&self.shared.stack.ns), &spec.event_id)
            .await;
        self.event(&spec.event_id).await
    }

    async fn view(&self, event_id: &str, entry: Option<&Claims>) -> Result<ViewReply> {
        self.require(&[Component::Redis])?;
        let (seq, user) = match entry {
            Some(c) => (c.seq.to_string(), c.user_id.as_str()),
            None => (String::new(), ""),
        };
        let raw: Vec<String> = self
            .shared
            .stack
            .scripts
            .view
            .key(&self.keys(event_id)[..])
            .arg(seq)
            .arg(user)
            .invoke_async(&mut self.redis())
            .await
            .map_err(redis_down)?;
        ViewReply::parse(event_id, &raw)
    }

    pub async fn event(&self, event_id: &str) -> Result<EventView> {
        Ok(self.view(event_id, None).await?.event)
    }

    pub async fn enter(&self, event_id: &str, user_id: &str) -> Result<Entered> {
        self.require(&[Component::Redis, Component::Kafka])?;
        let keys = self.keys(event_id);
        let placed = |v: Option<String>| v.and_then(|v| parse_entry(&v));
        let existing: Option<String> = self
            .redis()
            .hget(&keys[2], user_id)
            .await
            .map_err(redis_down)?;
        let (seq, issued_at) = match placed(existing) {
            Some(entry) => entry,
            None => {
                let exists: bool = self.redis().exists(&keys[0]).await.map_err(redis_down)?;
                if !exists {
                    return Err(Error::not_found(format!("event {event_id} not found")));
                }
                let entry = QueueEntry {
                    event_id: event_id.to_owned(),
                    user_id: user_id.to_owned(),
                    issued_at: now_unix(),
                };
                let payload =
                    serde_json::to_vec(&entry).map_err(|e| Error::Internal(Box::new(e)))?;
                self.shared
                    .stack
                    .producer
                    .send(
                        FutureRecord::to(&self.shared.stack.queue_topic)
                            .key(event_id)
                            .payload(&payload),
                        Duration::from_secs(2),
                    )
                    .await
                    .map_err(|(e, _)| {
                        warn!(error = %e, "queue entry not produced");
                        Error::Unavailable("Kafka")
                    })?;
                self.await_place(&keys[2], user_id).await?
            }
        };
        let claims = Claims {
            event_id: event_id.to_owned(),
            user_id: user_id.to_owned(),
            seq,
            issued_at,
        };
        let view = self.view(event_id, Some(&claims)).await?;
        Ok(Entered {
            seq,
            issued_at,
            view: view.queue_view(seq).ok_or_else(unknown_entry)?,
        })
    }

    /// Waits for the admission consumer to give `user` its place.
    async fn await_place(&self, entries_key: &str, user: &str) -> Result<(u64, u64)> {
        let until = tokio::time::Instant::now() + PLACE_DEADLINE;
        let mut pause = Duration::from_millis(1);
        loop {
            let v: Option<String> = self
                .redis()
                .hget(entries_key, user)
                .await
                .map_err(redis_down)?;
            if let Some(entry) = v.and_then(|v| parse_entry(&v)) {
                return Ok(entry);
            }
            if tokio::time::Instant::now() >= until {
                warn!(
                    user,
                    "entry produced but not placed in time: is the admission consumer running?"
                );
                return Err(Error::Unavailable("Kafka"));
            }
            tokio::time::sleep(pause).await;
            // Placement takes a few ms; a short cap keeps a placed entry
            // from waiting out a long back-off (one cheap HGET per 2 ms).
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    pub async fn queue_status(&self, claims: &Claims) -> Result<QueueView> {
        let view = match self.view(&claims.event_id, Some(claims)).await {
            Err(Error::NotFound(_)) => return Err(unknown_entry()),
            other => other?,
        };
        view.queue_view(claims.seq).ok_or_else(unknown_entry)
    }

    pub async fn watch_queue(&self, claims: &Claims) -> Result<QueueWatch> {
        let current = self.queue_status(claims).await?;
        let mut watchers = self.shared.watchers.lock().expect("watchers lock poisoned");
        if let Some(tx) = watchers.get(&claims.event_id) {
            return Ok(QueueWatch {
                cursor: tx.subscribe(),
                current,
            });
        }
        let (tx, rx) = watch::channel(0u64);
        watchers.insert(claims.event_id.clone(), tx.clone());
        let backend = Arc::downgrade(&self.shared);
        let state_key = self.keys(&claims.event_id)[1].clone();
        let event_id = claims.event_id.clone();
        // Follows the event's admission cursor while anyone listens.
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let Some(shared) = backend.upgrade() else {
                    return;
                };
                if tx.receiver_count() == 0 {
                    shared
                        .watchers
                        .lock()
                        .expect("watchers lock poisoned")
                        .remove(&event_id);
                    return;
                }
                let head: redis::RedisResult<Option<u64>> =
                    shared.stack.redis.clone().hget(&state_key, "head").await;
                if let Ok(Some(head)) = head {
                    tx.send_if_modified(|c| {
                        let moved = *c < head;
                        *c = (*c).max(head);
                        moved
                    });
                }
            }
        });
        Ok(QueueWatch {
            cursor: rx,
            current,
        })
    }

    pub async fn reserve(
        &self,
        claims: &Claims,
        event_id: &str,
        quantity: u32,
    ) -> Result<Reservation> {
        self.require(&[Component::Redis, Component::Kafka])?;
        if claims.event_id != event_id {
            let view = self.view(event_id, None).await?;
            crate::validate::range("quantity", quantity, 1, view.event.per_user_limit)?;
            return Err(Error::NotActive("queue token was issued for another event"));
        }
        let created_ms = now_ms();
        let event = ReservedEvent {
            reservation_id: new_reservation_id(),
            event_id: event_id.to_owned(),
            user_id: claims.user_id.clone(),
            quantity,
            created_at: now_rfc3339(),
            created_ms,
        };
        let record = serde_json::to_string(&event).map_err(|e| Error::Internal(Box::new(e)))?;
        let reply: Vec<String> = self
            .shared
            .stack
            .scripts
            .reserve
            .key(&self.keys(event_id)[..])
            .arg(claims.seq)
            .arg(&claims.user_id)
            .arg(quantity)
            .arg(&event.reservation_id)
            .arg(&record)
            .invoke_async(&mut self.redis())
            .await
            .map_err(redis_down)?;
        match reply.first().map(String::as_str) {
            Some("OK") => {}
            Some("NOT_FOUND") => {
                return Err(Error::not_found(format!("event {event_id} not found")))
            }
            Some("BAD_QUANTITY") => {
                let limit = reply.get(1).and_then(|l| l.parse().ok()).unwrap_or(1);
                return Err(crate::validate::range("quantity", quantity, 1, limit).unwrap_err());
            }
            Some("UNKNOWN_ENTRY") => return Err(unknown_entry()),
            Some("NOT_ACTIVE") => {
                return Err(Error::NotActive(match reply.get(1).map(String::as_str) {
                    Some("WAITING") => "queue token is still waiting",
                    Some("DONE") => "queue token was already used",
                    _ => "active time of this token ran out",
                }))
            }
            Some("LIMIT_EXCEEDED") => {
                let n = |i: usize| reply.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
                return Err(Error::LimitExceeded {
                    limit: n(1),
                    held: n(2),
                });
            }
            Some("SOLD_OUT") => {
                let remaining = reply.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                return Err(Error::SoldOut {
                    requested: quantity,
                    remaining,
                });
            }
            other => {
                return Err(Error::Internal(
                    format!("reserve script answered {other:?}").into(),
                ));
            }
        }
        // Accepted: from here on the reservation is in Redis and will reach
        // PostgreSQL, through Kafka now or through the reconciler later.
        let _: redis::RedisResult<()> = self
            .redis()
            .set(
                reservation_index_key(&self.shared.stack.ns, &event.reservation_id),
                event_id,
            )
            .await;
        if self.shared.drop_publish {
            warn!(reservation = %event.reservation_id, "test hook: ticket.reserved not sent");
        } else {
            let sent = std::time::Instant::now();
            let result = self
                .shared
                .stack
                .producer
                .send(
                    FutureRecord::to(&self.shared.stack.reserved_topic)
                        .key(event_id)
                        .payload(&record),
                    Duration::from_secs(1),
                )
                .await;
            self.shared
                .stack
                .metrics
                .kafka_send
                .observe(sent.elapsed().as_secs_f64());
            if let Err((e, _)) = result {
                warn!(error = %e, reservation = %event.reservation_id, "ticket.reserved not sent; the reconciler will re-publish it");
            }
        }
        Ok(Reservation {
            reservation_id: event.reservation_id,
            event_id: event.event_id,
            user_id: event.user_id,
            quantity,
            status: ReservationStatus::Pending,
            created_at: event.created_at,
        })
    }

    pub async fn reservation(&self, reservation_id: &str) -> Result<Reservation> {
        self.require(&[Component::Postgres])?;
        let client = self.pg().await?;
        let row = client
            .query_opt(
                "SELECT event_id, user_id, quantity,
                        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                 FROM reservations WHERE reservation_id = $1",
                &[&reservation_id],
            )
            .await
            .map_err(pg_down)?;
        if let Some(row) = row {
            return Ok(Reservation {
                reservation_id: reservation_id.to_owned(),
                event_id: row.get(0),
                user_id: row.get(1),
                quantity: row.get::<_, i32>(2) as u32,
                status: ReservationStatus::Confirmed,
                created_at: row.get(3),
            });
        }
        // Not persisted yet: accepted reservations are in Redis meanwhile.
        self.require(&[Component::Redis])?;
        let not_found = || Error::not_found(format!("reservation {reservation_id} not found"));
        let event: Option<String> = self
            .redis()
            .get(reservation_index_key(&self.shared.stack.ns, reservation_id))
            .await
            .map_err(redis_down)?;
        let event = event.ok_or_else(not_found)?;
        let record: Option<String> = self
            .redis()
            .hget(&self.keys(&event)[7], reservation_id)
            .await
            .map_err(redis_down)?;
        let r: ReservedEvent = record
            .and_then(|r| serde_json::from_str(&r).ok())
            .ok_or_else(not_found)?;
        Ok(Reservation {
            reservation_id: r.reservation_id,
            event_id: r.event_id,
            user_id: r.user_id,
            quantity: r.quantity,
            status: ReservationStatus::Pending,
            created_at: r.created_at,
        })
    }

    pub fn health(&self) -> Vec<ComponentHealth> {
        let h = &self.shared.stack.health;
        vec![
            ComponentHealth {
                name: "redis",
                up: h.redis.load(Ordering::Relaxed),
            },
            ComponentHealth {
                name: "postgres",
                up: h.postgres.load(Ordering::Relaxed),
            },
            ComponentHealth {
                name: "kafka",
                up: h.kafka.load(Ordering::Relaxed),
            },
        ]
    }

    pub async fn gauges(&self) -> Vec<EventGauges> {
        let ids: Vec<String> = self
            .redis()
            .srandmember_multiple(events_key(&self.shared.stack.ns), 500)
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

/// The `ticket.queue` and `ticket.reserved` topics of a namespace (the
/// default namespace has them unprefixed).
pub fn topics(namespace: &str) -> [String; 2] {
    let prefix = if namespace == "ticketbench" {
        String::new()
    } else {
        format!("{namespace}.")
    };
    [
        format!("{prefix}ticket.queue"),
        format!("{prefix}ticket.reserved"),
    ]
}

/// What the view script returns.
struct ViewReply {
    now_ms: i64,
    head: u64,
    status: Option<QueueStatus>,
    admissions_ms: Vec<i64>,
    event: EventView,
}

impl ViewReply {
    fn parse(event_id: &str, raw: &[String]) -> Result<Self> {
        if raw.first().map(String::as_str) == Some("NOT_FOUND") {
            return Err(Error::not_found(format!("event {event_id} not found")));
        }
        let bad = || Error::Internal(format!("view script answered {raw:?}").into());
        if raw.len() < 13 || raw[0] != "OK" {
            return Err(bad());
        }
        let n = |i: usize| raw[i].parse::<u64>().map_err(|_| bad());
        let (head, active, n_entries) = (n(2)?, n(3)?, n(11)?);
        let status = match raw[12].as_str() {
            "WAITING" => Some(QueueStatus::Waiting),
            "ACTIVE" => Some(QueueStatus::Active),
            "DONE" => Some(QueueStatus::Done),
            "EXPIRED" => Some(QueueStatus::Expired),
            _ => None,
        };
        Ok(ViewReply {
            now_ms: raw[1].parse().map_err(|_| bad())?,
            head,
            status,
            admissions_ms: raw[13..].iter().filter_map(|t| t.parse().ok()).collect(),
            event: EventView {
                event_id: event_id.to_owned(),
                name: Some(raw[8].clone()).filter(|n| !n.is_empty()),
                stock: n(4)?,
                remaining: n(9)?,
                sold: n(10)?,
                waiting: n_entries.saturating_sub(head),
                active,
                per_user_limit: n(5)? as u32,
                active_capacity: n(6)? as u32,
                active_ttl_seconds: n(7)? as u32,
            },
        })
    }

    /// The entry `seq`'s view, if the script found it (and its owner).
    fn queue_view(&self, seq: u64) -> Option<QueueView> {
        let status = self.status?;
        let position = if status == QueueStatus::Waiting {
            seq + 1 - self.head
        } else {
            0
        };
        Some(QueueView {
            status,
            position,
            estimated_wait_seconds: self.estimate(position),
            cursor: self.head,
        })
    }

    /// As the embedded backend: from the recent admission rate, or capacity
    /// turning over once per TTL before any admission was seen.
    fn estimate(&self, position: u64) -> u64 {
        if position == 0 {
            return 0;
        }
        let per_second = match self.admissions_ms.last() {
            Some(&oldest) if self.admissions_ms.len() >= 2 => {
                let span = ((self.now_ms - oldest) as f64 / 1000.0).max(1.0);
                self.admissions_ms.len() as f64 / span
            }
            _ => {
                f64::from(self.event.active_capacity)
                    / f64::from(self.event.active_ttl_seconds.max(1))
            }
        };
        (position as f64 / per_second).ceil() as u64
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

fn parse_entry(v: &str) -> Option<(u64, u64)> {
    let (seq, iat) = v.split_once(':')?;
    Some((seq.parse().ok()?, iat.parse().ok()?))
}

fn unknown_entry() -> Error {
    Error::Unauthorized("queue token does not match any entry")
}

fn redis_down(e: redis::RedisError) -> Error {
    warn!(error = %e, "redis");
    Error::Unavailable("Redis")
}

fn pg_down(e: tokio_postgres::Error) -> Error {
    warn!(error = %e, "postgres");
    Error::Unavailable("PostgreSQL")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The parts of the backend the background tasks need. Holding these, not
/// the backend itself, lets the backend drop and its tasks stop.
#[derive(Clone)]
struct Worker {
    ns: String,
    redis: ConnectionManager,
    scripts: Arc<Scripts>,
    pg: Pool,
    producer: FutureProducer,
    queue_topic: String,
    reserved_topic: String,
    health: Arc<Health>,
    admin: Arc<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>>,
    metrics: StackMetrics,
    partitions: i32,
    persist_delay: Duration,
    /// How long an unpaid seat hold lasts.
    hold_ttl: Duration,
    /// `reservation.created`, `payment.completed`, `reservation.expired`.
    seat_topics: [String; 3],
    seat_events: SeatEventCounts,
}

impl Worker {
    fn all_topics(&self) -> Vec<String> {
        let mut topics = vec![self.queue_topic.clone(), self.reserved_topic.clone()];
        topics.extend(self.seat_topics.iter().cloned());
        topics
    }

    /// `seat_topics` is in `SeatEvent::ALL` order, the enum's own.
    fn seat_topic(&self, event: SeatEvent) -> &str {
        &self.seat_topics[event as usize]
    }

    /// The admission consumer: places queue entries in offset order.
    async fn admit(
        &self,
        records: Vec<kafka::Record>,
        next: BTreeMap<i32, i64>,
    ) -> std::result::Result<(), String> {
        let mut redis = self.redis.clone();
        for r in records {
            let Ok(entry) = serde_json::from_slice::<QueueEntry>(&r.payload) else {
                warn!(offset = r.offset, "malformed queue entry skipped");
                continue;
            };
            let _: Vec<String> = self
                .scripts
                .register
                .key(&event_keys(&self.ns, &entry.event_id)[..])
                .arg(&entry.user_id)
                .arg(entry.issued_at)
                .invoke_async(&mut redis)
                .await
                .map_err(|e| format!("register: {e}"))?;
        }
        let client = self.pg.get().await.map_err(|e| e.to_string())?;
        pg::store_offsets(&client, "admission", &self.queue_topic, &next)
            .await
            .map_err(|e| e.to_string())
    }

    /// The persistence consumer: reservations into PostgreSQL with the
    /// offsets, then clears them from Redis' pending sets.
    async fn persist(
        &self,
        records: Vec<kafka::Record>,
        next: BTreeMap<i32, i64>,
    ) -> std::result::Result<(), String> {
        let mut batch: Vec<ReservedEvent> = Vec::with_capacity(records.len());
        let mut seen = HashSet::new();
        for r in &records {
            match serde_json::from_slice::<ReservedEvent>(&r.payload) {
                // Kafka may carry duplicates (reconciler, retries); one row each.
                Ok(ev) if seen.insert(ev.reservation_id.clone()) => batch.push(ev),
                Ok(_) => {}
                Err(_) => warn!(offset = r.offset, "malformed reservation event skipped"),
            }
        }
        if !self.persist_delay.is_zero() {
            tokio::time::sleep(self.persist_delay).await;
        }
        let new_ids: HashSet<String> =
            pg::persist(&self.pg, "persist", &self.reserved_topic, &batch, &next)
                .await
                .map_err(|e| {
                    if e.code() == Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION) {
                        tracing::error!(
                            "PERSISTED SALES WOULD EXCEED STOCK: PostgreSQL refused the batch"
                        );
                    }
                    e.to_string()
                })?
                .into_iter()
                .collect();
        let committed = now_ms();
        for ev in batch
            .iter()
            .filter(|ev| new_ids.contains(&ev.reservation_id))
        {
            self.metrics
                .confirm_lag
                .observe((committed - ev.created_ms).max(0) as f64 / 1000.0);
        }
        let mut by_event: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for ev in &batch {
            by_event
                .entry(&ev.event_id)
                .or_default()
                .push(&ev.reservation_id);
        }
        let mut redis = self.redis.clone();
        for (event, ids) in by_event {
            let _: redis::RedisResult<()> = redis.srem(&event_keys(&self.ns, event)[8], ids).await;
        }
        Ok(())
    }

    async fn health_loop(self, mut stop: watch::Receiver<bool>) {
        let mut interval = delayed_interval(Duration::from_millis(500));
        while next_tick(&mut interval, &mut stop).await {
            let timeout = Duration::from_secs(1);
            let mut redis = self.redis.clone();
            let redis_up = matches!(
                tokio::time::timeout(
                    timeout,
                    redis::cmd("PING").query_async::<String>(&mut redis)
                )
                .await,
                Ok(Ok(_))
            );
            let pool = self.pg.clone();
            let pg_up = matches!(
                tokio::time::timeout(timeout, async move {
                    let c = pool.get().await.map_err(|e| e.to_string())?;
                    c.simple_query("SELECT 1").await.map_err(|e| e.to_string())
                })
                .await,
                Ok(Ok(_))
            );
            // Whole-cluster metadata: asking librdkafka about one topic that
            // a restarted broker no longer has has crashed it (metadata cache).
            let producer = self.producer.clone();
            let topics = self.all_topics();
            let (kafka_up, topics_present) = tokio::task::spawn_blocking(move || {
                match producer
                    .client()
                    .fetch_metadata(None, Duration::from_secs(1))
                {
                    Ok(m) => (
                        true,
                        topics.iter().all(|t| {
                            m.topics()
                                .iter()
                                .any(|mt| mt.name() == t && !mt.partitions().is_empty())
                        }),
                    ),
                    Err(_) => (false, true),
                }
            })
            .await
            .unwrap_or((false, true));
            for (flag, up, name) in [
                (&self.health.redis, redis_up, "redis"),
                (&self.health.postgres, pg_up, "postgres"),
                (&self.health.kafka, kafka_up, "kafka"),
            ] {
                if flag.swap(up, Ordering::Relaxed) != up {
                    if up {
                        info!(component = name, "backend is up again");
                    } else {
                        warn!(component = name, "backend is down");
                    }
                }
            }
            if kafka_up && !topics_present {
                // A broker without durable storage comes back empty.
                let topics = self.all_topics();
                let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                if let Err(e) = kafka::create_topics(&self.admin, &topics, self.partitions).await {
                    warn!(error = %e, "recreating topics");
                }
            }
        }
    }

    /// Expiry and admission for events nobody touches, so SSE clients see
    /// admissions without traffic.
    async fn sweep_loop(self, mut stop: watch::Receiver<bool>) {
        let mut interval = delayed_interval(Duration::from_millis(250));
        let mut redis = self.redis.clone();
        while next_tick(&mut interval, &mut stop).await {
            let ids: Vec<String> = redis
                .smembers(events_key(&self.ns))
                .await
                .unwrap_or_default();
            for id in ids {
                let _: redis::RedisResult<i64> = self
                    .scripts
                    .tick
                    .key(&event_keys(&self.ns, &id)[..])
                    .invoke_async(&mut redis)
                    .await;
            }
        }
    }

    /// Re-publishes accepted reservations that PostgreSQL still lacks after
    /// a while (the Kafka send failed, or the process died right after the
    /// script), and clears those it has.
    async fn reconcile_loop(self, mut stop: watch::Receiver<bool>) {
        let mut interval = delayed_interval(Duration::from_secs(1));
        while next_tick(&mut interval, &mut stop).await {
            if let Err(e) = self.reconcile_once().await {
                tracing::debug!(error = %e, "reconcile");
            }
        }
    }

    async fn reconcile_once(&self) -> std::result::Result<(), String> {
        let mut redis = self.redis.clone();
        let ids: Vec<String> = redis
            .smembers(events_key(&self.ns))
            .await
            .map_err(|e| e.to_string())?;
        for event in ids {
            let keys = event_keys(&self.ns, &event);
            let pending: Vec<String> = redis
                .srandmember_multiple(&keys[8], 1000)
                .await
                .map_err(|e| e.to_string())?;
            if pending.is_empty() {
                continue;
            }
            let present = pg::present(&self.pg, &pending)
                .await
                .map_err(|e| e.to_string())?;
            if !present.is_empty() {
                let _: () = redis
                    .srem(&keys[8], &present)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let present: HashSet<String> = present.into_iter().collect();
            for id in pending.iter().filter(|id| !present.contains(*id)) {
                let record: Option<String> =
                    redis.hget(&keys[7], id).await.map_err(|e| e.to_string())?;
                let Some(record) = record else { continue };
                let Ok(ev) = serde_json::from_str::<ReservedEvent>(&record) else {
                    continue;
                };
                if now_ms() - ev.created_ms < RECONCILE_AFTER_MS {
                    continue;
                }
                match self
                    .producer
                    .send(
                        FutureRecord::to(&self.reserved_topic)
                            .key(&event)
                            .payload(&record),
                        Duration::from_secs(1),
                    )
                    .await
                {
                    Ok(_) => {
                        self.metrics.republished.inc();
                        info!(reservation = %id, "re-published a reservation PostgreSQL lacked")
                    }
                    Err((e, _)) => return Err(format!("re-publish: {e}")),
                }
            }
        }
        Ok(())
    }
}
