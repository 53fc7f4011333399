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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::client::{Call, Client, Reply};
use crate::progress::Progress;
use crate::scenarios::{until_active, Watch};
use crate::RunError;

pub const SCHEDULE: &str = "s1";
/// Every seat's price.
pub const PRICE: u64 = 1000;
/// Attempts per racer before giving up (each after a SEAT_TAKEN).
const ATTEMPTS: usize = 3;
/// How often the seat map is read while holds lapse.
const POLL_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
pub struct SeatSpec {
    pub users: usize,
    pub seats: u32,
    pub hot: u32,
    pub ttl: Duration,
    pub tolerance: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Payer,
    Retrier,
    Poor,
    Abandoner,
    LatePayer,
}

impl Role {
    fn of(i: usize) -> Role {
        match i % 10 {
            9 => Role::Poor,
            3 => Role::Abandoner,
            7 => Role::LatePayer,
            _ if i % 4 == 0 => Role::Retrier,
            _ => Role::Payer,
        }
    }

    pub fn charged(self) -> u64 {
        match self {
            Role::Poor => PRICE / 2,
            _ => 2 * PRICE,
        }
    }
}

/// One hold attempt that the server answered 201.
#[derive(Debug, Clone)]
pub struct HoldOk {
    pub user: String,
    /// Made after the race, on a seat seen AVAILABLE again.
    pub rehold: bool,
    pub seat: u32,
    pub reservation_id: String,
    pub call: Call,
}

#[derive(Debug, Clone)]
pub struct PayCall {
    pub user: String,
    pub seat: u32,
    pub reservation_id: String,
    pub key: Option<String>,
    pub call: Call,
    /// Sent on purpose after the hold lapsed.
    pub late: bool,
}

#[derive(Debug, Clone)]
pub struct SeatUser {
    pub user: String,
    /// Holds a lapsed seat again after the race.
    pub rehold: bool,
    pub role: Role,
    pub stuck: Option<String>,
    pub charge: Option<Call>,
    /// Every hold attempt, in order, with its seat.
    pub holds: Vec<(u32, Call)>,
    pub final_balance: Option<Call>,
}

/// One read of the seat map: seat number -> status.
#[derive(Debug, Clone)]
pub struct SeatRead {
    pub invoked: u64,
    pub completed: u64,
    pub status: BTreeMap<u32, String>,
}

#[derive(Debug, Clone)]
pub struct SeatRun {
    pub spec: SeatSpec,
    pub concert_id: String,
    pub users: Vec<SeatUser>,
    pub holds: Vec<HoldOk>,
    pub pays: Vec<PayCall>,
    pub reads: Vec<SeatRead>,
    /// Problems carrying out the scenario (not judgements).
    pub problems: Vec<String>,
    /// Hold attempts answered SEAT_TAKEN.
    pub taken: usize,
}

