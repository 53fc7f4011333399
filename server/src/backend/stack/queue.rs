//! Events and their waiting lines on the shared stack.
//!
//! The waiting stage is the broker: `enter` produces the entry to the queue
//! topic (keyed by event, so FIFO per event), and the admission consumer
//! gives it its place in offset order (the register script). `enter` then
//! answers with that place, so every instance sees one line.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use redis::AsyncCommands;
use tokio::sync::watch;
use tracing::warn;

use super::health::Component;
use super::keys::events_key;
use super::lua::{CreateReply, EventNumbers, ViewReply};
use super::messages::QueueEntry;
use super::StackBackend;
use crate::backend::rules::{estimate_wait_seconds, unknown_entry, RecentAdmissions};
use crate::backend::{Queue, QueueWatch};
use crate::error::{Error, Result};
use crate::model::{now_unix, Entered, EventSpec, EventView, QueueStatus, QueueView};
use crate::token::Claims;

/// How long `enter` waits for the admission consumer to place an entry.
const PLACE_DEADLINE: Duration = Duration::from_secs(10);
/// How often an SSE follower reads its event's admission cursor.
const CURSOR_POLL: Duration = Duration::from_millis(50);

impl Queue for StackBackend {
    async fn create_event(&self, spec: EventSpec) -> Result<EventView> {
        self.require(&[Component::Redis, Component::Postgres])?;
        let mut client = self.pg().await?;
        let tx = client.transaction().await?;
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
            .await?;
        let exists = || Error::AlreadyExists(format!("event {} already exists", spec.event_id));
        if inserted == 0 {
            return Err(exists());
        }
        tx.execute(
            "INSERT INTO event_stock (event_id, remaining) VALUES ($1, $2)",
            &[&spec.event_id, &(spec.stock as i64)],
        )
        .await?;
        let keys = self.keys(&spec.event_id);
        let created: CreateReply = self
            .stack()
            .scripts
            .create
            .on(&keys)
            .arg(spec.stock)
            .arg(spec.per_user_limit)
            .arg(spec.active_capacity)
            .arg(spec.active_ttl_seconds)
            .arg(spec.name.as_deref().unwrap_or(""))
            .run(&mut self.redis())
            .await?;
        if !created.created {
            return Err(exists());
        }
        if let Err(e) = tx.commit().await {
            // Undo the Redis side so that nothing was applied.
            let _: redis::RedisResult<()> = self.redis().del(&keys.for_script()[..]).await;
            return Err(e.into());
        }
        let _: redis::RedisResult<()> = self
            .redis()
            .sadd(events_key(&self.stack().ns), &spec.event_id)
            .await;
        self.event(&spec.event_id).await
    }

    async fn event(&self, event_id: &str) -> Result<EventView> {
        Ok(event_view(event_id, &self.view(event_id, None).await?))
    }

    async fn enter(&self, event_id: &str, user_id: &str) -> Result<Entered> {
        self.require(&[Component::Redis, Component::Kafka])?;
        let keys = self.keys(event_id);
        let existing: Option<String> = self.redis().hget(&keys.entries, user_id).await?;
        let (seq, issued_at) = match existing.and_then(|v| parse_entry(&v)) {
            Some(entry) => entry,
            None => {
                let exists: bool = self.redis().exists(&keys.meta).await?;
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
                self.stack()
                    .producer
                    .send(
                        FutureRecord::to(&self.stack().topics.queue)
                            .key(event_id)
                            .payload(&payload),
                        Duration::from_secs(2),
                    )
                    .await
                    .map_err(|(e, _)| {
                        warn!(error = %e, "queue entry not produced");
                        Error::Unavailable("Kafka")
                    })?;
                self.await_place(&keys.entries, user_id).await?
            }
        };
        let claims = Claims {
            event_id: event_id.to_owned(),
            user_id: user_id.to_owned(),
            seq,
            issued_at,
        };
        let numbers = self.view(event_id, Some(&claims)).await?;
        Ok(Entered {
            seq,
            issued_at,
            view: queue_view(&numbers, seq).ok_or_else(unknown_entry)?,
        })
    }

    async fn queue_status(&self, claims: &Claims) -> Result<QueueView> {
        let numbers = match self.view(&claims.event_id, Some(claims)).await {
            Err(Error::NotFound(_)) => return Err(unknown_entry()),
            other => other?,
        };
        queue_view(&numbers, claims.seq).ok_or_else(unknown_entry)
    }

    async fn watch_queue(&self, claims: &Claims) -> Result<QueueWatch> {
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
        tokio::spawn(follow_cursor(
            Arc::downgrade(&self.shared),
            tx,
            self.keys(&claims.event_id).state,
            claims.event_id.clone(),
        ));
        Ok(QueueWatch {
            cursor: rx,
            current,
        })
    }
}

impl StackBackend {
    /// The event's numbers and, with `entry`, that entry's status.
    async fn view(&self, event_id: &str, entry: Option<&Claims>) -> Result<EventNumbers> {
        self.require(&[Component::Redis])?;
        let (seq, user) = match entry {
            Some(c) => (c.seq.to_string(), c.user_id.as_str()),
            None => (String::new(), ""),
        };
        let reply: ViewReply = self
            .stack()
            .scripts
            .view
            .on(&self.keys(event_id))
            .arg(seq)
            .arg(user)
            .run(&mut self.redis())
            .await?;
        match reply {
            ViewReply::Ok(numbers) => Ok(numbers),
            ViewReply::NotFound => Err(Error::not_found(format!("event {event_id} not found"))),
        }
    }

    /// Waits for the admission consumer to give `user` its place.
    async fn await_place(&self, entries_key: &str, user: &str) -> Result<(u64, u64)> {
        let until = tokio::time::Instant::now() + PLACE_DEADLINE;
        let mut pause = Duration::from_millis(1);
        loop {
            let v: Option<String> = self.redis().hget(entries_key, user).await?;
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
}

/// Follows an event's admission cursor while anyone listens.
async fn follow_cursor(
    backend: std::sync::Weak<super::Shared>,
    tx: watch::Sender<u64>,
    state_key: String,
    event_id: String,
) {
    loop {
        tokio::time::sleep(CURSOR_POLL).await;
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
}

fn event_view(event_id: &str, n: &EventNumbers) -> EventView {
    EventView {
        event_id: event_id.to_owned(),
        name: Some(n.name.clone()).filter(|n| !n.is_empty()),
        stock: n.stock,
        remaining: n.remaining,
        sold: n.sold,
        waiting: n.entries.saturating_sub(n.head),
        active: n.active,
        per_user_limit: n.limit,
        active_capacity: n.cap,
        active_ttl_seconds: n.ttl,
    }
}

/// The entry `seq`'s view, if the script found it (and its owner).
fn queue_view(n: &EventNumbers, seq: u64) -> Option<QueueView> {
    let status = n.status?.queue_status()?;
    let position = if status == QueueStatus::Waiting {
        seq + 1 - n.head
    } else {
        0
    };
    let recent = RecentAdmissions {
        count: n.admissions.len(),
        span_secs: n
            .admissions
            .last()
            .map_or(0.0, |&oldest| (n.now - oldest) as f64 / 1000.0),
    };
    Some(QueueView {
        status,
        position,
        estimated_wait_seconds: estimate_wait_seconds(position, recent, n.cap, f64::from(n.ttl)),
        cursor: n.head,
    })
}

/// An entry as the register script stores it: `seq:issuedAt`.
fn parse_entry(v: &str) -> Option<(u64, u64)> {
    let (seq, iat) = v.split_once(':')?;
    Some((seq.parse().ok()?, iat.parse().ok()?))
}
