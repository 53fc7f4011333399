//! Check 6, the seat map: judged from client-side times alone, so it holds
//! for any server whose clock agrees with the TTL it was started with.
//!
//! A hold X answered 201 took effect at some instant in
//! `[X.invoked, X.completed]`, so the seat is certainly X's from
//! `X.completed` until `X.invoked + TTL` (for ever once X is paid).
//! - Two ok holds of one seat are legal only if one can follow the other:
//!   the earlier unpaid, and the later completing after the earlier's TTL.
//! - A read showing the seat AVAILABLE inside that window is an early
//!   release (or a CONFIRMED seat shown AVAILABLE).
//! - An unpaid hold must be seen AVAILABLE (or held by a legal successor)
//!   by `X.completed + TTL + tolerance`, and the seat must be holdable then.
//! - A payment invoked after `X.completed + TTL` must not succeed.
//! - Per user, the final balance = charges - distinct payments, never
//!   negative; retries with one key share one payment.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::json;

use crate::history::OpKind;
use crate::scenarios::seatmap::{HoldOk, Role, SeatRun, PRICE};
use crate::verdict::{CheckReport, Status};

/// Allowance for the two clocks (client monotonic, server wall) and for
/// the server rounding `expiresAt`.
const SLACK_NS: u64 = 20_000_000;
/// Witness lines kept per kind of violation.
const WITNESSES: usize = 5;

