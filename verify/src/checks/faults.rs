//! The fault table: for each fault the nemesis injected into a race, when
//! it started and how long it lasted, the purchases answered ok, refused
//! and unknown while it lasted, how long after its end the purchase rate
//! was back, and the race's checks. A fault whose action failed, or after
//! which the target did not recover within the recovery deadline, fails.
//!
//! The purchase rate is the rate of purchases served (answered ok or
//! SOLD_OUT: the sale working; another refusal, such as an event or token
//! the target no longer knows, is not service) over the buyers' paced
//! schedule (`--release-over-ms`). Before:
//! since the release (or the previous fault's end) until the fault's start.
//! Recovered: the first purchase served after the fault's end from which
//! the next second serves at least 90% of the rate before. A rate that
//! stays below that while a second's worth of purchases remains is not a
//! recovery; when less than a second of purchases remains after the end,
//! the first one served counts (the table says the rate was not
//! measurable).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::ms;
use crate::history::{Op, OpKind, VERIFY};
use crate::verdict::{CheckReport, Status};

const WINDOW_NS: u64 = 1_000_000_000;
/// The share of the rate before a fault that counts as recovered.
const RECOVERED_SHARE: f64 = 0.9;
/// The shortest time before a fault over which its rate is measured.
const MIN_BEFORE_NS: u64 = 300_000_000;

/// One fault as the history records it.
#[derive(Debug, Clone)]
struct Fault {
    id: u64,
    kind: String,
    start: u64,
    end: Option<u64>,
    failed: Vec<String>,
}

/// The reports of every fault in `ops`, none when no nemesis ran; each
/// names the outcome of its race's checks among `race_reports`.
pub fn judge(ops: &[Op], race_reports: &[CheckReport]) -> Vec<CheckReport> {
    let recovery_secs = ops
        .iter()
        .find(|op| op.process == VERIFY && op.f == "run")
        .and_then(|op| op.value["recoveryDeadlineSecs"].as_u64())
        .unwrap_or(60);
    let starts: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.process == VERIFY && op.f == "scenario")
        .map(|(i, _)| i)
        .collect();
    let mut reports = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        let seg = &ops[start..starts.get(k + 1).copied().unwrap_or(ops.len())];
        let params = &ops[start].value;
        if params["scenario"] != "race" {
            continue;
        }
        let event_id = params["eventId"].as_str().unwrap_or("?");
        let checks = race_outcome(race_reports, event_id);
        let run = params["run"].as_u64().unwrap_or(0);
        reports.extend(judge_race(seg, run, &checks, recovery_secs));
    }
    reports
}

/// Each fault of one race's segment of the history.
fn judge_race(seg: &[Op], run: u64, checks: &str, recovery_secs: u64) -> Vec<CheckReport> {
    let released = seg
        .iter()
        .find(|op| op.process == VERIFY && op.f == "release")
        .map_or(0, |op| op.time);
    let mut faults: BTreeMap<u64, Fault> = BTreeMap::new();
    for op in seg
        .iter()
        .filter(|op| op.process == VERIFY && op.f == "nemesis")
    {
        let v = &op.value;
        let id = v["fault"].as_u64().unwrap_or(u64::MAX);
        let fault = faults.entry(id).or_insert_with(|| Fault {
            id,
            kind: v["kind"].as_str().unwrap_or("?").to_owned(),
            start: v["invoked"].as_u64().unwrap_or(op.time),
            end: None,
            failed: Vec::new(),
        });
        if v["phase"] == "end" {
            fault.end = Some(op.time);
        }
        if v["ok"] != true {
            fault.failed.push(format!(
                "{} action failed: {}",
                v["phase"].as_str().unwrap_or("?"),
                v["action"].as_str().unwrap_or("?")
            ));
        }
    }
    // Completed purchases: (time, ok / fail / info).
    let completed = || {
        seg.iter()
            .filter(|op| op.f == "reserve" && op.kind != OpKind::Invoke)
    };
    let answers: Vec<(u64, OpKind)> = completed().map(|op| (op.time, op.kind)).collect();
    let definitive: Vec<u64> = completed()
        .filter(|op| op.kind == OpKind::Ok || op.value["body"]["error"] == "SOLD_OUT")
        .map(|op| op.time)
        .collect();
    let mut previous_end = released;
    let mut reports = Vec::new();
    for fault in faults.values() {
        reports.push(report(
            fault,
            run,
            checks,
            recovery_secs,
            previous_end,
            &answers,
            &definitive,
        ));
        previous_end = previous_end.max(fault.end.unwrap_or(fault.start));
    }
    reports
}

