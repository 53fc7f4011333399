//! `browse`: reads, as a visitor refreshing the sale page would make them:
//! the event (stock left) three times in four, a reservation otherwise.

use std::time::Duration;

use goose::goose::{GooseMethod, GooseUser, TransactionError};
use rand::Rng;

use super::{call, host_of, Ctx, Req};

/// One read; `Ok(true)` when it answered 200.
pub async fn iteration(
    user: &mut GooseUser,
    ctx: &Ctx,
    lag: Duration,
) -> Result<bool, Box<TransactionError>> {
    let host = host_of(user);
    let (pick, index) = {
        let mut rng = rand::rng();
        (rng.random_range(0..4u8), rng.random::<u32>() as usize)
    };
    let reservations = ctx.prepared.reservations(host);
    let reply = if pick == 0 && !reservations.is_empty() {
        let id = &reservations[index % reservations.len()];
        call(
            user,
            ctx,
            Req {
                name: "ticket",
                method: GooseMethod::Get,
                path: &format!("/api/v1/tickets/{id}"),
                body: None,
                token: None,
                key: None,
                lag,
            },
        )
        .await?
    } else {
        let event = &ctx.prepared.event_id;
        call(
            user,
            ctx,
            Req {
                name: "event",
                method: GooseMethod::Get,
                path: &format!("/api/v1/events/{event}"),
                body: None,
                token: None,
                key: None,
                lag,
            },
        )
        .await?
    };
    Ok(reply.ok())
}
