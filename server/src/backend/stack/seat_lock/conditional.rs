//! `--seat-lock conditional`: the seat changes only if one conditional
//! UPDATE finds it AVAILABLE or lapsed. Racing holds queue on the row's
//! lock, and each re-checks the condition on the committed row, so one
//! wins and the others match nothing.

use deadpool_postgres::Transaction;

use super::{retire, write_held_if_free, Claim};
use crate::backend::stack::seat_options::SeatOptions;
use crate::concert::SeatRef;

pub async fn claim(
    tx: &Transaction<'_>,
    at: SeatRef<'_>,
    reservation_id: &str,
    ttl_ms: f64,
    options: &SeatOptions,
) -> Result<Claim, tokio_postgres::Error> {
    let retired = retire(tx, at, options).await?;
    let held = write_held_if_free(tx, at, reservation_id, ttl_ms, options).await?;
    Ok(Claim { retired, held })
}
