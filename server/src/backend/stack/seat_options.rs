//! The real backend's seat-map options (command line): how a hold claims
//! its seat (see [`super::seat_lock`]), the seat-map cache (see
//! [`super::seat_cache`]) and who releases lapsed holds (see
//! [`super::sweepers`]). The embedded backend has none of them.

use std::time::Duration;

use super::seat_cache::SeatCache;
use super::seat_lock::redis_lock::LockCounters;
use super::seat_lock::SeatLockKind;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SeatOptions {
    /// How the real backend claims a seat for a hold: `conditional` (one
    /// conditional UPDATE), `row-lock` (SELECT ... FOR UPDATE, check,
    /// UPDATE) or `redis-lock` (a per-seat Redis lock with an owner and a
    /// watchdog, then the write). The embedded backend ignores it (its
    /// holds are one step under one mutex).
    #[arg(long, env = "SEAT_LOCK", value_enum, default_value_t = SeatLockKind::Conditional)]
    pub seat_lock: SeatLockKind,

    /// NEGATIVE CONTROL ONLY (real backend, `--seat-lock redis-lock`): the
    /// lock has no watchdog and a 50 ms lease while its holder takes
    /// 100 ms, and the write trusts the lock (it retires the seat's active
    /// hold, not only a lapsed one), so the unique index cannot catch the
    /// overlap: two users hold one seat.
    #[arg(long = "unsafe-seat-lock", env = "UNSAFE_SEAT_LOCK")]
    pub unsafe_lock: bool,

    /// TEST HOOK: the redis-lock lease in milliseconds (default 30 000, as
    /// Redisson's); the watchdog extends it every third of it.
    #[arg(long = "debug-seat-lock-lease-ms", hide = true)]
    pub lease_ms: Option<u64>,

    /// TEST HOOK: a redis-lock holder waits this long between its read and
    /// its write (a slow holder, which the watchdog must cover).
    #[arg(long = "debug-seat-lock-slow-ms", hide = true, default_value_t = 0)]
    pub slow_ms: u64,

    /// Cache each schedule's seat map in Redis this long (`500ms`, `2s`;
    /// up to 60 s; `0`, the default, is no cache). Every hold, payment
    /// and expiry invalidates it, and no entry outlives the earliest hold
    /// it shows. Real backend only.
    #[arg(long, env = "SEAT_CACHE_TTL", default_value = "0", value_parser = parse_cache_ttl)]
    pub seat_cache_ttl: Duration,

    /// NEGATIVE CONTROL ONLY (real backend, with `--seat-cache-ttl`): holds
    /// and payments do not invalidate the seat-map cache, so a seat just
    /// held is shown AVAILABLE until the entry expires.
    #[arg(long = "unsafe-seat-cache", env = "UNSAFE_SEAT_CACHE")]
    pub unsafe_cache: bool,

    /// Who releases an unpaid hold once it lapses: `sweeper` (the default:
    /// reads and holds treat a lapsed hold as free at once, and a sweep
    /// every 250 ms releases it for good) or `delayed` (the design's
    /// delayed message: a `reservation.created` consumer releases each hold
    /// at its deadline, and the seat stays HELD until it has). The
    /// embedded backend ignores it (it releases lapsed holds when read).
    #[arg(long, env = "SEAT_EXPIRY", value_enum, default_value_t = Expiry::Sweeper)]
    pub expiry: Expiry,

    /// NEGATIVE CONTROL ONLY (real backend, `--expiry delayed`): the
    /// delayed release fires 10 s after each hold's deadline, so a lapsed
    /// hold keeps its seat far past its time.
    #[arg(long = "unsafe-expiry", env = "UNSAFE_EXPIRY")]
    pub unsafe_expiry: bool,
}

/// Who releases lapsed holds (`--expiry`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Expiry {
    /// Lapsed holds read as free at once; a periodic sweep releases them.
    #[default]
    Sweeper,
    /// A `reservation.created` consumer releases each hold at its deadline.
    Delayed,
}