pub async fn run(
    client: &Client,
    spec: SeatSpec,
    concert_id: String,
    watch: Watch,
    progress: &Progress,
) -> Result<SeatRun, RunError> {
    let created = client
        .create_concert(json!({
            "concertId": concert_id,
            "name": "verify seat map",
            "activeCapacity": spec.users * 2,
            "activeTtlSeconds": 600,
            "schedules": [{"scheduleId": SCHEDULE, "date": "2026-12-24",
                           "seatCount": spec.seats, "price": PRICE}],
        }))
        .await;
    match &created.reply {
        Reply::Http { status: 201, .. } => {}
        Reply::Transport(e) => {
            return Err(RunError::Unreachable(format!("{}: {e}", client.base())))
        }
        other => {
            return Err(RunError::SetupRefused(format!(
                "creating concert {concert_id} answered {} {}",
                other.short(),
                other
                    .body()
                    .map(|b| b["message"].clone())
                    .unwrap_or(Value::Null)
            )))
        }
    }

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
            race_one(&client, i, spec, &concert_id, watch, &barrier).await
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
    let paid: std::collections::HashSet<&str> = pays
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
    let late = late_payments(client, &users, &unpaid, &tokens, spec);
    let watched = watch_lapse(client, &concert_id, &unpaid, spec);
    let (late, reads) = tokio::join!(late, watched);
    pays.extend(late);
    let mut reads = reads;

    // Fresh users hold every seat that was seen AVAILABLE again.
    progress.step("seat map: holding lapsed seats again");
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
    let mut rehold_users = Vec::new();
    for (n, seat) in lapsed.iter().enumerate() {
        let user = format!("{concert_id}-again-{n}");
        let mut u = SeatUser {
            user: user.clone(),
            rehold: true,
            role: Role::Abandoner,
            stuck: None,
            charge: None,
            holds: Vec::new(),
            final_balance: None,
        };
        match enter_active(client, &user, &concert_id, watch).await {
            Ok(token) => {
                let call = client
                    .hold(&user, &token, &concert_id, SCHEDULE, *seat)
                    .await;
                if let Some(id) = call
                    .reply
                    .str_field("reservationId")
                    .filter(|_| call.reply.status() == Some(201))
                {
                    holds.push(HoldOk {
                        user: user.clone(),
                        rehold: true,
                        seat: *seat,
                        reservation_id: id.to_owned(),
                        call: call.clone(),
                    });
                }
                u.holds.push((*seat, call));
            }
            Err(e) => u.stuck = Some(e),
        }
        rehold_users.push(u);
    }
    users.extend(rehold_users);

    // The final state: the seat map and every balance.
    progress.step("seat map: reading the final seat map and balances");
    if let Some(read) = read_seats(client, &concert_id).await {
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

type Raced = (SeatUser, Option<String>, Option<HoldOk>, Vec<PayCall>);

/// One racer: enter, charge, wait at the barrier, hold (retrying on
/// SEAT_TAKEN), then act out its role.
async fn race_one(
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
    let mut u = SeatUser {
        user: user.clone(),
        rehold: false,
        role,
        stuck: None,
        charge: None,
        holds: Vec::new(),
        final_balance: None,
    };
    let token = match enter_active(client, &user, concert_id, watch).await {
        Ok(t) => Some(t),
        Err(e) => {
            u.stuck = Some(e);
            None
        }
    };
    u.charge = Some(client.charge(&user, &user, role.charged()).await);
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
        let ok = call.reply.status() == Some(201);
        let id = call.reply.str_field("reservationId").map(str::to_owned);
        u.holds.push((seat, call.clone()));
        if let (true, Some(id)) = (ok, id) {
            held = Some(HoldOk {
                user: user.clone(),
                rehold: false,
                seat,
                reservation_id: id,
                call,
            });
            break;
        }
        if call.reply.code() != Some("SEAT_TAKEN") {
            break;
        }
    }
    let mut pays = Vec::new();
    if let Some(h) = &held {
        let key = format!("{user}-k1");
        let pay = |key: Option<String>| {
            let (client, user, token, h) = (client, &user, &token, h);
            async move {
                let call = client
                    .pay(user, token, &h.reservation_id, key.as_deref())
                    .await;
                PayCall {
                    user: user.clone(),
                    seat: h.seat,
                    reservation_id: h.reservation_id.clone(),
                    key,
                    call,
                    late: false,
                }
            }
        };
        match role {
            Role::Payer | Role::Poor => pays.push(pay(Some(key)).await),
            Role::Retrier => {
                let (a, b, c) = tokio::join!(
                    pay(Some(key.clone())),
                    pay(Some(key.clone())),
                    pay(Some(key.clone()))
                );
                pays.extend([a, b, c]);
                pays.push(pay(Some(key)).await);
            }
            Role::Abandoner | Role::LatePayer => {}
        }
    }
    (u, Some(token), held, pays)
}

/// Enters the concert's queue and waits (bounded) until ACTIVE.
async fn enter_active(
    client: &Client,
    user: &str,
    concert_id: &str,
    watch: Watch,
) -> Result<String, String> {
    let entered = client.enter(user, concert_id, user).await;
    let Some(token) = entered
        .reply
        .str_field("token")
        .filter(|_| entered.reply.status() == Some(200))
        .map(str::to_owned)
    else {
        return Err(format!("enter answered {}", entered.reply.short()));
    };
    if entered.reply.str_field("status") != Some("ACTIVE") {
        until_active(client, user, &token, watch, Duration::from_secs(60), |_| {})
            .await
            .map_err(|e| format!("never ACTIVE: {e}"))?;
    }
    Ok(token)
}

/// Late payers pay once their hold has certainly lapsed.
async fn late_payments(
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
            let call = client
                .pay(&h.user, &token, &h.reservation_id, Some(&key))
                .await;
            PayCall {
                user: h.user.clone(),
                seat: h.seat,
                reservation_id: h.reservation_id.clone(),
                key: Some(key),
                call,
                late: true,
            }
        })
    });
    futures_util::future::join_all(calls).await
}

/// Reads the seat map every 100 ms until every unpaid hold's seat was seen
/// AVAILABLE after it, or TTL + tolerance + 0.5 s after the last hold.
async fn watch_lapse(
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

async fn read_seats(client: &Client, concert_id: &str) -> Option<SeatRead> {
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
