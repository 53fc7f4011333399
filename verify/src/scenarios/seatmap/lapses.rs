//! After the race: the holds nobody paid are watched until they lapse, the
//! late payers pay once theirs certainly has, fresh users hold the lapsed
//! seats again, and the seat map is read (while watching, around each
//! hold again, and at the end).

use std::collections::BTreeMap;
use std::time::Duration;

use super::race::pay_for;
use super::{HoldOk, PayCall, Role, SeatRead, SeatSpec, SeatUser, SCHEDULE};
use crate::client::Client;
use crate::scenarios::{enter_active, Watch};

/// How often the seat map is read while holds lapse.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Late payers pay once their hold has certainly lapsed.
pub(super) async fn late_payments(
    client: &Client,
    users: &[SeatUser],
    unpaid: &[HoldOk],
    tokens: &BTreeMap<String, String>,
    spec: SeatSpec,
) -> Vec<PayCall> {
    let late: Vec<&HoldOk> = unpaid
        .iter()
        .filter(|h| {
            users
                .iter()
                .any(|u| u.user == h.user && u.role == Role::LatePayer)
        })
        .collect();
    let calls = late.into_iter().filter_map(|h| {
        let token = tokens.get(&h.user)?.clone();
        Some(async move {
            let due = h.call.completed + (spec.ttl + spec.tolerance).as_nanos() as u64;
            let now = client.history.now();
            if due > now {
                tokio::time::sleep(Duration::from_nanos(due - now)).await;
            }
            let key = format!("{}-late", h.user);
            pay_for(client, &token, h, Some(key), true).await
        })
    });
    futures_util::future::join_all(calls).await
}

/// Reads the seat map every 100 ms until every unpaid hold's seat was seen
/// AVAILABLE after it, or TTL + tolerance + 0.5 s after the last hold.
pub(super) async fn watch_lapse(
    client: &Client,
    concert_id: &str,
    unpaid: &[HoldOk],
    spec: SeatSpec,
) -> Vec<SeatRead> {
    let mut reads: Vec<SeatRead> = Vec::new();
    let Some(last) = unpaid.iter().map(|h| h.call.completed).max() else {
        return reads;
    };
    let give_up = last + (spec.ttl + spec.tolerance + Duration::from_millis(500)).as_nanos() as u64;
    loop {
        if let Some(read) = read_seats(client, concert_id).await {
            reads.push(read);
        }
        let all_seen = unpaid.iter().all(|h| {
            reads.iter().any(|r| {
                r.invoked >= h.call.completed
                    && r.status.get(&h.seat).map(String::as_str) == Some("AVAILABLE")
            })
        });
        if all_seen || client.history.now() > give_up {
            return reads;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// One read of the seat map; `None` when it was not answered 200 with a
/// list.
pub(super) async fn read_seats(client: &Client, concert_id: &str) -> Option<SeatRead> {
    let call = client.seats("checker", concert_id, SCHEDULE).await;
    let rows = call.reply.body()?.as_array()?.clone();
    if call.reply.status() != Some(200) {
        return None;
    }
    let status = rows
        .iter()
        .filter_map(|r| {
            Some((
                r["seatNumber"].as_u64()? as u32,
                r["status"].as_str()?.to_owned(),
            ))
        })
        .collect();
    Some(SeatRead {
        invoked: call.invoked,
        completed: call.completed,
        status,
    })
}

/// Fresh users hold every unpaid seat that some read saw AVAILABLE again;
/// their accepted holds join `holds`. Each hold is read around: the seat
/// map right before and right after it (both join `reads`). A map that a
/// hold does not reach at once (a cache the hold does not invalidate) then
/// shows the seat AVAILABLE in the read after. With only the final read,
/// an unrelated change (a swept lapse) often dropped that stale copy
/// first, and the fault went unseen in most runs.
pub(super) async fn rehold_lapsed(
    client: &Client,
    concert_id: &str,
    unpaid: &[HoldOk],
    reads: &mut Vec<SeatRead>,
    watch: Watch,
    holds: &mut Vec<HoldOk>,
) -> Vec<SeatUser> {
    let lapsed: Vec<u32> = {
        let mut seats: Vec<u32> = unpaid.iter().map(|h| h.seat).collect();
        seats.sort_unstable();
        seats.dedup();
        seats
            .into_iter()
            .filter(|s| {
                reads
                    .iter()
                    .any(|r| r.status.get(s).map(String::as_str) == Some("AVAILABLE"))
            })
            .collect()
    };
    let mut users = Vec::new();
    for (n, seat) in lapsed.iter().enumerate() {
        let user = format!("{concert_id}-again-{n}");
        // Re-holders only hold: they are charged nothing and pay nothing.
        let mut u = SeatUser::new(user.clone(), true, Role::Abandoner);
        match enter_active(client, &user, concert_id, watch).await {
            Ok(token) => {
                reads.extend(read_seats(client, concert_id).await);
                let call = client
                    .hold(&user, &token, concert_id, SCHEDULE, *seat)
                    .await;
                holds.extend(HoldOk::from_call(&user, true, *seat, &call));
                u.holds.push((*seat, call));
                reads.extend(read_seats(client, concert_id).await);
            }
            Err(e) => u.stuck = Some(e.why),
        }
        users.push(u);
    }
    users
}
