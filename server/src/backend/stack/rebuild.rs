//! Rebuilding Redis from PostgreSQL and the broker after Redis lost its
//! data (crashed without persistence, or replaced by an empty server).
//!
//! Redis holds every event's stock, line and active set; PostgreSQL holds
//! the events, the persisted reservations and the stock ledger
//! (`event_stock`); each line's topic holds who entered it, in order. A
//! Redis that comes back empty must not sell again what PostgreSQL has
//! already sold, so:
//!
//! - **Detection.** A marker key (`ns:redis-epoch`) exists exactly when
//!   Redis holds every event PostgreSQL has. It is written by a finished
//!   rebuild (at the first start too, when there is nothing to rebuild).
//!   The health loop reads it with every probe: Redis answering without
//!   it means Redis lost its data, and until the marker is back every
//!   request that needs Redis gets `503 UNAVAILABLE` with nothing applied
//!   (see [`super::health`]).
//! - **One rebuilder.** Every instance that sees the marker missing tries
//!   a PostgreSQL advisory lock (transaction-scoped, so it dies with an
//!   instance that dies); the one that gets it rebuilds, the others keep
//!   refusing until the marker appears.
//! - **Settle, then catch up.** A reservation accepted by the lost Redis
//!   may still be on its way to the reserved topic (the index write, up to
//!   Redis' 2 s answer timeout, then the send, up to the producer's 5 s
//!   message timeout), and so may a line entry. Those were accepted before
//!   the new Redis started, so the rebuild waits until [`SETTLE`] after
//!   that start, then until the persistence consumer has stored offsets at
//!   the reserved topic's end on every partition. Then PostgreSQL holds
//!   every reservation the lost Redis accepted and sent, and its
//!   `event_stock` is the true remaining stock.
//! - **Per event, atomically.** Each event missing from Redis is written
//!   in one script ([`RESTORE`]), only if it is still missing: its
//!   settings, the remaining stock from `event_stock`, the line read from
//!   its topic (the first offset of each user holds its place, as
//!   admission would have decided), the entries whose users bought (or
//!   paid for a seat) marked used, items bought per user, and the
//!   reservation records. Admission then starts again from the head of the
//!   line: entries that were ACTIVE are admitted again in line order (so a
//!   buyer's token keeps working), and so are entries whose active time had
//!   lapsed (their second chance is the one thing the rebuild cannot tell
//!   apart). The operator's admission controls (pause, queue-all, release
//!   rate) live only in Redis and are lost with it.
//!
//! What it cannot bring back: a reservation whose send to the reserved
//! topic failed and whose record was only in the lost Redis (the
//! reconciler's copy went with it). The test hook
//! `--debug-no-redis-rebuild` turns detection and rebuild off, the
//! negative control: after a loss every purchase is `404`, and the
//! verifier's checks 1 and 2 fail.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use super::error::StackError;
use super::keys::{events_key, EventKeys};
use super::messages::{QueueEntry, ReservedEvent};
use super::{delayed_interval, kafka, next_tick, now_ms, pg, Stack};

/// How long after a lost Redis went away a reservation or a line entry it
/// accepted may still reach its topic: the reservation index write (2 s
/// answer timeout) and the send (the producer's 5 s message timeout), with
/// a second to spare.
const SETTLE: Duration = Duration::from_secs(8);
/// How long the rebuild waits for the persistence consumer to reach the
/// reserved topic's end before it gives up (and tries again).
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);
/// A line is read to its end and then until nothing new came for this long
/// (tansu's watermarks can lag what a fetch returns).
const LINE_QUIET: Duration = Duration::from_millis(300);
/// Longest read of one line.
const LINE_DEADLINE: Duration = Duration::from_secs(30);

/// Present exactly when Redis holds every event PostgreSQL has: written by
/// a finished rebuild, gone with a Redis that lost its data. Namespace-wide,
/// so read and written alone (see `keys`).
pub fn redis_epoch_key(namespace: &str) -> String {
    format!("{namespace}:redis-epoch")
}

