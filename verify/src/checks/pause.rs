//! The pause check: while the operator has paused admission nobody is
//! admitted (although a slot is free), the waiting keep their places and
//! are told it is paused; once resumed, admission goes on in entry order.

use serde_json::json;

use super::{fault, ms};
use crate::recorded::pause::PauseRun;
use crate::scenarios::pause::USERS;
use crate::verdict::{CheckReport, Status};

pub fn judge(run: &PauseRun) -> CheckReport {
    let mut failures = Vec::new();
    let mut witness = Vec::new();
    let answered = |c: &Option<crate::client::Call>, what: &str, failures: &mut Vec<String>| match c
    {
        Some(c) if c.reply.is_success() => Some((c.invoked, c.completed)),
        Some(c) => {
            failures.push(format!("the {what} was refused: {}", c.reply.short()));
            None
        }
        None => {
            failures.push(format!("no {what} was recorded"));
            None
        }
    };
    let pause = answered(&run.pause, "pause", &mut failures);
    let resume = answered(&run.resume, "resume", &mut failures);
    if !run.freed.as_ref().is_some_and(|c| c.reply.is_success()) {
        failures.push("the ACTIVE user's purchase, which frees the slot, failed".into());
    }

    // Reads wholly inside the pause: after it was acknowledged, before the
    // resume was sent.
    let (mut admitted, mut untold, mut moved) = (Vec::new(), Vec::new(), Vec::new());
    if let (Some((_, paused_at)), Some((resumed_at, _))) = (pause, resume) {
        let held: Vec<_> = run
            .reads
            .iter()
            .filter(|r| r.invoked >= paused_at && r.completed <= resumed_at)
            .collect();
        if held.is_empty() {
            failures.push("no status was read while paused".into());
        }
        for r in &held {
            if r.status.as_deref() != Some("WAITING") {
                admitted.push(format!(
                    "user {} read {:?} at {} while admission was paused ({} to {})",
                    r.user,
                    r.status,
                    ms(r.completed),
                    ms(paused_at),
                    ms(resumed_at)
                ));
            } else if r.paused != Some(true) {
                untold.push(format!(
                    "user {} read WAITING at {} without \"paused\": true",
                    r.user,
                    ms(r.completed)
                ));
            }
        }
        for u in 1..USERS {
            let mut positions: Vec<u64> = held
                .iter()
                .filter(|r| r.user == u && r.status.as_deref() == Some("WAITING"))
                .filter_map(|r| r.position)
                .collect();
            positions.dedup();
            if positions.len() > 1 {
                moved.push(format!(
                    "user {u}'s position moved while paused: {positions:?}"
                ));
            }
        }
    }
    fault(&mut failures, &mut witness, &admitted, 3, |n| {
        format!("{n} reads found a user admitted while paused")
    });
    fault(&mut failures, &mut witness, &untold, 3, |n| {
        format!("{n} reads while paused did not say so")
    });
    fault(&mut failures, &mut witness, &moved, 3, |n| {
        format!("{n} users' places moved while paused")
    });

    // Admission order: each user's first ACTIVE read (capacity 1 and each
    // buys before the next can come in, so the order is strict).
    let mut order: Vec<(u64, usize)> = (1..USERS)
        .filter_map(|u| {
            run.reads
                .iter()
                .find(|r| r.user == u && r.status.as_deref() == Some("ACTIVE"))
                .map(|r| (r.completed, u))
        })
        .collect();
    order.sort();
    let order: Vec<usize> = order.into_iter().map(|(_, u)| u).collect();
    let expected: Vec<usize> = (1..USERS).collect();
    if order.len() < expected.len() {
        failures.push(format!(
            "only {} of {} waiting users were admitted after the resume",
            order.len(),
            expected.len()
        ));
    }
    let in_order = order.iter().zip(&expected).all(|(a, b)| a == b);
    if !in_order {
        failures.push(format!(
            "admitted out of entry order after the resume: {order:?}, expected {expected:?}"
        ));
    }

    let pass = failures.is_empty();
    let summary = if pass {
        format!(
            "nobody admitted while paused ({} reads), places kept, then {} admitted in entry order",
            run.reads.len(),
            order.len()
        )
    } else {
        failures.join("; ")
    };
    let mut all = failures.clone();
    all.extend(witness);
    CheckReport {
        check: "pause",
        name: format!("{USERS} users, activeCapacity 1"),
        status: Status::of(pass),
        pass,
        summary,
        witness: all,
        details: json!({
            "eventId": run.event_id,
            "reads": run.reads.len(),
            "admissionOrder": order,
        }),
    }
}
