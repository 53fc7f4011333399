//! `--seat-lock conditional`: the seat changes only if one conditional
//! UPDATE finds it AVAILABLE or lapsed. Racing holds queue on the row's
//! lock, and each re-checks the condition on the committed row, so one
//! wins and the others match nothing.

use deadpool_postgres::Transaction;

use super::{retire, Claim, RFC3339};
use crate::concert::SeatRef;

pub async fn claim(
    tx: &Transaction<'_>,
    at: SeatRef<'_>,
    reservation_id: &str,
    ttl_ms: f64,
) -> Result<Claim, tokio_postgres::Error> {
    let retired = retire(tx, at, false).await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE seats SET status = 'HELD', reservation_id = $4,
                        hold_expires_at = now() + $5 * interval '1 millisecond'
                 WHERE concert_id = $1 AND schedule_id = $2 AND seat_number = $3
                   AND (status = 'AVAILABLE' OR (status = 'HELD' AND hold_expires_at <= now()))
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
    Ok(Claim {
        retired,
        held: row.map(|r| (r.get(0), r.get(1))),
    })
}