/// ARGV: one JSON object (the event's settings and state, see
/// [`Stack::restore_event`]). Writes the event only if Redis lacks it,
/// then runs an admission step. Answers `{"restored": bool}`.
pub const RESTORE: &str = r#"
if redis.call('EXISTS', meta) == 1 then return reply({restored = false}) end
local d = cjson.decode(ARGV[1])
redis.call('HSET', meta, 'stock', d.stock, 'limit', d.limit, 'cap', d.cap, 'ttl', d.ttl, 'name', d.name)
redis.call('HSET', state, 'remaining', d.remaining, 'sold', d.sold, 'n', d.n, 'head', 0)
for _, e in ipairs(d.entries) do
  redis.call('HSET', entries, e[2], e[1] .. ':' .. e[3])
  redis.call('HSET', seqs, e[1], e[2])
end
for _, s in ipairs(d.done) do redis.call('SADD', done, s) end
for _, b in ipairs(d.bought) do redis.call('HSET', bought, b[1], b[2]) end
for _, r in ipairs(d.reservations) do redis.call('HSET', reservations, r[1], r[2]) end
tick(now_ms())
return reply({restored = true})
"#;

#[derive(Debug, Deserialize)]
pub struct RestoreReply {
    pub restored: bool,
}

/// An event as PostgreSQL has it.
struct EventRow {
    event_id: String,
    name: String,
    stock: i64,
    limit: i32,
    cap: i32,
    ttl: i32,
    remaining: i64,
}

impl Stack {
    /// Whether Redis holds the marker of a complete state (see the module
    /// documentation). An error when Redis does not answer.
    pub(super) async fn redis_complete(&self) -> Result<bool, StackError> {
        let present: bool = self.redis.clone().exists(redis_epoch_key(&self.ns)).await?;
        Ok(present)
    }

    /// At start: whether Redis is complete, writing the marker first when
    /// PostgreSQL has no event in this namespace (nothing to rebuild). A
    /// new namespace would otherwise refuse every request until the
    /// rebuild loop's first tick, and a fleet started for one step of a
    /// scaling run is refused its verifier's set-up.
    pub(super) async fn complete_or_fresh(&self) -> Result<bool, StackError> {
        if self.redis_complete().await? {
            return Ok(true);
        }
        let any_event: bool = self
            .pg
            .get()
            .await?
            .query_one("SELECT EXISTS (SELECT 1 FROM events)", &[])
            .await?
            .get(0);
        if any_event {
            return Ok(false);
        }
        let _: () = self
            .redis
            .clone()
            .set(redis_epoch_key(&self.ns), now_ms())
            .await?;
        Ok(true)
    }