impl SeatOptions {
    /// The SQL condition under which a HELD row whose deadline is in
    /// `deadline` counts as free: at once under the sweeper, never under
    /// delayed expiry (only the release frees the seat, so the verifier
    /// sees when the delayed message fires).
    pub fn lapsed_sql(&self, deadline: &str) -> String {
        match self.expiry {
            Expiry::Sweeper => format!("{deadline} <= now()"),
            Expiry::Delayed => "false".to_owned(),
        }
    }
}

impl SeatOptions {
    /// Refuses combinations that mean nothing, and warns loudly when a
    /// negative control is on.
    pub fn check(&self, real_backend: bool) -> anyhow::Result<()> {
        for (on, flag) in [
            (self.unsafe_lock, "--unsafe-seat-lock"),
            (self.unsafe_cache, "--unsafe-seat-cache"),
            (self.unsafe_expiry, "--unsafe-expiry"),
        ] {
            anyhow::ensure!(
                !on || real_backend,
                "{flag} exists only on the real backend"
            );
        }
        anyhow::ensure!(
            !self.unsafe_lock || self.seat_lock == SeatLockKind::RedisLock,
            "--unsafe-seat-lock needs --seat-lock redis-lock"
        );
        anyhow::ensure!(
            !self.unsafe_cache || !self.seat_cache_ttl.is_zero(),
            "--unsafe-seat-cache needs --seat-cache-ttl"
        );
        anyhow::ensure!(
            !self.unsafe_expiry || self.expiry == Expiry::Delayed,
            "--unsafe-expiry needs --expiry delayed"
        );
        anyhow::ensure!(
            self.lease_ms.is_none_or(|ms| ms >= 10),
            "--debug-seat-lock-lease-ms must be at least 10"
        );
        if self.unsafe_lock {
            tracing::warn!("UNSAFE SEAT LOCK MODE: the redis-lock lease runs out mid-hold and the write trusts the lock. Two users WILL hold one seat. Negative control for the verifier only.");
        }
        if self.unsafe_expiry {
            tracing::warn!("UNSAFE EXPIRY MODE: delayed releases fire 10 s after each hold's deadline. Lapsed holds WILL keep their seats. Negative control for the verifier only.");
        }
        if self.unsafe_cache {
            tracing::warn!("UNSAFE SEAT CACHE MODE: holds and payments leave the seat-map cache stale. Held seats WILL show AVAILABLE. Negative control for the verifier only.");
        }
        Ok(())
    }
}

/// One backend's seat-map parts: the options, the Redis lock's counters
/// and the seat-map cache.
pub struct SeatMap {
    pub options: SeatOptions,
    pub counters: std::sync::Arc<LockCounters>,
    pub cache: SeatCache,
}

impl SeatMap {
    pub fn new(options: SeatOptions) -> Self {
        SeatMap {
            cache: SeatCache::new(&options),
            options,
            counters: Default::default(),
        }
    }

    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        let c = &self.counters;
        for (name, help, counter) in [
            (
                "seat_lock_retries",
                "redis-lock acquire attempts that found the seat's lock busy",
                &c.retries,
            ),
            (
                "seat_lock_timeouts",
                "redis-lock acquires that gave up (answered SEAT_TAKEN)",
                &c.timeouts,
            ),
            (
                "seat_lock_extensions",
                "redis-lock lease extensions by the watchdog",
                &c.extensions,
            ),
            (
                "seat_lock_lost",
                "redis-lock releases that found the lock no longer theirs (the lease ran out mid-work)",
                &c.lost,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        self.cache.register(registry);
    }
}

/// `0`, `500ms` or `2s` (a bare number is milliseconds), at most 60 s.
fn parse_cache_ttl(s: &str) -> Result<Duration, String> {
    let (digits, unit_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else {
        (s, 1)
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 0, 500ms or 2s"))?;
    let ms = n.saturating_mul(unit_ms);
    if ms > 60_000 {
        return Err(format!("{s:?} is over 60s"));
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::parse_cache_ttl;
    use std::time::Duration;

    #[test]
    fn cache_ttl_takes_milliseconds_or_a_unit() {
        assert_eq!(parse_cache_ttl("0"), Ok(Duration::ZERO));
        assert_eq!(parse_cache_ttl("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_cache_ttl("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_cache_ttl("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_cache_ttl("61s").is_err());
        assert!(parse_cache_ttl("-1").is_err());
        assert!(parse_cache_ttl("soon").is_err());
    }
}
