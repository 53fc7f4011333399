//! Check 1, over-selling: exactly S/Q buyers succeed, the rest are SOLD_OUT,
//! nothing unknown stays unknown, the event's numbers agree, every
//! reservation is unique, readable, within the per-user limit and CONFIRMED
//! within the deadline.

use std::collections::{BTreeMap, HashSet};

use serde_json::json;

use super::{fault, first, ms};
use crate::history::OpKind;
use crate::scenarios::race::{RaceRun, Resolution};
use crate::verdict::{CheckReport, Status};

pub fn judge(run: &RaceRun, confirm_deadline_secs: u64) -> CheckReport {
    let spec = run.spec;
    let expected_ok = spec.expected_ok();
    let q = u64::from(spec.quantity);

    let mut ok = Vec::new();
    let mut sold_out = 0usize;
    let mut other_fail = Vec::new();
    let (mut recovered_ok, mut recovered_fail, mut unresolved) = (0usize, 0usize, Vec::new());
    let mut stuck = Vec::new();
    for b in &run.buyers {
        if let Some(why) = &b.stuck {
            stuck.push(format!("{}: {why}", b.user));
            continue;
        }
        let Some(call) = &b.reserve else { continue };
        match call.reply.kind() {
            OpKind::Ok => ok.push((b, call)),
            OpKind::Fail
                if call.reply.status() == Some(409) && call.reply.code() == Some("SOLD_OUT") =>
            {
                sold_out += 1
            }
            OpKind::Fail => other_fail.push(format!(
                "{} reserve at {} answered {}",
                b.user,
                ms(call.invoked),
                call.reply.short()
            )),
            OpKind::Info | OpKind::Invoke => match &b.resolution {
                Some(Resolution::Happened) => recovered_ok += 1,
                Some(Resolution::DidNotHappen) => recovered_fail += 1,
                Some(Resolution::Unresolved(why)) => {
                    unresolved.push(format!("{} reserve {}: {why}", b.user, call.reply.short()))
                }
                None => unresolved.push(format!("{} reserve {}", b.user, call.reply.short())),
            },
        }
    }

    let mut failures: Vec<String> = Vec::new();
    let mut witness: Vec<String> = Vec::new();
    let effective_ok = ok.len() + recovered_ok;
    if effective_ok != expected_ok {
        failures.push(format!(
            "{effective_ok} purchases succeeded, {expected_ok} possible ({} items, {} each)",
            spec.stock, spec.quantity
        ));
        let mut sorted = ok.clone();
        sorted.sort_by_key(|(_, c)| c.completed);
        witness.extend(first(
            &sorted
                .iter()
                .map(|(b, c)| {
                    format!(
                        "{} got {} at {}",
                        b.user,
                        c.reply.str_field("reservationId").unwrap_or("?"),
                        ms(c.completed)
                    )
                })
                .collect::<Vec<_>>(),
            3,
        ));
    }
    let expected_refused = spec.buyers - expected_ok;
    if sold_out + recovered_fail != expected_refused {
        failures.push(format!("{sold_out} SOLD_OUT, {expected_refused} expected"));
    }
    fault(&mut failures, &mut witness, &unresolved, 3, |k| {
        format!("{k} outcomes stayed unknown")
    });
    fault(&mut failures, &mut witness, &stuck, 3, |k| {
        format!("{k} buyers never got to reserve")
    });
    fault(&mut failures, &mut witness, &other_fail, 3, |k| {
        format!("{k} unexpected refusals")
    });

    let sold_expected = expected_ok as u64 * q;
    match &run.event_after {
        Some(ev) => {
            let (sold, remaining) = (ev["sold"].as_u64(), ev["remaining"].as_u64());
            if sold != Some(sold_expected) || remaining != Some(spec.stock - sold_expected) {
                failures.push(format!(
                    "event {} reports sold {} remaining {}, expected sold {sold_expected} remaining {}",
                    run.event_id,
                    ev["sold"],
                    ev["remaining"],
                    spec.stock - sold_expected
                ));
            }
        }
        None => failures.push(format!(
            "event {} could not be read after the race",
            run.event_id
        )),
    }

    let ids: Vec<&str> = ok
        .iter()
        .filter_map(|(_, c)| c.reply.str_field("reservationId"))
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    if unique.len() != ids.len() {
        failures.push(format!(
            "{} reservation ids for {} purchases",
            unique.len(),
            ids.len()
        ));
        let mut seen = HashSet::new();
        let dups: Vec<&str> = ids.iter().copied().filter(|id| !seen.insert(*id)).collect();
        witness.extend(first(
            &dups
                .iter()
                .map(|d| format!("{d} returned twice"))
                .collect::<Vec<_>>(),
            3,
        ));
    }
    if ok
        .iter()
        .any(|(_, c)| c.reply.str_field("reservationId").is_none())
    {
        failures.push("a successful reserve carried no reservationId".into());
    }

    let mut per_user: BTreeMap<String, u64> = BTreeMap::new();
    let mut unreadable = Vec::new();
    let mut unconfirmed = Vec::new();
    let mut mismatched = Vec::new();
    for t in &run.tickets {
        match &t.body {
            Some(body) => {
                let owner = body["userId"].as_str().unwrap_or("?").to_owned();
                *per_user.entry(owner.clone()).or_default() +=
                    body["quantity"].as_u64().unwrap_or(0);
                if owner != t.user || body["quantity"].as_u64() != Some(u64::from(t.quantity)) {
                    mismatched.push(format!(
                        "{} reads as {} x{}, bought by {} x{}",
                        t.reservation_id, owner, body["quantity"], t.user, t.quantity
                    ));
                }
                if t.confirmed_at.is_none() {
                    unconfirmed.push(format!("{} still {}", t.reservation_id, body["status"]));
                }
            }
            None => unreadable.push(format!(
                "{}: {}",
                t.reservation_id,
                t.error.clone().unwrap_or_else(|| "no read".into())
            )),
        }
    }
    fault(&mut failures, &mut witness, &unreadable, 3, |k| {
        format!("{k} reservations unreadable")
    });
    fault(&mut failures, &mut witness, &mismatched, 3, |k| {
        format!("{k} reservations read back differently")
    });
    let over_limit: Vec<String> = per_user
        .iter()
        .filter(|(_, n)| **n > q)
        .map(|(u, n)| format!("{u} holds {n} items, limit {q}"))
        .collect();
    fault(&mut failures, &mut witness, &over_limit, 3, |k| {
        format!("{k} users over the per-user limit")
    });
    fault(&mut failures, &mut witness, &unconfirmed, 3, |k| {
        format!("{k} reservations not CONFIRMED within {confirm_deadline_secs} s")
    });
    let confirm_lag_ms: Vec<f64> = run
        .tickets
        .iter()
        .filter_map(|t| t.confirmed_at)
        .map(|at| at.saturating_sub(run.released_at) as f64 / 1e6)
        .collect();
    let max_confirm_ms = confirm_lag_ms.iter().copied().fold(0.0, f64::max);

    let mut summary = format!(
        "{} ok / {} sold-out / {} unresolved",
        ok.len(),
        sold_out,
        unresolved.len()
    );
    if recovered_ok + recovered_fail > 0 {
        summary.push_str(&format!(" ({} recovered)", recovered_ok + recovered_fail));
    }
    if !failures.is_empty() {
        summary.push_str(&format!(" — {}", failures[0]));
        witness.splice(0..0, failures.iter().skip(1).cloned());
    }
    CheckReport {
        check: "oversell",
        name: format!("{} (run {})", spec.label(), run.run),
        status: Status::of(failures.is_empty()),
        pass: failures.is_empty(),
        summary,
        witness,
        details: json!({
            "eventId": run.event_id,
            "buyers": spec.buyers,
            "stock": spec.stock,
            "quantity": spec.quantity,
            "expectedOk": expected_ok,
            "ok": ok.len(),
            "soldOut": sold_out,
            "recoveredOk": recovered_ok,
            "recoveredFail": recovered_fail,
            "unresolved": unresolved.len(),
            "otherRefusals": other_fail.len(),
            "stuck": stuck.len(),
            "event": run.event_after,
            "maxConfirmMsAfterRelease": max_confirm_ms,
            "failures": failures,
        }),
    }
}
