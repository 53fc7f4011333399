//! Check 3, FIFO fairness: a user whose enter completed before another's
//! began must not be admitted later. Reported as numbers, not a yes/no:
//! inversions among ordered pairs, Kendall's tau, the largest displacement,
//! and the witness pairs.

use serde_json::json;

use super::{first, ms};
use crate::scenarios::queue::QueueRun;
use crate::verdict::{CheckReport, Status};

pub fn judge(run: &QueueRun) -> CheckReport {
    let users: Vec<_> = run.users.iter().filter(|u| u.token.is_some()).collect();
    let mut inversions = Vec::new();
    let (mut concordant, mut discordant, mut ordered) = (0u64, 0u64, 0u64);
    for a in &users {
        for b in &users {
            // Only pairs with a real-time order: a finished entering before b began.
            if a.enter.completed >= b.enter.invoked {
                continue;
            }
            ordered += 1;
            match (a.admitted_round, b.admitted_round) {
                (Some(ra), Some(rb)) if ra < rb => concordant += 1,
                (Some(ra), Some(rb)) if ra > rb => {
                    discordant += 1;
                    inversions.push(format!(
                        "{} entered by {} (before {} began at {}) but was admitted in round {ra}, after {} (round {rb})",
                        a.user,
                        ms(a.enter.completed),
                        b.user,
                        ms(b.enter.invoked),
                        b.user
                    ));
                }
                // b admitted, a never: a was passed over.
                (None, Some(rb)) => {
                    discordant += 1;
                    inversions.push(format!(
                        "{} entered before {} but was never admitted; {} was (round {rb})",
                        a.user, b.user, b.user
                    ));
                }
                _ => {} // same round (admitted together) or neither admitted
            }
        }
    }
    let tau = if concordant + discordant == 0 {
        1.0
    } else {
        (concordant as f64 - discordant as f64) / (concordant + discordant) as f64
    };

    // Displacement, counting only what no concurrency can explain: the
    // real-time order allows a user any entry rank from (users that finished
    // entering before it began) to (users that began before it finished),
    // and any admission rank within its round; the displacement is the gap
    // between those two intervals.
    let admitted: Vec<usize> = (0..users.len())
        .filter(|&i| users[i].admitted_round.is_some())
        .collect();
    let max_displacement = admitted
        .iter()
        .map(|&i| {
            let u = &users[i];
            let entry_lo = users
                .iter()
                .filter(|o| o.enter.completed < u.enter.invoked)
                .count();
            let entry_hi = users
                .iter()
                .filter(|o| o.enter.invoked < u.enter.completed)
                .count()
                - 1;
            let round = u.admitted_round;
            let adm_lo = admitted
                .iter()
                .filter(|&&j| users[j].admitted_round < round)
                .count();
            let adm_hi = admitted
                .iter()
                .filter(|&&j| users[j].admitted_round <= round)
                .count()
                - 1;
            if adm_lo > entry_hi {
                adm_lo - entry_hi
            } else {
                entry_lo.saturating_sub(adm_hi)
            }
        })
        .max()
        .unwrap_or(0);

    let mut problems = Vec::new();
    if let Some(why) = &run.stalled {
        problems.push(format!("the queue stalled: {why}"));
    }
    let never = users.iter().filter(|u| u.admitted_round.is_none()).count();
    if never > 0 && run.stalled.is_none() {
        problems.push(format!("{never} users were never admitted"));
    }
    let pass = inversions.is_empty() && problems.is_empty();
    let mut summary = format!(
        "{} inversions in {ordered} ordered pairs (Kendall tau {tau:.3}, largest displacement {max_displacement})",
        discordant
    );
    if let Some(p) = problems.first() {
        summary.push_str(&format!(" — {p}"));
    }
    let mut witness = problems.clone();
    witness.extend(first(&inversions, 5));
    CheckReport {
        check: "fifo",
        name: format!("{} users, activeCapacity {}", users.len(), run.capacity),
        status: Status::of(pass),
        pass,
        summary,
        witness,
        details: json!({
            "eventId": run.event_id,
            "users": users.len(),
            "orderedPairs": ordered,
            "inversions": discordant,
            "concordant": concordant,
            "kendallTau": tau,
            "largestDisplacement": max_displacement,
            "neverAdmitted": never,
            "stalled": run.stalled,
        }),
    }
}
