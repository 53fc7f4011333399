//! The token rules (check 5's scenario) rebuilt from its part of the
//! history: the attacker's reserves are the cases, in the order of
//! [`CASES`], each between two reads of the event.

use super::{admitted, Segment};
use crate::scenarios::tokens::{TokenCase, TokensRun, CASES};

pub fn rebuild(seg: &Segment) -> Result<TokensRun, String> {
    let calls = &seg.calls;
    let mut problems = Vec::new();
    for user in ["tok-alice", "tok-carol"] {
        if admitted(calls, user).is_none() {
            problems.push(format!("{user} never became ACTIVE"));
        }
    }
    if let Some(bob) = calls.by("tok-bob", "enter").next() {
        let reply = &bob.call.reply;
        if reply.str_field("status") != Some("WAITING") {
            problems.push(format!(
                "tok-bob should be WAITING behind tok-alice (activeCapacity 1), enter answered {} {:?}",
                reply.short(),
                reply.str_field("status")
            ));
        }
    }
    match calls.by("tok-alice", "reserve").next() {
        Some(legit) if !legit.call.reply.is_success() => problems.push(format!(
            "tok-alice, ACTIVE, could not buy: reserve answered {}",
            legit.call.reply.short()
        )),
        Some(_) => {}
        None => problems.push("tok-alice's purchase was not recorded".into()),
    }
    let reads: Vec<_> = calls.by("checker", "read-event").collect();
    let remaining = |c: Option<&&crate::history::RecordedCall>| {
        c.and_then(|c| c.call.reply.body()?["remaining"].as_u64())
    };
    let attempts: Vec<_> = calls.by("tok-attacker", "reserve").collect();
    if attempts.len() != CASES.len() {
        return Err(format!(
            "{} attacker reserves recorded, {} cases",
            attempts.len(),
            CASES.len()
        ));
    }
    let cases = CASES
        .into_iter()
        .zip(attempts)
        .map(|((name, expected_status, expected_code), a)| TokenCase {
            name,
            expected_status,
            expected_code,
            reply: a.call.reply.clone(),
            remaining_before: remaining(
                reads
                    .iter()
                    .rev()
                    .find(|r| r.call.completed <= a.call.invoked),
            ),
            remaining_after: remaining(reads.iter().find(|r| r.call.invoked >= a.call.completed)),
        })
        .collect();
    Ok(TokensRun {
        event_id: super::str_of(&seg.params, "eventId")?,
        cases,
        problems,
    })
}
