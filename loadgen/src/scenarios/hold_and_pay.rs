//! `hold_and_pay`: the concert seat map. A user charges points, enters the
//! concert's queue, waits until ACTIVE, reads one schedule's seat map,
//! holds a random AVAILABLE seat (another one after a SEAT_TAKEN, a few
//! times) and pays with an `Idempotency-Key`. One user in ten abandons the
//! hold instead, so holds lapse during the run.
//!
//! With `--hot-seat-share F`, a share F of users first try one of the 10
//! hot seats (seats 1-10 of the first schedule) whatever their map shows,
//! then fall back to the schedule whose map they read:
//! those seats sell in the first seconds, and from then on the hot tries
//! race for taken seats, which each strategy judges its own way (the
//! conditional UPDATE matches no row; row-lock and redis-lock queue on the
//! seat's lock), before falling back to a random AVAILABLE seat.
//!
//! An iteration succeeds when the seat was paid, or held and abandoned on
//! purpose.

use std::time::Duration;

use goose::goose::{GooseMethod, GooseUser, TransactionError};
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::json;

use super::flash_sale::enter_active;
use super::{call, Ctx, Req};
use crate::setup::HOT_SEATS;

/// Share of users who hold and walk away.
pub const ABANDON_SHARE: f64 = 0.1;
/// Hold attempts per iteration (each after a SEAT_TAKEN).
const ATTEMPTS: usize = 3;

pub async fn iteration(
    user: &mut GooseUser,
    ctx: &Ctx,
    lag: Duration,
) -> Result<bool, Box<TransactionError>> {
    let Some(plan) = ctx.prepared.concert.as_ref() else {
        return Ok(false);
    };
    let user_id = ctx.next_user_id();
    let charged = call(
        user,
        ctx,
        Req {
            name: "charge",
            method: GooseMethod::Post,
            path: "/api/v1/points/charge",
            body: Some(&json!({"userId": user_id, "amount": plan.price})),
            token: None,
            key: None,
            lag,
        },
    )
    .await?;
    if !charged.ok() {
        return Ok(false);
    }
    let Some(token) = enter_active(user, ctx, &plan.concert_id, &user_id, Duration::ZERO).await?
    else {
        return Ok(false);
    };

    let schedule = plan
        .schedules
        .choose(&mut rand::rng())
        .cloned()
        .unwrap_or_default();
    let seats_path = format!(
        "/api/v1/concerts/{}/schedules/{schedule}/seats",
        plan.concert_id
    );
    let map = call(
        user,
        ctx,
        Req {
            name: "seats",
            method: GooseMethod::Get,
            path: &seats_path,
            body: None,
            token: None,
            key: None,
            lag: Duration::ZERO,
        },
    )
    .await?
    .json();
    let mut free: Vec<u64> = map
        .as_array()
        .map(|seats| {
            seats
                .iter()
                .filter(|s| s["status"] == "AVAILABLE")
                .filter_map(|s| s["seatNumber"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    let hold_path = format!("/api/v1/concerts/{}/reservations", plan.concert_id);
    let mut reservation = None;
    // The hot try (if any) is on the first schedule; the fall-backs on the
    // map read, so hot users do not sell one schedule out.
    let hot = plan.hot_share > 0.0 && rand::rng().random_bool(plan.hot_share);
    let mut hot_seat = hot.then(|| {
        let seat = rand::rng().random_range(1..=HOT_SEATS.min(plan.seats_per_schedule));
        let first = plan.schedules.first().cloned().unwrap_or_default();
        if first == schedule {
            free.retain(|s| *s != u64::from(seat));
        }
        (first, u64::from(seat))
    });
    for _ in 0..ATTEMPTS {
        let (on, seat) = match hot_seat.take() {
            Some(hot) => hot,
            None if free.is_empty() => break,
            None => (
                schedule.clone(),
                free.swap_remove(rand::rng().random_range(0..free.len())),
            ),
        };
        let held = call(
            user,
            ctx,
            Req {
                name: "hold",
                method: GooseMethod::Post,
                path: &hold_path,
                body: Some(&json!({"scheduleId": on, "seatNumber": seat})),
                token: Some(&token),
                key: None,
                lag: Duration::ZERO,
            },
        )
        .await?;
        if held.ok() {
            reservation = held.field("reservationId");
            break;
        }
        if held.json()["error"] != "SEAT_TAKEN" {
            break;
        }
    }
    let Some(reservation) = reservation else {
        return Ok(false);
    };
    if rand::rng().random_bool(ABANDON_SHARE) {
        return Ok(true);
    }
    let key = format!("{user_id}-pay");
    let paid = call(
        user,
        ctx,
        Req {
            name: "pay",
            method: GooseMethod::Post,
            path: "/api/v1/payments",
            body: Some(&json!({"reservationId": reservation})),
            token: Some(&token),
            key: Some(&key),
            lag: Duration::ZERO,
        },
    )
    .await?;
    Ok(paid.ok())
}
