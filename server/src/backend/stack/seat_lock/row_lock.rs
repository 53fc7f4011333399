//! `--seat-lock row-lock`: `SELECT ... FOR UPDATE` takes the seat row's
//! lock first, the server checks what it read, then writes. A racing hold
//! waits on the lock and reads the winner's committed HELD.

use deadpool_postgres::Transaction;

use super::{is_free, retire, write_held, Claim};
use crate::backend::stack::seat_options::SeatOptions;
use crate::concert::SeatRef;

pub async fn claim(
    tx: &Transaction<'_>,
    at: SeatRef<'_>,
    reservation_id: &str,
    ttl_ms: f64,
    options: &SeatOptions,
) -> Result<Claim, tokio_postgres::Error> {
    // Same lock order as the conditional strategy and the payment path:
    // the seat's reservations, then the seat row.
    let retired = retire(tx, at, options).await?;
    if !is_free(tx, at, "FOR UPDATE", options).await? {
        return Ok(Claim {
            retired,
            held: None,
        });
    }
    let held = write_held(tx, at, reservation_id, ttl_ms).await?;
    Ok(Claim { retired, held })
}
