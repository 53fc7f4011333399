//! `--seat-lock redis-lock`: a per-seat lock in Redis in the Redisson
//! manner, then a plain read, check and write in PostgreSQL.
//!
//! - Acquire: `SET key owner NX PX lease`, the owner unique per attempt;
//!   a busy lock is tried again every few milliseconds, up to
//!   [`WAIT`] (then the seat is answered SEAT_TAKEN: someone has been
//!   working on it all that time).
//! - Watchdog: while the work runs, a task extends the lease every third
//!   of it, but only if the key still names this owner (Lua), so a slow
//!   holder keeps its lock and a lock that was lost is not taken back.
//! - Release: delete the key only if it still names this owner (Lua), so a
//!   holder whose lease ran out never frees a lock someone else now holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};
use prometheus_client::metrics::counter::Counter;
use redis::aio::ConnectionLike;
use redis::Script;
use tokio::task::JoinHandle;
use tracing::warn;

use super::{is_free, retire, write_held, Claim};
use crate::backend::stack::seat_options::SeatOptions;
use crate::concert::SeatRef;

/// How long an acquire keeps trying a busy lock. Short: a hold that queued
/// longer than the hold before it lasts could take the seat after that
/// hold lapsed, answering 201 to a request sent before the lapsed hold's;
/// legal, but check 6 counts a successor only when it was sent after
/// (with 2 s, loaded runs of check 6 failed so, slow holder or not).
pub const WAIT: Duration = Duration::from_millis(200);

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
          return 0",
    )
});

static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
          return 0",
    )
});

/// The lock's counters, on `/metrics`.
#[derive(Default)]
pub struct LockCounters {
    /// Acquire attempts that found the lock busy.
    pub retries: Counter,
    /// Acquires that gave up after [`WAIT`].
    pub timeouts: Counter,
    /// Lease extensions by the watchdog.
    pub extensions: Counter,
    /// Releases that found the key no longer this owner's (the lease ran
    /// out while the work ran: a lock that did not exclude).
    pub lost: Counter,
}

/// A Redis connection the lock can use from its own task.
pub trait LockConn: ConnectionLike + Clone + Send + Sync + 'static {}
impl<C: ConnectionLike + Clone + Send + Sync + 'static> LockConn for C {}

/// A held lock; [`SeatLockGuard::release`] gives it back.
pub struct SeatLockGuard<C: LockConn> {
    redis: C,
    key: String,
    owner: String,
    watchdog: Option<JoinHandle<()>>,
    counters: Arc<LockCounters>,
}

static NEXT_OWNER: AtomicU64 = AtomicU64::new(0);

/// The lock key of one seat.
pub fn key(namespace: &str, at: SeatRef<'_>) -> String {
    format!(
        "{{{namespace}:seat:{}}}:{}:{}:lock",
        at.concert_id, at.schedule_id, at.seat
    )
}

/// Takes the lock `key`, waiting up to [`WAIT`] while it is busy; `None`
/// when it stayed busy that long.
pub async fn acquire<C: LockConn>(
    redis: &C,
    key: String,
    options: &SeatOptions,
    counters: &Arc<LockCounters>,
) -> redis::RedisResult<Option<SeatLockGuard<C>>> {
    let owner = format!(
        "{:016x}-{}",
        rand::random::<u64>(),
        NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
    );
    let lease_ms = options.lease().as_millis() as u64;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut conn = redis.clone();
    loop {
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&owner)
            .arg("NX")
            .arg("PX")
            .arg(lease_ms)
            .query_async(&mut conn)
            .await?;
        if taken.is_some() {
            break;
        }
        counters.retries.inc();
        if tokio::time::Instant::now() >= deadline {
            counters.timeouts.inc();
            return Ok(None);
        }
        // A short, jittered pause, so waiters do not retry in step.
        let pause = Duration::from_micros(1_000 + rand::random::<u64>() % 3_000);
        tokio::time::sleep(pause).await;
    }
    let watchdog = options.watchdog().then(|| {
        tokio::spawn(watchdog(
            conn.clone(),
            key.clone(),
            owner.clone(),
            lease_ms,
            counters.clone(),
        ))
    });
    Ok(Some(SeatLockGuard {
        redis: conn,
        key,
        owner,
        watchdog,
        counters: counters.clone(),
    }))
}

/// Extends the lease every third of it while the key is still `owner`'s.
async fn watchdog<C: LockConn>(
    mut redis: C,
    key: String,
    owner: String,
    lease_ms: u64,
    counters: Arc<LockCounters>,
) {
    let period = Duration::from_millis((lease_ms / 3).max(1));
    loop {
        tokio::time::sleep(period).await;
        let extended: redis::RedisResult<i64> = EXTEND
            .key(&key)
            .arg(&owner)
            .arg(lease_ms)
            .invoke_async(&mut redis)
            .await;
        match extended {
            Ok(1) => {
                counters.extensions.inc();
            }
            Ok(_) => return,
            Err(e) => warn!(error = %e, key, "seat lock watchdog could not extend the lease"),
        }
    }
}

impl<C: LockConn> SeatLockGuard<C> {
    /// Stops the watchdog and deletes the key if it is still this owner's.
    pub async fn release(mut self) {
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
        let released: redis::RedisResult<i64> = RELEASE
            .key(&self.key)
            .arg(&self.owner)
            .invoke_async(&mut self.redis)
            .await;
        match released {
            Ok(1) => {}
            Ok(_) => {
                self.counters.lost.inc();
            }
            // The lease runs out by itself.
            Err(e) => warn!(error = %e, key = self.key, "seat lock release failed"),
        }
    }
}

impl<C: LockConn> Drop for SeatLockGuard<C> {
    fn drop(&mut self) {
        // A guard dropped without release (its request was cancelled) must
        // not extend the lease for ever; the lease then runs out.
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
    }
}

/// The check under the lock, before the write's transaction: the seat is
/// free (a plain read: the lock excludes other holds of this seat).
pub async fn check_free(
    client: &impl GenericClient,
    at: SeatRef<'_>,
    options: &SeatOptions,
) -> Result<bool, tokio_postgres::Error> {
    is_free(client, at, "", options).await
}

/// The test hook's (or the negative control's) slow holder: a pause
/// between the check and the write, with no pooled connection held.
pub async fn pause(options: &SeatOptions) {
    let slow = options.slow();
    if !slow.is_zero() {
        tokio::time::sleep(slow).await;
    }
}

/// The write under the lock, once [`check_free`] said the seat is free:
/// retire its lapsed hold and take it. If the lock did not exclude another
/// hold, the unique index refuses the second one.
pub async fn claim(
    tx: &Transaction<'_>,
    at: SeatRef<'_>,
    reservation_id: &str,
    ttl_ms: f64,
    options: &SeatOptions,
) -> Result<Claim, tokio_postgres::Error> {
    let retired = retire(tx, at, options).await?;
    let held = write_held(tx, at, reservation_id, ttl_ms).await?;
    Ok(Claim { retired, held })
}