    /// Rebuilds whenever the health loop found Redis without its marker,
    /// until the marker is back (written here, or by another instance).
    pub(super) async fn rebuild_loop(self, mut stop: watch::Receiver<bool>) {
        let mut interval = delayed_interval(Duration::from_millis(500));
        while next_tick(&mut interval, &mut stop).await {
            if !self.health.redis_incomplete() {
                continue;
            }
            match self.rebuild().await {
                Ok(true) => self.health.set_redis_incomplete(false),
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "rebuilding Redis from PostgreSQL failed; trying again")
                }
            }
        }
    }

    /// One attempt: true once Redis is complete again (rebuilt here or by
    /// another instance), false while another instance rebuilds.
    async fn rebuild(&self) -> Result<bool, StackError> {
        let mut client = self.pg.get().await?;
        let tx = client.transaction().await?;
        let leader: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock(hashtext('ticketbench:rebuild-redis:' || $1))",
                &[&self.ns],
            )
            .await?
            .get(0);
        if !leader {
            // Another instance rebuilds; done once its marker is there.
            return self.redis_complete().await;
        }
        if self.redis_complete().await? {
            return Ok(true);
        }
        let events = events(&tx).await?;
        warn!(
            events = events.len(),
            "Redis lost its data: rebuilding it from PostgreSQL and the broker; refusing requests that need Redis meanwhile"
        );
        let started = std::time::Instant::now();
        if !events.is_empty() {
            self.settle().await?;
            self.catch_up().await?;
        }
        let mut restored = 0;
        for event in &events {
            if self.restore_event(&tx, event).await? {
                restored += 1;
            }
        }
        let _: () = self
            .redis
            .clone()
            .set(redis_epoch_key(&self.ns), now_ms())
            .await?;
        tx.commit().await?;
        if restored > 0 {
            self.line_added.notify_one();
        }
        info!(
            restored,
            ms = started.elapsed().as_millis() as u64,
            "Redis rebuilt from PostgreSQL and the broker"
        );
        Ok(true)
    }

    /// Waits until [`SETTLE`] after the (new) Redis started: what the lost
    /// one accepted has reached its topic by then.
    async fn settle(&self) -> Result<(), StackError> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.redis.clone())
            .await?;
        let uptime = info
            .lines()
            .find_map(|l| l.strip_prefix("uptime_in_seconds:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let wait = SETTLE.saturating_sub(Duration::from_secs(uptime));
        if !wait.is_zero() {
            info!(
                ms = wait.as_millis() as u64,
                "waiting for sends the lost Redis accepted"
            );
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Waits until the persistence consumer's offsets in PostgreSQL reach
    /// the reserved topic's end on every partition.
    async fn catch_up(&self) -> Result<(), StackError> {
        let reader = self.rebuild_reader.clone();
        let topic = self.topics.reserved.clone();
        let partitions = self.partitions;
        let ends: BTreeMap<i32, i64> = tokio::task::spawn_blocking(move || {
            (0..partitions)
                .map(|p| {
                    reader
                        .fetch_watermarks(&topic, p, Duration::from_secs(5))
                        .map(|(_, high)| (p, high))
                })
                .collect::<Result<_, _>>()
        })
        .await
        .map_err(|e| StackError::Rebuild(format!("watermarks: {e}")))??;
        let until = tokio::time::Instant::now() + CATCH_UP_DEADLINE;
        loop {
            let stored = pg::load_offsets(&self.pg, "persist", &self.topics.reserved).await?;
            let mut behind = Vec::new();
            for (p, end) in &ends {
                let at = stored.get(p).copied().unwrap_or(0);
                if at < *end {
                    behind.push(format!("{p}: {at} of {end}"));
                }
            }
            if behind.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                return Err(StackError::Rebuild(format!(
                    "the persistence consumer did not reach the reserved topic's end (partition: stored of end) {}",
                    behind.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes one event back into Redis if it is missing there; true when
    /// this call wrote it.
    async fn restore_event(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        event: &EventRow,
    ) -> Result<bool, StackError> {
        let keys = EventKeys::new(&self.ns, &event.event_id);
        let mut redis = self.redis.clone();
        let exists: bool = redis.exists(&keys.meta).await?;
        if !exists {
            let line = self.read_line(&event.event_id).await?;
            let bought: Vec<(String, i64)> = tx
                .query(
                    "SELECT user_id, sum(quantity)::bigint FROM reservations WHERE event_id = $1 GROUP BY user_id",
                    &[&event.event_id],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            // A concert's line is the event of the same id: a paid seat
            // used its buyer's token too.
            let paid: Vec<String> = tx
                .query(
                    "SELECT DISTINCT user_id FROM seat_reservations WHERE concert_id = $1 AND status = 'CONFIRMED'",
                    &[&event.event_id],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let reservations: Vec<(String, String)> = tx
                .query(
                    "SELECT reservation_id, user_id, quantity,
                        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                        (extract(epoch FROM created_at) * 1000)::bigint
                     FROM reservations WHERE event_id = $1",
                    &[&event.event_id],
                )
                .await?
                .iter()
                .map(|r| {
                    let ev = ReservedEvent {
                        reservation_id: r.get(0),
                        event_id: event.event_id.clone(),
                        user_id: r.get(1),
                        quantity: r.get::<_, i32>(2) as u32,
                        created_at: r.get(3),
                        created_ms: r.get(4),
                    };
                    let record = serde_json::to_string(&ev).unwrap_or_default();
                    (ev.reservation_id, record)
                })
                .collect();
            let state = restore_state(event, &line, &bought, &paid, &reservations);
            let reply: RestoreReply = self
                .scripts
                .restore
                .on(&keys)
                .arg(state.to_string())
                .run(&mut redis)
                .await?;
            if !reply.restored {
                return Ok(false);
            }
            info!(
                event = %event.event_id,
                remaining = event.remaining,
                entries = line.len(),
                "event rebuilt in Redis"
            );
        }
        let _: () = redis.sadd(events_key(&self.ns), &event.event_id).await?;
        Ok(!exists)
    }

    /// An event's line from its topic: `(offset, entry)` in offset order.
    async fn read_line(&self, event_id: &str) -> Result<Vec<(i64, QueueEntry)>, StackError> {
        let reader = self.rebuild_reader.clone();
        let topic = self.topics.line(event_id);
        let records = tokio::task::spawn_blocking(move || {
            kafka::read_partition(&reader, &topic, LINE_QUIET, LINE_DEADLINE)
        })
        .await
        .map_err(|e| StackError::Rebuild(format!("reading a line: {e}")))??;
        let mut line = Vec::with_capacity(records.len());
        for (offset, payload) in records {
            match serde_json::from_slice::<QueueEntry>(&payload) {
                Ok(e) => line.push((offset, e)),
                Err(_) => warn!(event = %event_id, offset, "malformed queue entry skipped"),
            }
        }
        Ok(line)
    }
}

/// Every event PostgreSQL has, with its remaining stock.
async fn events(tx: &tokio_postgres::Transaction<'_>) -> Result<Vec<EventRow>, StackError> {
    Ok(tx
        .query(
            "SELECT e.event_id, COALESCE(e.name, ''), e.stock, e.per_user_limit,
                    e.active_capacity, e.active_ttl_seconds, s.remaining
             FROM events e JOIN event_stock s USING (event_id) ORDER BY e.event_id",
            &[],
        )
        .await?
        .iter()
        .map(|r| EventRow {
            event_id: r.get(0),
            name: r.get(1),
            stock: r.get(2),
            limit: r.get(3),
            cap: r.get(4),
            ttl: r.get(5),
            remaining: r.get(6),
        })
        .collect())
}

/// The restore script's argument: the event's settings and the state the
/// stores say it had. Each user's first offset holds its place (a later
/// one is a duplicate produced after a lost answer).
fn restore_state(
    event: &EventRow,
    line: &[(i64, QueueEntry)],
    bought: &[(String, i64)],
    paid: &[String],
    reservations: &[(String, String)],
) -> serde_json::Value {
    let mut places: HashMap<&str, i64> = HashMap::new();
    let mut entries = Vec::new();
    for (offset, e) in line {
        if places.contains_key(e.user_id.as_str()) {
            continue;
        }
        places.insert(&e.user_id, *offset);
        entries.push(json!([
            offset.to_string(),
            e.user_id,
            e.issued_at.to_string()
        ]));
    }
    let used = bought
        .iter()
        .map(|(u, _)| u.as_str())
        .chain(paid.iter().map(String::as_str));
    let mut done: Vec<String> = used
        .filter_map(|u| places.get(u).map(|s| s.to_string()))
        .collect();
    done.sort();
    done.dedup();
    let n = line.last().map_or(0, |(offset, _)| offset + 1);
    json!({
        "stock": event.stock.to_string(),
        "limit": event.limit.to_string(),
        "cap": event.cap.to_string(),
        "ttl": event.ttl.to_string(),
        "name": event.name,
        "remaining": event.remaining.to_string(),
        "sold": (event.stock - event.remaining).to_string(),
        "n": n.to_string(),
        "entries": entries,
        "done": done,
        "bought": bought.iter().map(|(u, q)| json!([u, q.to_string()])).collect::<Vec<_>>(),
        "reservations": reservations.iter().map(|(id, r)| json!([id, r])).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: &str) -> QueueEntry {
        QueueEntry {
            event_id: "e".into(),
            user_id: user.into(),
            issued_at: 7,
        }
    }

    #[test]
    fn the_first_offset_holds_a_users_place_and_buyers_tokens_are_used() {
        let event = EventRow {
            event_id: "e".into(),
            name: String::new(),
            stock: 10,
            limit: 1,
            cap: 5,
            ttl: 60,
            remaining: 8,
        };
        let line = [
            (0, entry("a")),
            (1, entry("b")),
            (2, entry("a")),
            (3, entry("c")),
        ];
        let bought = [("a".to_owned(), 1), ("c".to_owned(), 1)];
        let state = restore_state(&event, &line, &bought, &["b".to_owned()], &[]);
        assert_eq!(state["n"], "4");
        assert_eq!(state["sold"], "2");
        assert_eq!(
            state["entries"],
            json!([["0", "a", "7"], ["1", "b", "7"], ["3", "c", "7"]])
        );
        assert_eq!(state["done"], json!(["0", "1", "3"]));
        assert_eq!(state["bought"], json!([["a", "1"], ["c", "1"]]));
    }
}
