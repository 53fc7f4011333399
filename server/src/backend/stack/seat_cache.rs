//! The seat-map cache (`--seat-cache-ttl`, off by default): the design's
//! Redis cache of a schedule's seat map with a short TTL, which must never
//! show a seat AVAILABLE after it was HELD or CONFIRMED.
//!
//! - Each schedule has a generation key (no TTL, only ever incremented)
//!   and one entry (with a TTL) holding the generation it was filled at.
//!   A read hits only an entry of the current generation.
//! - Every change a reader could see (a hold, a payment, a swept expiry)
//!   increments the generation after its commit and before its answer, so
//!   a read that starts after the change misses every older entry.
//! - A reader fills the entry only if the generation is still the one it
//!   read before it read PostgreSQL (one Lua script), so a read that raced
//!   a change never stores the state the change replaced.
//! - No entry outlives the earliest hold it shows HELD, so a lapsed hold
//!   reads AVAILABLE on time.
//!
//! Hits and misses are counted (`seat_cache_hits_total`,
//! `seat_cache_misses_total`; the hit rate is derived in
//! `deploy/prometheus/alerts.yml`).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use redis::Script;
use tracing::warn;

use super::seat_options::SeatOptions;
use super::{Stack, StackBackend};
use crate::concert::SeatView;
use crate::error::Result;

/// Stores ARGV[2] (generation, newline, JSON) in KEYS[2] for ARGV[3] ms if
/// the generation KEYS[1] is still ARGV[1].
static FILL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if (redis.call('GET', KEYS[1]) or '0') == ARGV[1] then
            redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
            return 1
          end
          return 0",
    )
});

pub struct SeatCache {
    /// Zero: no cache.
    ttl: Duration,
    /// False only in the negative control: holds and payments leave
    /// entries as they are.
    invalidate: bool,
    hits: Counter,
    misses: Counter,
}

/// A schedule's generation key and entry key (one hash tag: one slot).
fn keys(ns: &str, concert_id: &str, schedule_id: &str) -> (String, String) {
    let tag = format!("{{{ns}:seatmap:{concert_id}}}:{schedule_id}");
    (format!("{tag}:gen"), format!("{tag}:map"))
}

impl SeatCache {
    pub fn new(options: &SeatOptions) -> Self {
        SeatCache {
            ttl: options.seat_cache_ttl,
            invalidate: !options.unsafe_cache,
            hits: Counter::default(),
            misses: Counter::default(),
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "seat_cache_hits",
            "Seat-map reads answered from the Redis cache",
            self.hits.clone(),
        );
        registry.register(
            "seat_cache_misses",
            "Seat-map reads the Redis cache did not answer (read from PostgreSQL)",
            self.misses.clone(),
        );
    }
}

impl Stack {
    /// A change to the schedule's seats was committed: entries filled
    /// before it are no longer read. The negative control skips it for a
    /// hold or a payment (`sweep` false).
    pub(super) async fn invalidate_seat_map(
        &self,
        concert_id: &str,
        schedule_id: &str,
        sweep: bool,
    ) {
        let cache = &self.seat_map.cache;
        if cache.ttl.is_zero() || !(cache.invalidate || sweep) {
            return;
        }
        let (gen, _) = keys(&self.ns, concert_id, schedule_id);
        let bumped: redis::RedisResult<i64> = redis::cmd("INCR")
            .arg(&gen)
            .query_async(&mut self.redis.clone())
            .await;
        if let Err(e) = bumped {
            // The entry lives at most its TTL (or its first hold's time).
            warn!(error = %e, concert_id, schedule_id, "seat-map cache not invalidated");
        }
    }
}

impl StackBackend {
    /// The seat map, from the cache when it is on and has it.
    pub(super) async fn cached_seats(
        &self,
        concert_id: &str,
        schedule_id: &str,
    ) -> Result<Vec<SeatView>> {
        let cache = &self.stack().seat_map.cache;
        if cache.ttl.is_zero() {
            return self.seats_from_pg(concert_id, schedule_id).await;
        }
        let (gen_key, map_key) = keys(&self.stack().ns, concert_id, schedule_id);
        let mut redis = self.redis();
        let (gen, entry): (Option<String>, Option<String>) = redis::cmd("MGET")
            .arg(&gen_key)
            .arg(&map_key)
            .query_async(&mut redis)
            .await?;
        let gen = gen.unwrap_or_else(|| "0".to_owned());
        if let Some((filled_at, json)) = entry.as_deref().and_then(|e| e.split_once('\n')) {
            if filled_at == gen {
                if let Ok(seats) = serde_json::from_str(json) {
                    cache.hits.inc();
                    return Ok(seats);
                }
            }
        }
        cache.misses.inc();
        let seats = self.seats_from_pg(concert_id, schedule_id).await?;
        let lifetime = match self.first_lapse(concert_id, schedule_id).await? {
            Some(lapse) => cache.ttl.min(lapse),
            None => cache.ttl,
        };
        let ms = lifetime.as_millis() as u64;
        if ms > 0 {
            let body = serde_json::to_string(&seats).expect("seat views serialise");
            let filled: redis::RedisResult<i64> = FILL
                .key(&gen_key)
                .key(&map_key)
                .arg(&gen)
                .arg(format!("{gen}\n{body}"))
                .arg(ms)
                .invoke_async(&mut redis)
                .await;
            if let Err(e) = filled {
                warn!(error = %e, concert_id, schedule_id, "seat-map cache not filled");
            }
        }
        Ok(seats)
    }

    /// How long until the schedule's first live hold lapses, if it has one.
    async fn first_lapse(&self, concert_id: &str, schedule_id: &str) -> Result<Option<Duration>> {
        let row = self
            .pg()
            .await?
            .query_one(
                "SELECT floor(extract(epoch FROM min(hold_expires_at) - now()) * 1000)::bigint
                 FROM seats WHERE concert_id = $1 AND schedule_id = $2
                   AND status = 'HELD' AND hold_expires_at > now()",
                &[&concert_id, &schedule_id],
            )
            .await?;
        Ok(row
            .get::<_, Option<i64>>(0)
            .map(|ms| Duration::from_millis(ms.max(0) as u64)))
    }
}
