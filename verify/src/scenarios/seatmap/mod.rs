//! Check 6's scenario, the concert seat map: many users race for few seats
//! (most want the same few "hot" ones), pay with points, some abandon their
//! holds; then the abandoned holds are watched until they lapse, paid too
//! late, and held again by fresh users.
//!
//! Roles, by user index `i` (so every run has all of them):
//! - `i % 10 == 9`: poor, charged half a seat's price (the payment must be
//!   402 and debit nothing);
//! - `i % 10 == 3`: abandons the hold (it must lapse within TTL + tolerance);
//! - `i % 10 == 7`: pays only after the hold lapsed (it must be 410);
//! - everyone else pays at once; one in four of them sends the payment
//!   three times concurrently with one key, then once more (one charge).
//!
//! - `roles`: the roles and the concert.
//! - `race`: the race up to each racer's payments.
//! - `lapses`: what follows: lapses, late payments, re-holds, seat-map reads.
//! - `records`: what is recorded for the check.

mod lapses;
mod race;
mod records;
mod roles;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tokio::sync::Barrier;

pub use records::{HoldOk, PayCall, SeatRead, SeatRun, SeatUser};
pub use roles::{Role, SeatSpec};

use crate::client::Client;
use crate::progress::Progress;
use crate::scenarios::Watch;
use crate::RunError;

pub const SCHEDULE: &str = "s1";
/// Every seat's price.
pub const PRICE: u64 = 1000;

pub async fn run(
    client: &Client,
    spec: SeatSpec,
    concert_id: String,
    watch: Watch,
    progress: &Progress,
) -> Result<SeatRun, RunError> {
    client.history.note(
        "scenario",
        serde_json::json!({"scenario": "seatmap", "concertId": concert_id,
            "users": spec.users, "seats": spec.seats, "hot": spec.hot,
            "ttlMs": spec.ttl.as_millis() as u64, "toleranceMs": spec.tolerance.as_millis() as u64}),
    );
    roles::create_concert(client, spec, &concert_id).await?;

    progress.step(format!(
        "seat map: {} users racing for {} seats ({} hot)",
        spec.users, spec.seats, spec.hot
    ));
    let barrier = Arc::new(Barrier::new(spec.users));
    let mut tasks = Vec::with_capacity(spec.users);
    for i in 0..spec.users {
        let client = client.clone();
        let barrier = barrier.clone();
        let concert_id = concert_id.clone();
        tasks.push(tokio::spawn(async move {
            race::race_one(&client, i, spec, &concert_id, watch, &barrier).await
        }));
    }
    let mut users = Vec::with_capacity(spec.users);
    let mut holds = Vec::new();
    let mut pays = Vec::new();
    let mut tokens = BTreeMap::new();
    for t in tasks {
        let (user, token, hold, user_pays) = t
            .await
            .map_err(|e| RunError::Other(format!("seat-map task panicked: {e}")))?;
        if let Some(token) = token {
            tokens.insert(user.user.clone(), token);
        }
        holds.extend(hold);
        pays.extend(user_pays);
        users.push(user);
    }
    let taken = users
        .iter()
        .flat_map(|u| &u.holds)
        .filter(|(_, c)| c.reply.code() == Some("SEAT_TAKEN"))
        .count();

    // Holds nobody paid: watch them lapse, and pay the late payers' late.
    let paid: HashSet<&str> = pays
        .iter()
        .filter(|p| p.call.reply.is_success())
        .map(|p| p.reservation_id.as_str())
        .collect();
    let unpaid: Vec<HoldOk> = holds
        .iter()
        .filter(|h| !paid.contains(h.reservation_id.as_str()))
        .cloned()
        .collect();
    progress.step(format!(
        "seat map: watching {} unpaid holds lapse (TTL {:?})",
        unpaid.len(),
        spec.ttl
    ));
    let mut problems = Vec::new();
    let late = lapses::late_payments(client, &users, &unpaid, &tokens, spec);
    let watched = lapses::watch_lapse(client, &concert_id, &unpaid, spec);
    let (late, mut reads) = tokio::join!(late, watched);
    pays.extend(late);

    progress.step("seat map: holding lapsed seats again");
    let reholders =
        lapses::rehold_lapsed(client, &concert_id, &unpaid, &mut reads, watch, &mut holds).await;
    users.extend(reholders);

    // The final state: the seat map and every balance.
    progress.step("seat map: reading the final seat map and balances");
    if let Some(read) = lapses::read_seats(client, &concert_id).await {
        reads.push(read);
    } else {
        problems.push("the final seat map could not be read".to_owned());
    }
    for u in &mut users {
        u.final_balance = Some(client.points("checker", &u.user).await);
    }
    Ok(SeatRun {
        spec,
        concert_id,
        users,
        holds,
        pays,
        reads,
        problems,
        taken,
    })
}
