//! The race (check 1's scenario) rebuilt from its part of the history.

use super::{admitted, Segment};
use crate::client::{Call, Reply};
use crate::history::OpKind;
use crate::scenarios::race::{Buyer, RaceRun, RaceSpec, Resolution, TicketRead};

pub fn rebuild(seg: &Segment) -> Result<RaceRun, String> {
    let p = &seg.params;
    let spec = RaceSpec {
        buyers: super::usize_of(p, "buyers")?,
        stock: super::u64_of(p, "stock")?,
        quantity: super::u64_of(p, "quantity")? as u32,
    };
    let event_id = super::str_of(p, "eventId")?;
    let calls = &seg.calls;
    let buyers: Vec<Buyer> = (0..spec.buyers)
        .map(|i| {
            let user = format!("buyer-{i}");
            let enter = calls.by(&user, "enter").next().map(|c| &c.call);
            let token = enter
                .filter(|c| c.reply.status() == Some(200))
                .and_then(|c| c.reply.str_field("token"))
                .map(str::to_owned);
            // Under a nemesis a buyer may have tried several times.
            let attempts: Vec<Call> = calls.by(&user, "reserve").map(|c| c.call.clone()).collect();
            let reserve = crate::nemesis::persist::effective(&attempts).cloned();
            let stuck = match (enter, &reserve) {
                (_, Some(_)) => None,
                (None, None) => Some("no enter recorded".to_owned()),
                (Some(e), None) if token.is_none() => {
                    Some(format!("enter answered {}", e.reply.short()))
                }
                (Some(_), None) => Some(match admitted(calls, &user) {
                    Some(_) => "ACTIVE but never reserved".to_owned(),
                    None => "never ACTIVE".to_owned(),
                }),
            };
            let resolution = reserve
                .as_ref()
                .filter(|c| c.reply.kind() == OpKind::Info)
                .map(|r| resolve(calls.by(&user, "status").map(|c| &c.call), r));
            Buyer {
                user,
                token,
                stuck,
                reserve,
                resolution,
            }
        })
        .collect();

    // The checker's read of the event after the race: the last one, which
    // in a merged history is after every shard's buyers (each shard reads
    // it once its own are done).
    let event_after = calls
        .of_f("read-event")
        .filter(|c| crate::history::merge::is_checker(&c.process) && c.args["eventId"] == event_id)
        .last()
        .filter(|c| c.call.reply.is_success())
        .and_then(|c| c.call.reply.body().cloned());

    let tickets = buyers
        .iter()
        .filter_map(|b| {
            let id = b
                .reserve
                .as_ref()
                .filter(|c| c.reply.is_success())?
                .reply
                .str_field("reservationId")?;
            Some(ticket(seg, id, &b.user, spec.quantity))
        })
        .collect();
    Ok(RaceRun {
        spec,
        run: super::usize_of(p, "run")?,
        event_id,
        buyers,
        event_after,
        tickets,
        released_at: seg.calls.note("release").map_or(0, |n| n.at),
    })
}

/// An unknown reserve resolved by the first definitive status read after
/// it (or the last read, when none was): a used token (DONE) means it
/// happened, a still ACTIVE one that it did not.
fn resolve<'a>(status: impl Iterator<Item = &'a Call>, reserve: &Call) -> Resolution {
    let after: Vec<&Call> = status.filter(|c| c.invoked >= reserve.completed).collect();
    let Some(read) = after
        .iter()
        .find(|c| c.reply.kind() != OpKind::Info)
        .or(after.last())
    else {
        return Resolution::Unresolved("no status read after it".into());
    };
    match read.reply.str_field("status") {
        Some("DONE") => Resolution::Happened,
        Some("ACTIVE") => Resolution::DidNotHappen,
        Some(other) => Resolution::Unresolved(format!("token is {other}")),
        None => Resolution::Unresolved(format!("status answered {}", read.reply.short())),
    }
}

/// The checker's reads of one reservation: the last body read, the first
/// time it read CONFIRMED, the error of the last read if it failed.
fn ticket(seg: &Segment, id: &str, user: &str, quantity: u32) -> TicketRead {
    let mut read = TicketRead {
        reservation_id: id.to_owned(),
        user: user.to_owned(),
        quantity,
        body: None,
        confirmed_at: None,
        error: None,
    };
    let reader = format!("reader-{user}");
    for c in seg
        .calls
        .by(&reader, "read-ticket")
        .filter(|c| c.args["reservationId"] == id)
    {
        match &c.call.reply {
            Reply::Http { body, .. } if c.call.reply.is_success() => {
                read.body = Some(body.clone());
                read.error = None;
                if body["status"] == "CONFIRMED" && read.confirmed_at.is_none() {
                    read.confirmed_at = Some(c.call.completed);
                }
            }
            other => read.error = Some(other.short()),
        }
    }
    read
}
