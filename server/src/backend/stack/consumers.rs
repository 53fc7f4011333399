//! The stack's two Kafka consumers, each on the partitions this instance
//! leases (see [`super::kafka`]): admission confirms the places of queue
//! entries in offset order, one event's line at a time (see [`super::line`]);
//! persistence writes accepted reservations to PostgreSQL with its offsets,
//! turning PENDING into CONFIRMED.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use redis::AsyncCommands;
use tokio::sync::{watch, Notify};
use tracing::warn;

use super::error::StackError;
use super::keys::{events_key, EventKeys};
use super::line::RegisterReply;
use super::messages::{QueueEntry, ReservedEvent};
use super::{kafka, lua, now_ms, pg, Stack, StackOptions};

/// The admission consumer's `fetch.wait.max.ms`. It is off the buyers'
/// path (an entrant's own write confirms its place; the consumer only
/// adopts places whose instance died and passes places nobody holds), and
/// every fetch costs tansu's SQLite engine more as the line grows (an idle
/// line of 1,100 entries cost the broker 0.2 CPU at 5 ms), so it waits
/// long: such a place is passed within about this much.
const ADMISSION_FETCH_WAIT_MS: u32 = 100;
/// The persistence consumer's: it only turns PENDING into CONFIRMED.
const PERSIST_FETCH_WAIT_MS: u32 = 100;

impl Stack {
    /// The two leased consumers: admission (queue topic -> places in Redis)
    /// and persistence (reserved topic -> PostgreSQL).
    pub(super) fn spawn_consumers(&self, options: &StackOptions, stop: watch::Receiver<bool>) {
        self.spawn_delayed_expiry(options, stop.clone());
        let spec = |consumer: &'static str, fetch_wait_ms: u32, rebalance| kafka::ConsumerSpec {
            brokers: options.kafka_brokers.clone(),
            postgres_url: options.postgres_url.clone(),
            schema: self.ns.clone(),
            consumer,
            instance: options.instance_id.clone(),
            rebalance,
            fetch_wait_ms,
        };
        let (stack, lister) = (self.clone(), self.clone());
        // Its units are the events' lines, so the set grows with every
        // event.
        tokio::spawn(kafka::run_leased(
            spec(
                "admission",
                ADMISSION_FETCH_WAIT_MS,
                self.line_added.clone(),
            ),
            self.pg.clone(),
            stop.clone(),
            move || {
                let stack = lister.clone();
                async move { stack.lines().await }
            },
            move |records, next| {
                let stack = stack.clone();
                async move { stack.admit(records, next).await }
            },
        ));
        let stack = self.clone();
        let reserved = kafka::partitions_of(&self.topics.reserved, options.partitions);
        tokio::spawn(kafka::run_leased(
            spec("persist", PERSIST_FETCH_WAIT_MS, Arc::new(Notify::new())),
            self.pg.clone(),
            stop,
            move || std::future::ready(Ok(reserved.clone())),
            move |records, next| {
                let stack = stack.clone();
                async move { stack.persist(records, next).await }
            },
        ));
    }

    /// Every event's line, as the admission consumer's units.
    async fn lines(&self) -> Result<Vec<kafka::Unit>, StackError> {
        let mut ids: Vec<String> = self.redis.clone().smembers(events_key(&self.ns)).await?;
        ids.sort();
        Ok(ids.iter().map(|id| (self.topics.line(id), 0)).collect())
    }

    /// The admission consumer: confirms places in offset order (adopting
    /// those whose entering instance never wrote them), and with them lets
    /// admission move on.
    async fn admit(
        &self,
        records: Vec<kafka::Record>,
        next: kafka::NextOffsets,
    ) -> Result<(), StackError> {
        let mut redis = self.redis.clone();
        let mut entries = Vec::with_capacity(records.len());
        for r in &records {
            let Ok(entry) = serde_json::from_slice::<QueueEntry>(&r.payload) else {
                warn!(offset = r.offset, "malformed queue entry skipped");
                continue;
            };
            if r.topic != self.topics.line(&entry.event_id) {
                warn!(topic = %r.topic, event = %entry.event_id, "queue entry on another event's line skipped");
                continue;
            }
            entries.push((r, entry));
        }
        // One round trip per run of one event's entries (in offset order),
        // not one per entry: the line's lease holder consumes every
        // instance's entrants, and per-entry round trips made it the
        // fleet's busiest instance.
        for run in entries.chunk_by(|(_, a), (_, b)| a.event_id == b.event_id) {
            let keys = EventKeys::new(&self.ns, &run[0].1.event_id);
            let calls: Vec<_> = run
                .iter()
                .map(|(r, entry)| {
                    self.scripts
                        .register
                        .on(&keys)
                        .arg(&entry.user_id)
                        .arg(entry.issued_at)
                        .arg(r.offset)
                })
                .collect();
            let replies: Vec<RegisterReply> = lua::run_pipelined(&calls, &mut redis).await?;
            for ((r, entry), placed) in run.iter().zip(replies) {
                match placed {
                    RegisterReply::NotFound => {
                        warn!(event = %entry.event_id, "queue entry for an unknown event skipped")
                    }
                    RegisterReply::Taken => tracing::error!(
                        topic = %r.topic,
                        offset = r.offset,
                        "a place in line held by another user: the line's log was lost"
                    ),
                    RegisterReply::Placed | RegisterReply::Adopted | RegisterReply::Void => {}
                }
            }
        }
        let client = self.pg.get().await?;
        for (topic, next) in &next {
            pg::store_offsets(&client, "admission", topic, next).await?;
        }
        Ok(())
    }

    /// The persistence consumer: reservations into PostgreSQL with the
    /// offsets, then clears them from Redis' pending sets.
    async fn persist(
        &self,
        records: Vec<kafka::Record>,
        next: kafka::NextOffsets,
    ) -> Result<(), StackError> {
        let next = next.get(&self.topics.reserved).cloned().unwrap_or_default();
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
            pg::persist(&self.pg, "persist", &self.topics.reserved, &batch, &next)
                .await
                .inspect_err(|e| {
                    if e.sql_state() == Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION) {
                        tracing::error!(
                            "PERSISTED SALES WOULD EXCEED STOCK: PostgreSQL refused the batch"
                        );
                    }
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
            let pending = EventKeys::new(&self.ns, event).pending;
            let _: redis::RedisResult<()> = redis.srem(&pending, ids).await;
        }
        Ok(())
    }
}
