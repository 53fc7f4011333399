//! The race itself: every user enters and is charged, all wait at one
//! barrier, then each holds a seat (most try a hot one first) and acts out
//! its role.

use tokio::sync::Barrier;

use rand::Rng;

use super::{HoldOk, PayCall, Role, SeatSpec, SeatUser, SCHEDULE};
use crate::client::Client;
use crate::scenarios::{enter_active, Watch};

/// Attempts per racer before giving up (each after a SEAT_TAKEN).
const ATTEMPTS: usize = 3;

/// A racer's record, its token (for paying late), its hold and its
/// payments.
pub(super) type Raced = (SeatUser, Option<String>, Option<HoldOk>, Vec<PayCall>);

/// One racer: enter, charge, wait at the barrier, hold (retrying on
/// SEAT_TAKEN), then act out its role.
pub(super) async fn race_one(
    client: &Client,
    i: usize,
    spec: SeatSpec,
    concert_id: &str,
    watch: Watch,
    barrier: &Barrier,
) -> Raced {
    let role = Role::of(i);
    // Ids unique per run: points and idempotency keys outlive a run.
    let user = format!("{concert_id}-u{i}");
    let mut u = SeatUser::new(user.clone(), false, role);
    let token = match enter_active(client, &user, concert_id, watch).await {
        Ok(t) => Some(t),
        Err(e) => {
            u.stuck = Some(e.why);
            None
        }
    };
    u.charge = Some(client.charge(&user, &user, role.charged()).await);
    // Everyone reaches the barrier, stuck or not, so nobody waits forever.
    barrier.wait().await;
    let Some(token) = token else {
        return (u, None, None, Vec::new());
    };
    let mut held = None;
    for attempt in 0..ATTEMPTS {
        let seat = {
            let mut rng = rand::rng();
            if attempt == 0 && rng.random_bool(0.8) {
                rng.random_range(1..=spec.hot)
            } else {
                rng.random_range(1..=spec.seats)
            }
        };
        let call = client.hold(&user, &token, concert_id, SCHEDULE, seat).await;
        held = HoldOk::from_call(&user, false, seat, &call);
        let taken = call.reply.code() == Some("SEAT_TAKEN");
        u.holds.push((seat, call));
        if held.is_some() || !taken {
            break;
        }
    }
    let mut pays = Vec::new();
    if let Some(h) = &held {
        let key = format!("{user}-k1");
        let pay = |key: String| pay_for(client, &token, h, Some(key), false);
        match role {
            Role::Payer | Role::Poor => pays.push(pay(key).await),
            Role::Retrier => {
                let (a, b, c) = tokio::join!(pay(key.clone()), pay(key.clone()), pay(key.clone()));
                pays.extend([a, b, c]);
                pays.push(pay(key).await);
            }
            Role::Abandoner | Role::LatePayer => {}
        }
    }
    (u, Some(token), held, pays)
}

/// Pays for hold `h` as its holder, with `key` as the Idempotency-Key.
pub(super) async fn pay_for(
    client: &Client,
    token: &str,
    h: &HoldOk,
    key: Option<String>,
    late: bool,
) -> PayCall {
    let call = client
        .pay(&h.user, token, &h.reservation_id, key.as_deref())
        .await;
    PayCall {
        user: h.user.clone(),
        seat: h.seat,
        reservation_id: h.reservation_id.clone(),
        key,
        call,
        late,
    }
}