fn secs(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

pub fn judge(run: &SeatRun) -> CheckReport {
    let ttl = run.spec.ttl.as_nanos() as u64;
    let tolerance = run.spec.tolerance.as_nanos() as u64;
    let mut witness: Vec<String> = run.problems.clone();
    let push = |kind: &mut usize, line: String, witness: &mut Vec<String>| {
        *kind += 1;
        if *kind <= WITNESSES {
            witness.push(line);
        }
    };

    // Payments that succeeded, per reservation: when the first completed.
    let mut paid: HashMap<&str, Vec<&crate::scenarios::seatmap::PayCall>> = HashMap::new();
    for p in run.pays.iter().filter(|p| p.call.reply.is_success()) {
        paid.entry(p.reservation_id.as_str()).or_default().push(p);
    }
    let protected_until = |h: &HoldOk| -> u64 {
        if paid.contains_key(h.reservation_id.as_str()) {
            u64::MAX
        } else {
            h.call.invoked + ttl
        }
    };

    // 1. No two users hold (or confirm) one seat at overlapping times.
    let mut by_seat: BTreeMap<u32, Vec<&HoldOk>> = BTreeMap::new();
    for h in &run.holds {
        by_seat.entry(h.seat).or_default().push(h);
    }
    let mut overlaps = 0;
    for (seat, holds) in &by_seat {
        for (i, x) in holds.iter().enumerate() {
            for y in &holds[i + 1..] {
                let y_after_x = y.call.completed + SLACK_NS >= protected_until(x);
                let x_after_y = x.call.completed + SLACK_NS >= protected_until(y);
                if !(y_after_x || x_after_y) {
                    push(
                        &mut overlaps,
                        format!(
                            "seat {seat}: held by {} ({}, 201 at {}) and by {} ({}, 201 at {}) while the first was still held{}",
                            x.user,
                            x.reservation_id,
                            secs(x.call.completed),
                            y.user,
                            y.reservation_id,
                            secs(y.call.completed),
                            if paid.contains_key(x.reservation_id.as_str())
                                || paid.contains_key(y.reservation_id.as_str())
                            {
                                " (and paid)"
                            } else {
                                ""
                            }
                        ),
                        &mut witness,
                    );
                }
            }
        }
    }

    // 2. No read shows a certainly held or confirmed seat AVAILABLE.
    let mut early = 0;
    for h in &run.holds {
        let until = protected_until(h);
        if let Some(r) = run.reads.iter().find(|r| {
            r.invoked >= h.call.completed
                && r.completed.saturating_add(SLACK_NS) < until
                && r.status.get(&h.seat).map(String::as_str) == Some("AVAILABLE")
        }) {
            push(
                &mut early,
                format!(
                    "seat {}: shown AVAILABLE at {} while {} held it ({}, 201 at {}, TTL {}){}",
                    h.seat,
                    secs(r.completed),
                    h.user,
                    h.reservation_id,
                    secs(h.call.completed),
                    secs(ttl),
                    if until == u64::MAX { ", paid" } else { "" }
                ),
                &mut witness,
            );
        }
    }

    // 3. Unpaid holds lapse within TTL + tolerance, and the seat is holdable.
    let mut late_release = 0;
    let mut lapsed = 0;
    let mut worst_ns: u64 = 0;
    for h in run
        .holds
        .iter()
        .filter(|h| !paid.contains_key(h.reservation_id.as_str()))
        .filter(|h| !h.rehold)
    {
        let deadline = h.call.completed + ttl + tolerance;
        let seen = run
            .reads
            .iter()
            .filter(|r| {
                r.invoked >= h.call.completed
                    && r.status.get(&h.seat).map(String::as_str) == Some("AVAILABLE")
            })
            .map(|r| r.completed)
            .min();
        let successor = by_seat[&h.seat]
            .iter()
            .filter(|y| y.reservation_id != h.reservation_id && y.call.invoked >= h.call.invoked)
            .map(|y| y.call.completed)
            .min();
        let released = [seen, successor].into_iter().flatten().min();
        match released {
            Some(at) if at <= deadline + SLACK_NS => {
                lapsed += 1;
                worst_ns = worst_ns.max(at.saturating_sub(h.call.invoked + ttl));
            }
            other => push(
                &mut late_release,
                format!(
                    "seat {}: {}'s unpaid hold ({}, 201 at {}) was {} (TTL {} + tolerance {})",
                    h.seat,
                    h.user,
                    h.reservation_id,
                    secs(h.call.completed),
                    match other {
                        Some(at) => format!("first seen AVAILABLE at {}", secs(at)),
                        None => "never seen AVAILABLE again".to_owned(),
                    },
                    secs(ttl),
                    secs(tolerance)
                ),
                &mut witness,
            ),
        }
    }
    let mut not_holdable = 0;
    for u in run.users.iter().filter(|u| u.rehold) {
        match (&u.stuck, u.holds.first()) {
            (None, Some((seat, call))) if call.reply.status() != Some(201) => push(
                &mut not_holdable,
                format!(
                    "seat {seat}: shown AVAILABLE after its hold lapsed, but {}'s hold answered {}",
                    u.user,
                    call.reply.short()
                ),
                &mut witness,
            ),
            (Some(e), _) => witness.push(format!("{}: {e}", u.user)),
            _ => {}
        }
    }

    // 4. No payment succeeds after its hold lapsed; answers as the contract says.
    let holds_by_id: HashMap<&str, &HoldOk> = run
        .holds
        .iter()
        .map(|h| (h.reservation_id.as_str(), h))
        .collect();
    let roles: HashMap<&str, Role> = run
        .users
        .iter()
        .map(|u| (u.user.as_str(), u.role))
        .collect();
    let mut after_expiry = 0;
    let mut wrong_answer = 0;
    // A payment invoked while its hold was live, and not refused, may
    // have succeeded then (an unknown outcome too); a later success for the
    // same reservation is the idempotent replay of that payment, not a
    // payment after expiry (paid stays paid).
    let paid_in_time: HashSet<&str> = run
        .pays
        .iter()
        .filter(|p| {
            let hold = holds_by_id[p.reservation_id.as_str()];
            p.call.invoked <= hold.call.completed + ttl + SLACK_NS
                && !matches!(p.call.reply.kind(), OpKind::Fail)
        })
        .map(|p| p.reservation_id.as_str())
        .collect();
    for p in &run.pays {
        let hold = holds_by_id[p.reservation_id.as_str()];
        if p.call.reply.is_success()
            && p.call.invoked > hold.call.completed + ttl + SLACK_NS
            && !paid_in_time.contains(p.reservation_id.as_str())
        {
            push(
                &mut after_expiry,
                format!(
                    "{} paid {} at {}, after its hold (201 at {}) had lapsed (TTL {})",
                    p.user,
                    p.reservation_id,
                    secs(p.call.invoked),
                    secs(hold.call.completed),
                    secs(ttl)
                ),
                &mut witness,
            );
        }
        let (status, code) = match (p.late, roles.get(p.user.as_str())) {
            (true, _) => (410, "HOLD_EXPIRED"),
            (false, Some(Role::Poor)) => (402, "INSUFFICIENT_POINTS"),
            (false, _) => (200, ""),
        };
        // Unknown outcomes (info) are judged through the balances.
        if matches!(p.call.reply.kind(), OpKind::Ok | OpKind::Fail) {
            let got = p.call.reply.status();
            let code_ok = code.is_empty() || p.call.reply.code() == Some(code);
            // A payment answered after the hold could have lapsed may be 410.
            let may_have_lapsed = p.call.completed + SLACK_NS >= hold.call.invoked + ttl
                && p.call.reply.code() == Some("HOLD_EXPIRED");
            if (got != Some(status) || !code_ok) && !may_have_lapsed {
                push(
                    &mut wrong_answer,
                    format!(
                        "{} paying {} (seat {}{}) got {}, expected {status} {code}",
                        p.user,
                        p.reservation_id,
                        p.seat,
                        if p.late {
                            ", after the hold lapsed"
                        } else {
                            ""
                        },
                        p.call.reply.short()
                    ),
                    &mut witness,
                );
            }
        }
    }

    // 5. Points: one charge per payment, exact balances, never negative.
    let mut double_charge = 0;
    let mut payment_of: HashMap<&str, &str> = HashMap::new();
    for (rid, ps) in &paid {
        let ids: BTreeSet<&str> = ps
            .iter()
            .filter_map(|p| p.call.reply.str_field("paymentId"))
            .collect();
        if ids.len() > 1 {
            push(
                &mut double_charge,
                format!(
                    "reservation {rid}: {} payments ({}) for one hold",
                    ids.len(),
                    ids.iter().copied().collect::<Vec<_>>().join(", ")
                ),
                &mut witness,
            );
        }
        if let Some(id) = ids.iter().next() {
            payment_of.insert(rid, id);
        }
        for p in ps {
            let amount = p.call.reply.body().and_then(|b| b["amount"].as_i64());
            let balance = p.call.reply.body().and_then(|b| b["balance"].as_i64());
            if amount != Some(PRICE as i64) || balance.is_none_or(|b| b < 0) {
                push(
                    &mut double_charge,
                    format!(
                        "{} paying {}: amount {amount:?} (price {PRICE}), balance {balance:?}",
                        p.user, rid
                    ),
                    &mut witness,
                );
            }
        }
    }
    let mut balance_wrong = 0;
    let mut unresolved = 0;
    let mut exact = 0;
    for u in &run.users {
        let pays: Vec<_> = run.pays.iter().filter(|p| p.user == u.user).collect();
        let unknown = pays.iter().any(|p| p.call.reply.kind() == OpKind::Info)
            || u.charge
                .as_ref()
                .is_some_and(|c| c.reply.kind() == OpKind::Info);
        if unknown {
            unresolved += 1;
            continue;
        }
        let charged = match &u.charge {
            Some(c) if c.reply.is_success() => u.role.charged() as i64,
            _ => 0,
        };
        let debited: i64 = pays
            .iter()
            .filter(|p| p.call.reply.is_success())
            .filter_map(|p| {
                Some((
                    p.call.reply.str_field("paymentId")?,
                    p.call.reply.body()?["amount"].as_i64()?,
                ))
            })
            .collect::<BTreeMap<_, _>>()
            .values()
            .sum();
        let expected = charged - debited;
        let got = u
            .final_balance
            .as_ref()
            .filter(|c| c.reply.status() == Some(200))
            .and_then(|c| c.reply.body())
            .and_then(|b| b["balance"].as_i64());
        if expected < 0 || got != Some(expected) {
            push(
                &mut balance_wrong,
                format!(
                    "{}: charged {charged}, paid {debited}, balance {} (expected {expected}{})",
                    u.user,
                    got.map_or("unreadable".to_owned(), |b| b.to_string()),
                    if expected < 0 { ", below zero" } else { "" }
                ),
                &mut witness,
            );
        } else {
            exact += 1;
        }
    }

    // 6. The final seat map agrees with the payments.
    let mut map_wrong = 0;
    if let Some(last) = run.reads.last() {
        for rid in payment_of.keys() {
            let seat = holds_by_id[rid].seat;
            if last.status.get(&seat).map(String::as_str) != Some("CONFIRMED") {
                push(
                    &mut map_wrong,
                    format!(
                        "seat {seat}: paid ({rid}) but shown {:?} at the end",
                        last.status.get(&seat)
                    ),
                    &mut witness,
                );
            }
        }
        let paid_seats: BTreeSet<u32> = run
            .pays
            .iter()
            .filter(|p| p.call.reply.kind() != OpKind::Fail)
            .map(|p| p.seat)
            .collect();
        for (seat, status) in &last.status {
            if status == "CONFIRMED" && !paid_seats.contains(seat) {
                push(
                    &mut map_wrong,
                    format!("seat {seat}: CONFIRMED at the end, but nobody paid for it"),
                    &mut witness,
                );
            }
        }
    }

    let violations = overlaps
        + early
        + late_release
        + not_holdable
        + after_expiry
        + wrong_answer
        + double_charge
        + balance_wrong
        + map_wrong;
    let pass = violations == 0 && unresolved == 0 && run.problems.is_empty();
    let confirmed = payment_of.len();
    let mut summary = format!(
        "{} holds ({} SEAT_TAKEN), {confirmed} paid, {lapsed} lapsed within TTL + {} ms (tolerance {} ms), \
         {overlaps} double holds, {after_expiry} payments after expiry, {exact} balances exact, {unresolved} unresolved",
        run.holds.len(),
        run.taken,
        worst_ns / 1_000_000,
        tolerance / 1_000_000,
    );
    if let Some(w) = witness.first() {
        summary.push_str(&format!(" — {w}"));
    }
    CheckReport {
        check: "seatmap",
        name: format!(
            "{} users / {} seats ({} hot), TTL {} ms",
            run.spec.users,
            run.spec.seats,
            run.spec.hot,
            ttl / 1_000_000
        ),
        status: Status::of(pass),
        pass,
        summary,
        witness,
        details: json!({
            "concertId": run.concert_id,
            "holds": run.holds.len(),
            "seatTaken": run.taken,
            "paid": confirmed,
            "lapsed": lapsed,
            "worstLapseAfterTtlMs": worst_ns as f64 / 1e6,
            "toleranceMs": tolerance / 1_000_000,
            "ttlMs": ttl / 1_000_000,
            "violations": {
                "doubleHolds": overlaps,
                "shownAvailableWhileHeld": early,
                "lapsedTooLate": late_release,
                "notHoldableAfterLapse": not_holdable,
                "paymentsAfterExpiry": after_expiry,
                "paymentAnswers": wrong_answer,
                "chargedTwice": double_charge,
                "balances": balance_wrong,
                "finalSeatMap": map_wrong,
            },
            "balancesExact": exact,
            "unresolvedUsers": unresolved,
            "seatReads": run.reads.len(),
        }),
    }
}
