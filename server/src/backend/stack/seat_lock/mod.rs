//! How a seat hold claims its seat on the shared stack (`--seat-lock`):
//!
//! - `conditional` (the default): one conditional UPDATE of the seat row
//!   (AVAILABLE, or HELD and lapsed, to HELD); PostgreSQL's row lock on the
//!   UPDATE serialises racing holds ([`conditional`]).
//! - `row-lock`: `SELECT ... FOR UPDATE` of the seat row, the check in the
//!   server, then the UPDATE, in one transaction ([`row_lock`]).
//! - `redis-lock`: a per-seat lock in Redis in the Redisson manner (SET NX
//!   PX with a unique owner, a watchdog extending the lease while the work
//!   runs, release by the owner only, through a Lua script), then a plain
//!   read and check, and the write's transaction ([`redis_lock`]).
//!
//! In every strategy the transaction that writes the hold retires only
//! holds that have lapsed and inserts the new reservation under the unique
//! partial index `seat_reservations_one_active`, which stays the last line
//! of defence: a strategy whose exclusion failed gets SEAT_TAKEN from the
//! index, never a second hold.

pub mod conditional;
pub mod redis_lock;
pub mod row_lock;

use std::time::Duration;

use deadpool_postgres::Transaction;

use super::messages::Held;
use super::seat_options::SeatOptions;
use crate::concert::SeatRef;

/// Which strategy claims a seat on the real backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SeatLockKind {
    /// One conditional UPDATE of the seat row.
    #[default]
    Conditional,
    /// SELECT ... FOR UPDATE, check, UPDATE, in one transaction.
    RowLock,
    /// A per-seat Redis lock (owner, lease, watchdog), then the write.
    RedisLock,
}

impl SeatLockKind {
    pub fn name(self) -> &'static str {
        match self {
            SeatLockKind::Conditional => "conditional",
            SeatLockKind::RowLock => "row-lock",
            SeatLockKind::RedisLock => "redis-lock",
        }
    }
}

/// The lease a Redisson lock takes when none is given.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The negative control's lease and its holder's time: the lease runs out
/// halfway through the work.
const UNSAFE_LEASE: Duration = Duration::from_millis(50);
const UNSAFE_SLOW: Duration = Duration::from_millis(100);

impl SeatOptions {
    pub fn lease(&self) -> Duration {
        if self.unsafe_lock {
            return UNSAFE_LEASE;
        }
        self.lease_ms.map_or(DEFAULT_LEASE, Duration::from_millis)
    }

    /// The deliberate pause between a redis-lock holder's read and write.
    pub fn slow(&self) -> Duration {
        if self.unsafe_lock {
            return UNSAFE_SLOW;
        }
        Duration::from_millis(self.slow_ms)
    }

    pub fn watchdog(&self) -> bool {
        !self.unsafe_lock
    }
}

/// What a claim did in the hold's transaction.
pub struct Claim {
    /// Lapsed holds of the seat it retired (marked EXPIRED).
    pub retired: Vec<Held>,
    /// The seat's new `expiresAt` and its price, when the seat is now
    /// held for the new reservation; `None` when it was someone's.
    pub held: Option<(String, i64)>,
}

/// RFC 3339 UTC with milliseconds, as PostgreSQL formats it.
pub const RFC3339: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

/// Marks the seat's holds EXPIRED that have lapsed (by `options`'s
/// expiry: none under delayed expiry, whose release is the consumer's; all
/// of its HELD ones with `--unsafe-seat-lock`, that control's defect) and
/// returns them.
pub async fn retire(
    tx: &Transaction<'_>,
    at: SeatRef<'_>,
    options: &SeatOptions,
) -> Result<Vec<Held>, tokio_postgres::Error> {
    let seat_number = at.seat as i32;
    let rows = tx
        .query(
            &format!(
                "UPDATE seat_reservations SET status = 'EXPIRED'
                 WHERE concert_id = $1 AND schedule_id = $2 AND seat_number = $3
                   AND status = 'HELD' AND ({} OR $4)
                 RETURNING reservation_id, user_id",
                options.lapsed_sql("expires_at")
            ),
            &[
                &at.concert_id,
                &at.schedule_id,
                &seat_number,
                &options.unsafe_lock,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Held {
            reservation_id: r.get(0),
            concert_id: at.concert_id.to_owned(),
            schedule_id: at.schedule_id.to_owned(),
            seat_number,
            user_id: r.get(1),
        })
        .collect())
}

/// Sets the seat HELD for `reservation_id` whatever its state (the caller
/// has decided it is free) and returns its `expiresAt` and price.
pub async fn write_held(
    tx: &Transaction<'_>,
    at: SeatRef<'_>,
    reservation_id: &str,
    ttl_ms: f64,
) -> Result<Option<(String, i64)>, tokio_postgres::Error> {
    update_held(tx, at, reservation_id, ttl_ms, "").await
}

/// Sets the seat HELD for `reservation_id` only if the row, as committed
/// when the UPDATE reaches it, is free by [`free_sql`] (`None` otherwise):
/// the conditional strategy's one statement.
pub async fn write_held_if_free(
    tx: &Transaction<'_>,
    at: SeatRef<'_>,
    reservation_id: &str,
    ttl_ms: f64,
    options: &SeatOptions,
) -> Result<Option<(String, i64)>, tokio_postgres::Error> {
    let free = format!("AND {}", free_sql("", options));
    update_held(tx, at, reservation_id, ttl_ms, &free).await
}

/// The SQL condition under which a seat row (columns prefixed `prefix`) is
/// free to hold: AVAILABLE, or HELD and lapsed by `options`'s expiry.
pub fn free_sql(prefix: &str, options: &SeatOptions) -> String {
    format!(
        "({prefix}status = 'AVAILABLE' OR ({prefix}status = 'HELD' AND {}))",
        options.lapsed_sql(&format!("{prefix}hold_expires_at"))
    )
}

/// The hold's UPDATE, with `condition` added to its WHERE.
async fn update_held(
    tx: &Transaction<'_>,
    at: SeatRef<'_>,
    reservation_id: &str,
    ttl_ms: f64,
    condition: &str,
) -> Result<Option<(String, i64)>, tokio_postgres::Error> {
    let row = tx
        .query_opt(
            &format!(
                "UPDATE seats SET status = 'HELD', reservation_id = $4,
                        hold_expires_at = now() + $5 * interval '1 millisecond'
                 WHERE concert_id = $1 AND schedule_id = $2 AND seat_number = $3
                   {condition}
                 RETURNING to_char(hold_expires_at AT TIME ZONE 'UTC', {RFC3339}),
                           (SELECT price FROM schedules
                             WHERE concert_id = $1 AND schedule_id = $2)"
            ),
            &[
                &at.concert_id,
                &at.schedule_id,
                &(at.seat as i32),
                &reservation_id,
                &ttl_ms,
            ],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Whether the seat is free to hold (by [`free_sql`]), read with `lock`
/// appended to the SELECT (`""` or `"FOR UPDATE"`).
pub async fn is_free(
    tx: &impl deadpool_postgres::GenericClient,
    at: SeatRef<'_>,
    lock: &str,
    options: &SeatOptions,
) -> Result<bool, tokio_postgres::Error> {
    let row = tx
        .query_one(
            &format!(
                "SELECT {}
                 FROM seats WHERE concert_id = $1 AND schedule_id = $2 AND seat_number = $3 {lock}",
                free_sql("", options)
            ),
            &[&at.concert_id, &at.schedule_id, &(at.seat as i32)],
        )
        .await?;
    Ok(row.get(0))
}
