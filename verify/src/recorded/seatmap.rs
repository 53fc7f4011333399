//! The seat map (check 6's scenario) rebuilt from its part of the history:
//! the racers `{concert}-u{i}` (their role by index), the users who held
//! lapsed seats again `{concert}-again-{n}`, the checker's seat-map and
//! balance reads.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{admitted, Segment};
use crate::history::read::Calls;
use crate::scenarios::seatmap::{HoldOk, PayCall, Role, SeatRead, SeatRun, SeatSpec, SeatUser};

pub fn rebuild(seg: &Segment) -> Result<SeatRun, String> {
    let p = &seg.params;
    let spec = SeatSpec {
        users: super::usize_of(p, "users")?,
        seats: super::u64_of(p, "seats")? as u32,
        hot: super::u64_of(p, "hot")? as u32,
        ttl: Duration::from_millis(super::u64_of(p, "ttlMs")?),
        tolerance: Duration::from_millis(super::u64_of(p, "toleranceMs")?),
    };
    let concert_id = super::str_of(p, "concertId")?;
    let calls = &seg.calls;
    let mut users: Vec<SeatUser> = (0..spec.users)
        .map(|i| user(calls, format!("{concert_id}-u{i}"), false, Role::of(i)))
        .collect();
    let taken = users
        .iter()
        .flat_map(|u| &u.holds)
        .filter(|(_, c)| c.reply.code() == Some("SEAT_TAKEN"))
        .count();
    for n in 0.. {
        let name = format!("{concert_id}-again-{n}");
        if calls.by(&name, "enter").next().is_none() {
            break;
        }
        users.push(user(calls, name, true, Role::Abandoner));
    }
    let holds: Vec<HoldOk> = users
        .iter()
        .flat_map(|u| {
            u.holds
                .iter()
                .filter_map(|(seat, call)| HoldOk::from_call(&u.user, u.rehold, *seat, call))
        })
        .collect();
    let seat_of: HashMap<&str, u32> = holds
        .iter()
        .map(|h| (h.reservation_id.as_str(), h.seat))
        .collect();
    let pays = users
        .iter()
        .flat_map(|u| calls.by(&u.user, "pay"))
        .map(|c| {
            let id = c.args["reservationId"].as_str().unwrap_or_default();
            let key = c.args["idempotencyKey"].as_str().map(str::to_owned);
            PayCall {
                user: c.process.clone(),
                seat: seat_of.get(id).copied().unwrap_or(0),
                reservation_id: id.to_owned(),
                late: key.as_deref().is_some_and(|k| k.ends_with("-late")),
                key,
                call: c.call.clone(),
            }
        })
        .collect();
    let seat_reads: Vec<_> = calls.by("checker", "read-seats").collect();
    let reads = seat_reads
        .iter()
        .filter(|c| c.call.reply.status() == Some(200))
        .filter_map(|c| {
            let rows = c.call.reply.body()?.as_array()?;
            let status: BTreeMap<u32, String> = rows
                .iter()
                .filter_map(|r| {
                    Some((
                        r["seatNumber"].as_u64()? as u32,
                        r["status"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            Some(SeatRead {
                invoked: c.call.invoked,
                completed: c.call.completed,
                status,
            })
        })
        .collect();
    let mut problems = Vec::new();
    let final_read_ok = seat_reads.last().is_some_and(|c| {
        c.call.reply.status() == Some(200) && c.call.reply.body().is_some_and(|b| b.is_array())
    });
    if !final_read_ok {
        problems.push("the final seat map could not be read".to_owned());
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

/// One user as recorded: charge, hold attempts, final balance; stuck
/// when it never got to hold.
fn user(calls: &Calls, name: String, rehold: bool, role: Role) -> SeatUser {
    let mut u = SeatUser::new(name, rehold, role);
    u.charge = calls.by(&u.user, "charge").next().map(|c| c.call.clone());
    u.holds = calls
        .by(&u.user, "hold")
        .map(|c| {
            (
                c.args["seatNumber"].as_u64().unwrap_or(0) as u32,
                c.call.clone(),
            )
        })
        .collect();
    u.final_balance = calls
        .by("checker", "read-points")
        .filter(|c| c.args["userId"].as_str() == Some(u.user.as_str()))
        .last()
        .map(|c| c.call.clone());
    if u.holds.is_empty() {
        u.stuck = Some(match calls.by(&u.user, "enter").next() {
            None => "no enter recorded".to_owned(),
            Some(e) if e.call.reply.status() != Some(200) => {
                format!("enter answered {}", e.call.reply.short())
            }
            Some(_) if admitted(calls, &u.user).is_none() => "never ACTIVE".to_owned(),
            Some(_) => "never held a seat".to_owned(),
        });
    }
    u
}