fn report(
    fault: &Fault,
    run: u64,
    checks: &str,
    recovery_secs: u64,
    since: u64,
    answers: &[(u64, OpKind)],
    definitive: &[u64],
) -> CheckReport {
    let mut failures = fault.failed.clone();
    let end = fault.end.unwrap_or(fault.start);
    if fault.end.is_none() {
        failures.push("the fault's end was never recorded".into());
    }
    let during = |kind: OpKind| {
        answers
            .iter()
            .filter(|(t, k)| *k == kind && (fault.start..=end).contains(t))
            .count()
    };
    let (ok, fail, unknown) = (
        during(OpKind::Ok),
        during(OpKind::Fail),
        during(OpKind::Info),
    );
    let before_ns = fault.start.saturating_sub(since);
    let rate_before = (before_ns >= MIN_BEFORE_NS).then(|| {
        let n = definitive
            .iter()
            .filter(|t| (since..fault.start).contains(*t))
            .count();
        n as f64 * 1e9 / before_ns as f64
    });
    let recovery = recovery_after(end, rate_before, answers, definitive);
    let deadline_ns = recovery_secs * 1_000_000_000;
    match recovery {
        Recovery::Below { rate } => failures.push(format!(
            "the purchase rate stayed below 90% of before after the fault ({rate:.1}/s after, {:.1}/s before)",
            rate_before.unwrap_or_default()
        )),
        Recovery::Never => failures.push(format!(
            "no purchase served (ok or SOLD_OUT) after the fault's end (recovery deadline {recovery_secs} s)"
        )),
        Recovery::After { ns, .. } if ns > deadline_ns => failures.push(format!(
            "recovered {} after the fault's end, past the recovery deadline of {recovery_secs} s",
            ms(ns)
        )),
        _ => {}
    }
    let recovered = match recovery {
        Recovery::Never => "never recovered".to_owned(),
        Recovery::Below { rate } => format!("rate stayed at {rate:.1}/s"),
        Recovery::NothingLeft => "no purchase left after it".to_owned(),
        Recovery::After { ns, measured: true } => format!("rate back in {}", ms(ns)),
        Recovery::After {
            ns,
            measured: false,
        } => {
            format!(
                "answering in {} (too few purchases left to measure the rate)",
                ms(ns)
            )
        }
    };
    let mut summary = format!(
        "at {} for {}: during it {ok} ok / {fail} refused / {unknown} unknown; {recovered}; race checks: {checks}",
        ms(fault.start),
        ms(end.saturating_sub(fault.start)),
    );
    if let Some(first) = failures.first() {
        summary.push_str(&format!(" — {first}"));
    }
    let recovery_ms: Value = match recovery {
        Recovery::After { ns, .. } => json!(ns as f64 / 1e6),
        Recovery::NothingLeft => json!(0.0),
        Recovery::Never | Recovery::Below { .. } => Value::Null,
    };
    CheckReport {
        check: "nemesis",
        name: format!("#{} {} (run {run})", fault.id, fault.kind),
        status: Status::of(failures.is_empty()),
        pass: failures.is_empty(),
        summary,
        witness: failures.iter().skip(1).cloned().collect(),
        details: json!({
            "fault": fault.id,
            "kind": fault.kind,
            "startMs": fault.start as f64 / 1e6,
            "durationMs": end.saturating_sub(fault.start) as f64 / 1e6,
            "ok": ok,
            "refused": fail,
            "unknown": unknown,
            "rateBeforePerSec": rate_before,
            "recoveryMs": recovery_ms,
            "rateMeasured": matches!(recovery, Recovery::After { measured: true, .. }),
            "raceChecks": checks,
            "failures": failures,
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Recovery {
    /// Recovered this long after the fault's end; `measured`: the rate was
    /// seen back, not only a first answer.
    After { ns: u64, measured: bool },
    /// No purchase was attempted after the fault's end.
    NothingLeft,
    /// Purchases were attempted after it and none answered definitively.
    Never,
    /// Purchases were served after it, for at least a second, but never at
    /// 90% of the rate before: `rate` is what was served after the end.
    Below { rate: f64 },
}

fn recovery_after(
    end: u64,
    rate_before: Option<f64>,
    answers: &[(u64, OpKind)],
    definitive: &[u64],
) -> Recovery {
    let after: Vec<u64> = definitive.iter().copied().filter(|t| *t >= end).collect();
    let Some(&first) = after.first() else {
        return if answers.iter().any(|(t, _)| *t >= end) {
            Recovery::Never
        } else {
            Recovery::NothingLeft
        };
    };
    let last = *after.last().expect("not empty");
    if let Some(rate) = rate_before.filter(|r| *r > 0.0) {
        let needed = (rate * RECOVERED_SHARE * WINDOW_NS as f64 / 1e9).ceil() as usize;
        for (i, &t) in after.iter().enumerate() {
            if t + WINDOW_NS > last {
                break;
            }
            let in_window = after[i..]
                .iter()
                .take_while(|u| **u < t + WINDOW_NS)
                .count();
            if in_window >= needed {
                return Recovery::After {
                    ns: t - end,
                    measured: true,
                };
            }
        }
    }
    if rate_before.is_some_and(|r| r > 0.0) && last >= first + WINDOW_NS {
        return Recovery::Below {
            rate: after.len() as f64 * 1e9 / (last - first) as f64,
        };
    }
    Recovery::After {
        ns: first - end,
        measured: false,
    }
}

/// How the race of `event_id` fared: each of its checks' status.
fn race_outcome(reports: &[CheckReport], event_id: &str) -> String {
    let mine: Vec<String> = reports
        .iter()
        .filter(|r| r.details["eventId"] == event_id)
        .map(|r| format!("{} {}", r.check, r.status.label().trim()))
        .collect();
    if mine.is_empty() {
        "none judged".into()
    } else {
        mine.join(", ")
    }
}

#[cfg(test)]
#[path = "faults_tests.rs"]
mod tests;
