//! The queue (checks 3 and 4's scenario) rebuilt from its part of the
//! history. A user's admission round is the number of the driver's
//! purchases invoked before the user was seen ACTIVE: the driver invokes
//! the next purchase only once the admissions the last one allows were
//! seen, so an admission seen before purchase k+1 was invoked belongs to
//! round k.

use super::{seen_active, Segment};
use crate::client::Reply;
use crate::scenarios::queue::{QueueRun, QueueUser};
use crate::scenarios::Shown;

pub fn rebuild(seg: &Segment) -> Result<QueueRun, String> {
    let p = &seg.params;
    let capacity = super::u64_of(p, "capacity")? as u32;
    let wave = super::usize_of(p, "wave")?.max(1);
    let calls = &seg.calls;
    let probe = calls.note("early-buy-probe");
    let probe_user = probe.and_then(|n| n.value["user"].as_str());
    let mut users: Vec<QueueUser> = Vec::new();
    for i in 0..super::usize_of(p, "users")? {
        let user = format!("queue-{i}");
        let Some(enter) = calls.by(&user, "enter").next() else {
            return Err(format!("{user} has no enter recorded"));
        };
        let enter = enter.call.clone();
        let token = (enter.reply.status() == Some(200))
            .then(|| enter.reply.str_field("token").map(str::to_owned))
            .flatten();
        let admitted_at = seen_active(calls, &user);
        let until = admitted_at.unwrap_or(u64::MAX);
        let mut shown: Vec<Shown> = calls
            .delivered
            .iter()
            .filter(|d| d.process == user && d.value["event"] == "position" && d.at < until)
            .map(|d| Shown {
                at: d.at,
                position: d.value["data"]["position"].as_u64().unwrap_or(0),
                estimated_wait_seconds: d.value["data"]["estimatedWaitSeconds"].as_u64(),
                id: d.value["id"].as_str().map(str::to_owned),
            })
            .collect();
        shown.extend(
            calls
                .by(&user, "status")
                .filter(|c| c.call.completed < until)
                .filter_map(|c| match &c.call.reply {
                    Reply::Http { status: 200, body } if body["status"] == "WAITING" => {
                        Some(Shown {
                            at: c.call.completed,
                            position: body["position"].as_u64().unwrap_or(0),
                            estimated_wait_seconds: body["estimatedWaitSeconds"].as_u64(),
                            id: None,
                        })
                    }
                    _ => None,
                }),
        );
        shown.sort_by_key(|s| s.at);
        let refused = calls
            .by(&user, "stream")
            .chain(calls.by(&user, "status"))
            .find(|c| !c.call.reply.is_success())
            .map(|c| format!("{} answered {}", c.f, c.call.reply.short()));
        let error = match &token {
            None => Some(format!("enter answered {}", enter.reply.short())),
            Some(_) if admitted_at.is_none() => refused,
            Some(_) => None,
        };
        let bought_at = calls
            .by(&user, "reserve")
            .find(|c| c.call.reply.is_success())
            .map(|c| c.call.invoked);
        users.push(QueueUser {
            user,
            wave: i / wave,
            enter,
            token,
            shown,
            admitted_round: None,
            admitted_at,
            bought_at,
            error,
        });
    }

    // The probe's purchase is the probed user's first reserve after the
    // note; the driver's purchases are every other successful reserve.
    let probe_call = probe.zip(probe_user).and_then(|(n, user)| {
        calls
            .by(user, "reserve")
            .find(|c| c.call.invoked >= n.at)
            .map(|c| (user, c.call.invoked, c.call.reply.is_success()))
    });
    let bought_early = probe_call.is_some_and(|(_, _, ok)| ok);
    let mut purchases: Vec<u64> = calls
        .of_f("reserve")
        .filter(|c| c.call.reply.is_success())
        .filter(|c| {
            probe_call.is_none_or(|(u, at, _)| (u, at) != (c.process.as_str(), c.call.invoked))
        })
        .map(|c| c.call.invoked)
        .collect();
    purchases.sort_unstable();
    for u in &mut users {
        u.admitted_round = u
            .admitted_at
            .map(|at| purchases.iter().filter(|&&p| p < at).count());
    }
    let with_token = users.iter().filter(|u| u.token.is_some()).count();
    let mut over_capacity = Vec::new();
    for k in 0..=purchases.len() {
        let expected = (capacity as usize + k).min(with_token - usize::from(bought_early));
        let admitted = users
            .iter()
            .filter(|u| u.admitted_round.is_some_and(|r| r <= k))
            .count();
        if admitted > expected {
            over_capacity.push(format!(
                "after {k} purchases {admitted} users had been shown ACTIVE; at most {expected} may be (activeCapacity {capacity})"
            ));
        }
    }
    let active_samples = calls
        .by("sampler", "read-event")
        .filter_map(|c| {
            let active = c.call.reply.body()?["active"].as_u64()?;
            c.call
                .reply
                .is_success()
                .then_some((c.call.completed, active))
        })
        .collect();
    Ok(QueueRun {
        event_id: super::str_of(p, "eventId")?,
        capacity,
        users,
        active_samples,
        over_capacity,
        stalled: calls
            .note("stalled")
            .and_then(|n| n.value["why"].as_str().map(str::to_owned)),
    })
}
