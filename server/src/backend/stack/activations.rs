//! `queue.activated`: one record on the broker (topic `queue.activated`,
//! namespaced like the others, key: the event id) for each user admitted
//! (WAITING to ACTIVE, or ACTIVE at entry).
//!
//! Admission happens inside the line's Lua scripts (any of them may move
//! the head), so it is published after the fact: a loop on every instance
//! (every 250 ms) compares each event's head with a cursor of its own
//! (`{ns:ev:ID}:activated`), sends a record for every admitted place
//! between them (the places with a holder), then moves the cursor by
//! compare-and-set. At least once: two instances may both send a range
//! before one moves the cursor, and a failed send leaves the cursor where
//! it was; the record id (`queue.activated:{eventId}:{seq}`) is stable,
//! for consumers to drop repeats.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{AsyncCommands, Script};
use serde::Serialize;
use tokio::sync::watch;
use tracing::warn;

use super::keys::{events_key, EventKeys, DEFAULT_NAMESPACE};
use super::{delayed_interval, kafka, next_tick, Stack};

const EVERY: Duration = Duration::from_millis(250);
/// Places published per event per pass.
const BATCH: u32 = 500;

/// ARGV: batch. Answers [cursor, end, now_ms, seq1, user1, seq2, ...]:
/// the admitted places in [cursor, end) that have a holder.
static SCAN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local state, seqs, cursor = KEYS[1], KEYS[2], KEYS[3]
          local head = tonumber(redis.call('HGET', state, 'head') or '0')
          local from = tonumber(redis.call('GET', cursor) or '0')
          local to = math.min(head, from + tonumber(ARGV[1]))
          local t = redis.call('TIME')
          local out = {tostring(from), tostring(to),
                       tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))}
          for s = from, to - 1 do
            local u = redis.call('HGET', seqs, s)
            if u then out[#out + 1] = tostring(s); out[#out + 1] = u end
          end
          return out",
    )
});

/// Moves the cursor KEYS[1] from ARGV[1] to ARGV[2], if it is still there.
static ADVANCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if (redis.call('GET', KEYS[1]) or '0') == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2])
            return 1
          end
          return 0",
    )
});

/// One `queue.activated` record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activated<'a> {
    /// `queue.activated:{eventId}:{seq}`: the same for every copy.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub event_id: &'a str,
    pub user_id: &'a str,
    /// The entry's place in line (0-based).
    pub seq: u64,
    /// When the publisher saw the admission (Redis' clock, ms since the
    /// epoch): at most one pass (250 ms) after it, unless Kafka was down.
    pub seen_at_ms: i64,
}

/// The topic of a namespace.
pub fn topic(namespace: &str) -> String {
    if namespace == DEFAULT_NAMESPACE {
        "queue.activated".to_owned()
    } else {
        format!("{namespace}.queue.activated")
    }
}

fn cursor_key(keys: &EventKeys) -> String {
    // The event's hash tag, so the scan's keys share one slot.
    let tag = keys.state.strip_suffix(":state").unwrap_or(&keys.state);
    format!("{tag}:activated")
}

impl Stack {
    pub(super) async fn activations_loop(self, mut stop: watch::Receiver<bool>) {
        let topic = topic(&self.ns);
        if let Err(e) = kafka::create_topics(&self.admin, &[&topic], self.partitions).await {
            warn!(error = %e, topic, "queue.activated topic not created; sends will retry it");
        }
        let mut interval = delayed_interval(EVERY);
        while next_tick(&mut interval, &mut stop).await {
            let ids: Vec<String> = self
                .redis
                .clone()
                .smembers(events_key(&self.ns))
                .await
                .unwrap_or_default();
            for id in ids {
                if let Err(e) = self.publish_activations(&topic, &id).await {
                    tracing::debug!(error = %e, event = %id, "queue.activated pass");
                }
            }
        }
    }

    async fn publish_activations(&self, topic: &str, event_id: &str) -> anyhow::Result<()> {
        let keys = EventKeys::new(&self.ns, event_id);
        let cursor = cursor_key(&keys);
        let mut redis = self.redis.clone();
        let scan: Vec<String> = SCAN
            .key(&keys.state)
            .key(&keys.seqs)
            .key(&cursor)
            .arg(BATCH)
            .invoke_async(&mut redis)
            .await?;
        let [from, to, now, places @ ..] = scan.as_slice() else {
            anyhow::bail!("scan answered {scan:?}");
        };
        if from == to {
            return Ok(());
        }
        let seen_at_ms: i64 = now.parse()?;
        let mut payloads = Vec::with_capacity(places.len() / 2);
        for pair in places.chunks(2) {
            let [seq, user] = pair else { continue };
            let record = Activated {
                id: format!("queue.activated:{event_id}:{seq}"),
                kind: "queue.activated",
                event_id,
                user_id: user,
                seq: seq.parse()?,
                seen_at_ms,
            };
            payloads.push(serde_json::to_string(&record)?);
        }
        // All of a pass's records are handed to the producer before any
        // acknowledgement is awaited, in order (the futures are first
        // polled in order): one event's records share a partition, so they
        // leave as one batch instead of one produce request each, which is
        // what the broker's CPU is spent on (reports/broker-cost.md).
        let sends = payloads.iter().map(|payload| {
            self.producer
                .send(topic, event_id, payload, Duration::from_secs(1))
        });
        for sent in futures_util::future::join_all(sends).await {
            sent?;
            self.ops.activated.inc();
        }
        let _: i64 = ADVANCE
            .key(&cursor)
            .arg(from)
            .arg(to)
            .invoke_async(&mut redis)
            .await?;
        Ok(())
    }
}
