//! Per-key request rate limits (contract status 429 with `Retry-After`):
//! one keyed GCRA limiter (the `governor` crate) per client IP and one per
//! user. Memory stays bounded over any number of distinct keys: every
//! `PURGE_EVERY` checks, keys whose bucket has refilled completely (they are
//! indistinguishable from a new key) are dropped.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Checks between two purges of refilled keys.
const PURGE_EVERY: u64 = 4096;

pub struct RateLimiter<K: Hash + Eq + Clone = std::net::IpAddr> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_second` requests a second per key, with bursts up to the same
    /// number; `None` when `per_second` is 0 (no limit).
    pub fn new(per_second: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        Some(RateLimiter {
            limiter: governor::RateLimiter::keyed(Quota::per_second(rate)),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        })
    }

    /// `Ok` when the request may go on, else the whole seconds to wait
    /// (at least 1, as `Retry-After` takes whole seconds).
    pub fn check(&self, key: &K) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            self.purge();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }

    /// Drops the keys whose bucket is full again and gives the memory back.
    pub fn purge(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys currently remembered.
    pub fn keys(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_burst_beyond_the_rate_is_refused_with_a_wait() {
        let limiter = RateLimiter::new(3).unwrap();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        let results: Vec<_> = (0..5).map(|_| limiter.check(&ip)).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        assert_eq!(results[4], Err(1));
        assert!(limiter.check(&other).is_ok(), "buckets are per client");
    }

    #[test]
    fn zero_is_no_limiter() {
        assert!(RateLimiter::<String>::new(0).is_none());
    }

    #[test]
    fn memory_stays_bounded_over_many_distinct_keys() {
        // The server's default rate (10 per second): a key used once is
        // refilled after 100 ms.
        let limiter = RateLimiter::<String>::new(crate::config::DEFAULT_RATE_LIMIT_RPS).unwrap();
        for round in 0..5 {
            for i in 0..20_000 {
                limiter.check(&format!("user-{round}-{i}")).unwrap();
            }
            // Without a purge every key would stay: 20,000 more each round.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                limiter.purge();
                if limiter.keys() == 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "{} keys kept", limiter.keys());
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Negative control: a key still limited is kept by the purge.
        let busy = "busy".to_owned();
        while limiter.check(&busy).is_ok() {}
        limiter.purge();
        assert_eq!(limiter.keys(), 1, "a limited key must not be forgotten");
        assert!(limiter.check(&busy).is_err());
    }

    #[test]
    fn purges_happen_on_their_own_during_checks() {
        let limiter = RateLimiter::<u64>::new(1000).unwrap();
        for i in 0..(PURGE_EVERY * 10) {
            let _ = limiter.check(&i);
            if i % PURGE_EVERY == 0 {
                // Let the earlier keys refill (1 ms at 1000/s).
                std::thread::sleep(Duration::from_millis(3));
            }
        }
        assert!(
            limiter.keys() < 2 * PURGE_EVERY as usize,
            "{} keys kept after {} distinct ones",
            limiter.keys(),
            PURGE_EVERY * 10
        );
    }
}
