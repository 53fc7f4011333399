//! One module per check; each judges a scenario as the history recorded it
//! ([`crate::recorded`]) and returns a `CheckReport` with a minimal witness
//! on failure. [`CHECKS`] is the one place they are registered, and
//! [`judge`] the one way a verdict is reached, live or offline.

use crate::history::Op;
use crate::options::CheckName;
use crate::recorded::Recorded;
use crate::verdict::{CheckReport, Verdict};

pub mod display;
pub mod faults;
pub mod fifo;
pub mod oversell;
pub mod pause;
pub mod seat_events;
pub mod seatmap;
pub mod stores;
pub mod throttled;
pub mod tokens;

/// Nanoseconds as milliseconds with one decimal, for witnesses.
pub(crate) fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

/// At most `n` items of a witness list, with a count of the rest.
pub(crate) fn first<T: ToString>(items: &[T], n: usize) -> Vec<String> {
    let mut out: Vec<String> = items.iter().take(n).map(ToString::to_string).collect();
    if items.len() > n {
        out.push(format!("... and {} more", items.len() - n));
    }
    out
}

/// Counts `items`, if there are any, as one failure (worded from their
/// number by `what`) and adds the first `n` of them to the witness.
pub(crate) fn fault<T: ToString>(
    failures: &mut Vec<String>,
    witness: &mut Vec<String>,
    items: &[T],
    n: usize,
    what: impl FnOnce(usize) -> String,
) {
    if !items.is_empty() {
        failures.push(what(items.len()));
        witness.extend(first(items, n));
    }
}

/// How one check judges a recorded run: a report per run of its scenario.
pub type Judge = fn(&Recorded) -> Vec<CheckReport>;

/// Every check, in the order the verdict lists them.
pub const CHECKS: [(CheckName, Judge); 7] = [
    (CheckName::Oversell, |r| {
        r.races
            .iter()
            .map(|(race, _)| oversell::judge(race, r.confirm_deadline_secs))
            .collect()
    }),
    (CheckName::Stores, |r| {
        let races = r.races.iter().filter_map(|(race, seen)| {
            Some(stores::judge(race, seen.as_ref()?, r.store_deadline_secs))
        });
        let seats = r.seats.iter().filter_map(|(seats, seen)| {
            Some(seat_events::judge(
                seats,
                seen.as_ref()?,
                r.store_deadline_secs,
            ))
        });
        races.chain(seats).collect()
    }),
    (CheckName::Fifo, |r| {
        r.queue.iter().map(fifo::judge).collect()
    }),
    (CheckName::Display, |r| {
        r.queue.iter().map(display::judge).collect()
    }),
    (CheckName::Tokens, |r| {
        r.tokens.iter().map(tokens::judge).collect()
    }),
    (CheckName::Seatmap, |r| {
        r.seats
            .iter()
            .map(|(seats, _)| seatmap::judge(seats))
            .collect()
    }),
    (CheckName::Pause, |r| {
        r.pause.iter().map(pause::judge).collect()
    }),
];

/// The verdict on a history: each check the run asked for judges what was
/// recorded; one the target could not run is not applicable, with the
/// reason. A history that cannot be rebuilt is an error naming why, and so
/// is one the target rate-limited ([`throttled`]).
pub fn judge(ops: &[Op]) -> Result<Verdict, String> {
    throttled::refuse(ops)?;
    let run = Recorded::from_ops(ops)?;
    let stores_seen = run.races.iter().any(|(_, s)| s.is_some())
        || run.seats.as_ref().is_some_and(|(_, s)| s.is_some());
    let mut reports = Vec::new();
    for (name, check) in CHECKS {
        let asked = run.checks.contains(&name) || (name == CheckName::Stores && stores_seen);
        if !asked {
            continue;
        }
        if let Some(reason) = run.capabilities.lacks(name) {
            reports.push(CheckReport::not_applicable(name.as_str(), reason));
            continue;
        }
        let judged = check(&run);
        if judged.is_empty() {
            // Asked for, applicable, and nothing recorded to judge: a
            // truncated or edited history must not pass by omission.
            return Err(format!(
                "the history records no scenario for the {} check it asked for",
                name.as_str()
            ));
        }
        reports.extend(judged);
    }
    // The fault table, when a nemesis ran: a row per fault.
    let faults = faults::judge(ops, &reports);
    reports.extend(faults);
    Ok(Verdict::new(run.target, reports, run.duration_ms, run.ops))
}
