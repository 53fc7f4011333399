//! The fault table's verdicts, each with the run that must fail it.

use serde_json::{json, Value};

use super::*;
use crate::history::Op;

const MS: u64 = 1_000_000;

struct Ops(Vec<Op>);

impl Ops {
    fn new() -> Self {
        let mut ops = Ops(Vec::new());
        ops.push(
            0,
            OpKind::Info,
            VERIFY,
            "run",
            json!({"recoveryDeadlineSecs": 5}),
        );
        ops.push(
            0,
            OpKind::Info,
            VERIFY,
            "scenario",
            json!({"scenario": "race", "run": 1, "eventId": "e"}),
        );
        ops.push(0, OpKind::Info, VERIFY, "release", json!({}));
        ops
    }

    fn push(&mut self, time: u64, kind: OpKind, process: &str, f: &str, value: Value) {
        self.0.push(Op {
            index: self.0.len() as u64,
            kind,
            time,
            process: process.into(),
            f: f.into(),
            value,
        });
    }

    /// One purchase answer every `every` ms from `from` to `to` ms.
    fn answers(&mut self, from: u64, to: u64, every: u64, kind: OpKind) {
        let value = match kind {
            OpKind::Fail => json!({"status": 409, "body": {"error": "SOLD_OUT"}}),
            _ => json!({}),
        };
        self.refusals(from, to, every, kind, value);
    }

    fn refusals(&mut self, from: u64, to: u64, every: u64, kind: OpKind, value: Value) {
        let mut t = from;
        while t < to {
            self.push(t * MS, kind, "buyer", "reserve", value.clone());
            t += every;
        }
    }

    fn fault(&mut self, start_ms: u64, end_ms: u64, ok: bool) {
        let note = |phase: &str| {
            json!({"fault": 0, "kind": "kill-instance", "phase": phase, "ok": ok,
                   "action": "test", "invoked": start_ms * MS})
        };
        self.push(
            start_ms * MS,
            OpKind::Info,
            VERIFY,
            "nemesis",
            note("start"),
        );
        self.push(end_ms * MS, OpKind::Info, VERIFY, "nemesis", note("end"));
    }

    fn judged(mut self) -> CheckReport {
        self.0.sort_by_key(|op| op.time);
        let mut reports = judge(&self.0, &[]);
        assert_eq!(reports.len(), 1, "one fault, one report");
        reports.remove(0)
    }
}

#[test]
fn a_fault_the_target_recovers_from_passes_with_its_numbers() {
    let mut ops = Ops::new();
    // 100 answers/s before, nothing but unknowns during, 100/s after.
    ops.answers(0, 1000, 10, OpKind::Ok);
    ops.answers(1000, 2000, 50, OpKind::Info);
    ops.answers(2300, 5000, 10, OpKind::Fail);
    ops.fault(1000, 2000, true);
    let r = ops.judged();
    assert!(r.pass, "{}", r.summary);
    assert_eq!(r.details["unknown"], 20);
    assert_eq!(r.details["ok"], 0);
    assert_eq!(r.details["rateMeasured"], true);
    let recovery = r.details["recoveryMs"].as_f64().unwrap();
    assert!((299.0..=301.0).contains(&recovery), "{recovery}");
}

#[test]
fn a_rate_that_stays_low_after_the_fault_is_not_recovered_until_it_is_back() {
    let mut ops = Ops::new();
    ops.answers(0, 1000, 10, OpKind::Ok);
    ops.fault(1000, 1500, true);
    // A trickle at 20/s for 2 s, then 100/s again.
    ops.answers(1500, 3500, 50, OpKind::Ok);
    ops.answers(3500, 6000, 10, OpKind::Ok);
    let r = ops.judged();
    let recovery = r.details["recoveryMs"].as_f64().unwrap();
    assert!(
        recovery >= 1900.0,
        "the trickle is not a recovery: {recovery}"
    );
}

#[test]
fn a_failed_action_fails_the_fault() {
    let mut ops = Ops::new();
    ops.answers(0, 3000, 10, OpKind::Ok);
    ops.fault(1000, 2000, false);
    let r = ops.judged();
    assert!(!r.pass);
    assert!(r.summary.contains("action failed"), "{}", r.summary);
}

#[test]
fn a_target_that_never_answers_again_fails_the_fault() {
    let mut ops = Ops::new();
    ops.answers(0, 1000, 10, OpKind::Ok);
    ops.fault(1000, 2000, true);
    ops.answers(1000, 9000, 100, OpKind::Info);
    let r = ops.judged();
    assert!(!r.pass);
    assert!(r.summary.contains("never recovered"), "{}", r.summary);
}

#[test]
fn a_recovery_past_the_deadline_fails_the_fault() {
    let mut ops = Ops::new();
    ops.answers(0, 1000, 10, OpKind::Ok);
    ops.fault(1000, 2000, true);
    ops.answers(2000, 8000, 100, OpKind::Info);
    ops.answers(8000, 10000, 10, OpKind::Ok);
    let r = ops.judged();
    assert!(!r.pass, "6 s after a 5 s deadline: {}", r.summary);
    assert!(
        r.summary.contains("past the recovery deadline"),
        "{}",
        r.summary
    );
}

#[test]
fn a_history_without_a_nemesis_has_no_fault_table() {
    let mut ops = Ops::new();
    ops.answers(0, 1000, 10, OpKind::Ok);
    assert!(judge(&ops.0, &[]).is_empty());
}

#[test]
fn refusals_other_than_sold_out_are_not_a_recovery() {
    let mut ops = Ops::new();
    ops.answers(0, 1000, 10, OpKind::Ok);
    ops.fault(1000, 2000, true);
    // The target forgot the event: every purchase after the fault is 404.
    let gone = json!({"status": 404, "body": {"error": "NOT_FOUND"}});
    ops.refusals(2010, 5000, 10, OpKind::Fail, gone);
    let r = ops.judged();
    assert!(!r.pass);
    assert!(r.summary.contains("never recovered"), "{}", r.summary);
    assert_eq!(r.details["refused"], 0, "none during the fault itself");
}

#[test]
fn half_the_rate_after_the_fault_is_not_a_recovery() {
    let mut ops = Ops::new();
    ops.answers(0, 1000, 10, OpKind::Ok);
    ops.fault(1000, 1500, true);
    // One of two instances stays down: half the purchases served, for 3 s.
    ops.answers(1500, 4500, 20, OpKind::Ok);
    let r = ops.judged();
    assert!(!r.pass, "{}", r.summary);
    assert!(r.summary.contains("stayed below 90%"), "{}", r.summary);
}

#[test]
fn too_little_left_after_the_fault_counts_its_first_answer() {
    let mut ops = Ops::new();
    ops.answers(0, 1000, 10, OpKind::Ok);
    ops.fault(1000, 1500, true);
    ops.answers(1600, 2000, 20, OpKind::Ok);
    let r = ops.judged();
    assert!(r.pass, "{}", r.summary);
    assert_eq!(r.details["rateMeasured"], false);
    assert_eq!(r.details["recoveryMs"].as_f64(), Some(100.0));
}
