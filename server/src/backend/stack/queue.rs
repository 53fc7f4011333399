//! Events and their waiting lines on the shared stack.
//!
//! The waiting stage is the broker: `enter` produces the entry to the
//! event's line topic and answers with the offset the broker acknowledged
//! as its place (see [`super::line`]), so every instance sees one line.
//! SSE streams follow the admission head, woken by Redis pub/sub (see
//! [`super::wakeups`]).

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;

use super::health::Component;
use super::keys::events_key;
use super::lua::{CreateReply, EventNumbers, ScriptStatus, ViewReply};
use super::StackBackend;
use crate::backend::rules::{estimate_wait_seconds, unknown_entry, RecentAdmissions};
use crate::backend::{Queue, QueueWatch};
use crate::error::{Error, Result};
use crate::model::{Entered, EntryStatus, EventSpec, EventView, QueueStatus, QueueView};
use crate::token::Claims;

/// How often an SSE follower reads its event's admission cursor itself:
/// the fallback for a wake-up lost while the subscriber reconnected.
const CURSOR_POLL: Duration = Duration::from_secs(1);
/// How long `enter` waits, when there is room, for the concurrent entrants
/// ahead of it to write their places (normally milliseconds; a place whose
/// instance died is adopted by the admission consumer).
const ROOM_WAIT: Duration = Duration::from_secs(1);
/// How often that wait looks again, in case a wake-up was missed.
const ROOM_RECHECK: Duration = Duration::from_millis(25);

impl Queue for StackBackend {
    async fn create_event(&self, spec: EventSpec) -> Result<EventView> {
        self.require(&[Component::Redis, Component::Postgres, Component::Kafka])?;
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
        // The line's topic first: an event must never exist without it.
        let line = self.stack().topics.line(&spec.event_id);
        super::kafka::create_topics(&self.stack().admin, &[line.as_str()], 1).await?;
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
        self.stack().line_added.notify_one();
        self.event(&spec.event_id).await
    }

    async fn event(&self, event_id: &str) -> Result<EventView> {
        Ok(event_view(event_id, &self.view(event_id, None).await?))
    }

    async fn enter(&self, event_id: &str, user_id: &str) -> Result<Entered> {
        self.require(&[Component::Redis, Component::Kafka])?;
        let (seq, issued_at) = self.take_place(event_id, user_id).await?;
        let claims = Claims {
            event_id: event_id.to_owned(),
            user_id: user_id.to_owned(),
            seq,
            issued_at,
        };
        let mut numbers = self.view(event_id, Some(&claims)).await?;
        // Admission never passes a place acknowledged but not yet written,
        // so an entrant behind concurrent entrants can be WAITING although
        // there is room: it waits for them (woken when the head moves), so
        // that with room it is answered ACTIVE, as an uncontended one is.
        if held_back(&numbers) {
            let (mut head, first) = self.stack().wakeups.follow(event_id);
            if let Some(tx) = first {
                tokio::spawn(follow_cursor(
                    Arc::downgrade(&self.shared),
                    tx,
                    self.keys(event_id).state,
                    event_id.to_owned(),
                ));
            }
            let until = tokio::time::Instant::now() + ROOM_WAIT;
            while held_back(&numbers) && tokio::time::Instant::now() < until {
                let _ = tokio::time::timeout(ROOM_RECHECK, head.changed()).await;
                numbers = self.view(event_id, Some(&claims)).await?;
            }
        }
        Ok(Entered {
            seq,
            issued_at,
            view: queue_view(&numbers, seq).ok_or_else(unknown_entry)?,
        })
    }

    async fn queue_status(&self, claims: &Claims) -> Result<EntryStatus> {
        let numbers = match self.view(&claims.event_id, Some(claims)).await {
            Err(Error::NotFound(_)) => return Err(unknown_entry()),
            other => other?,
        };
        let view = queue_view(&numbers, claims.seq).ok_or_else(unknown_entry)?;
        Ok(EntryStatus {
            view,
            active_remaining_seconds: active_remaining_seconds(&numbers),
        })
    }

    async fn watch_queue(&self, claims: &Claims) -> Result<QueueWatch> {
        let current = self.queue_status(claims).await?.view;
        let (cursor, first) = self.stack().wakeups.follow(&claims.event_id);
        if let Some(tx) = first {
            tokio::spawn(follow_cursor(
                Arc::downgrade(&self.shared),
                tx,
                self.keys(&claims.event_id).state,
                claims.event_id.clone(),
            ));
        }
        Ok(QueueWatch { cursor, current })
    }
}

impl StackBackend {
    /// The event's numbers and, with `entry`, that entry's status.
    pub(super) async fn view(
        &self,
        event_id: &str,
        entry: Option<&Claims>,
    ) -> Result<EventNumbers> {
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
}

/// Reads an event's admission cursor now and then while anyone listens
/// (wake-ups do the rest), and stops following it once nobody does.
async fn follow_cursor(
    backend: std::sync::Weak<super::Shared>,
    tx: tokio::sync::watch::Sender<u64>,
    state_key: String,
    event_id: String,
) {
    // Held so the event stays followed until this task gives it up.
    let _tx = tx;
    loop {
        let Some(shared) = backend.upgrade() else {
            return;
        };
        let wakeups = &shared.stack.wakeups;
        if wakeups.unfollow_if_unheard(&event_id) {
            return;
        }
        let head: redis::RedisResult<Option<u64>> =
            shared.stack.redis.clone().hget(&state_key, "head").await;
        if let Ok(Some(head)) = head {
            wakeups.head_seen(&event_id, head);
        }
        drop(shared);
        tokio::time::sleep(CURSOR_POLL).await;
    }
}

/// WAITING while fewer than the event's capacity are ACTIVE and the
/// operator lets admission run freely (not held, no release rate): only
/// places ahead that are not yet written hold the entry back.
fn held_back(n: &EventNumbers) -> bool {
    matches!(n.status, Some(ScriptStatus::Waiting))
        && n.active < u64::from(n.cap)
        && !(n.paused || n.queue_all || n.rate > 0)
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

/// Whole seconds (rounded up) until the asked entry's active time runs
/// out, on Redis' clock; 0 unless it is ACTIVE.
fn active_remaining_seconds(n: &EventNumbers) -> u64 {
    match (n.status, n.active_until) {
        (Some(ScriptStatus::Active), Some(until)) => {
            u64::try_from(until - n.now).unwrap_or(0).div_ceil(1000)
        }
        _ => 0,
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
        paused: n.paused || n.queue_all,
        cursor: n.head,
    })
}
