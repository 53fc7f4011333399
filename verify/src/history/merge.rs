//! Several verify processes' histories as one: the shards of one race
//! (`verify --shard I/N`), each recorded by its own process, perhaps on its
//! own machine, merged into the history one process would have written, so
//! the checks judge it exactly as they judge one.
//!
//! Each history's times count from its own start; its `run` note anchors
//! that start on the wall clock (`startedUnixNs`), so every history is
//! shifted by its start's distance from the earliest one and the whole is
//! ordered by time. The clocks of several machines agree only as well as
//! NTP keeps them; the checks compare times within one process (a buyer's
//! calls), except check 1's final event read, which each shard makes after
//! its own buyers have finished (so the last one is after them all).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{Op, VERIFY};

/// The verifier's own processes (set-up, probes, reads of state): every
/// shard has them, so in a merged history each shard's are its own
/// (`checker@1`), which keeps each one's calls paired with their answers.
pub const SHARED: [&str; 2] = ["checker", "admin"];

/// The name of shard `k`'s own `process` in a merged history.
pub fn own(process: &str, k: usize) -> String {
    format!("{process}@{k}")
}

/// Whether `process` is the verifier's `checker`, in a single history or
/// any shard's in a merged one.
pub fn is_checker(process: &str) -> bool {
    process == "checker" || process.starts_with("checker@")
}

/// The run note's settings that must agree for histories to be one run's.
const SAME: [&str; 3] = ["checks", "confirmDeadlineSecs", "storeDeadlineSecs"];

/// Merges `histories` (each named, for errors, by its file) into one,
/// ordered by wall-clock time and renumbered. One history is returned as
/// it is. An error says why the histories are not shards of one race.
pub fn merge(histories: Vec<(String, Vec<Op>)>) -> Result<Vec<Op>, String> {
    if histories.len() == 1 {
        return Ok(histories.into_iter().next().map(|(_, ops)| ops).unwrap());
    }
    let mut anchors = Vec::with_capacity(histories.len());
    let mut first_run: Option<(&str, &Value)> = None;
    for (name, ops) in &histories {
        let run = ops
            .iter()
            .find(|op| op.process == VERIFY && op.f == "run")
            .ok_or_else(|| format!("{name}: no `run` note: not written by this verify"))?;
        let anchor = run.value["startedUnixNs"].as_u64().ok_or_else(|| {
            format!(
                "{name}: its `run` note has no wall-clock start (`startedUnixNs`): \
                 written by an older verify, it can only be judged alone"
            )
        })?;
        anchors.push(anchor);
        match first_run {
            None => first_run = Some((name, &run.value)),
            Some((first, value)) => {
                for field in SAME {
                    if run.value[field] != value[field] {
                        return Err(format!(
                            "{name} and {first} are not one run's: `{field}` is {} and {}",
                            run.value[field], value[field]
                        ));
                    }
                }
            }
        }
    }

    // A process belongs to one shard: the same buyer in two histories
    // means two runs of the race, not two shards of one.
    let mut owner: HashMap<String, &str> = HashMap::new();
    for (name, ops) in &histories {
        let processes: HashSet<&str> = ops
            .iter()
            .map(|op| op.process.as_str())
            .filter(|p| *p != VERIFY && !SHARED.contains(p))
            .collect();
        for p in processes {
            if let Some(other) = owner.insert(p.to_owned(), name) {
                return Err(format!(
                    "{other} and {name} both record operations of process {p}: \
                     not shards of one race"
                ));
            }
        }
    }

    let earliest = anchors.iter().copied().min().unwrap_or(0);
    let mut all = Vec::new();
    for (k, ((_, ops), anchor)) in histories.into_iter().zip(anchors).enumerate() {
        let shift = anchor - earliest;
        for mut op in ops {
            op.time += shift;
            if SHARED.contains(&op.process.as_str()) {
                op.process = own(&op.process, k);
            }
            all.push(op);
        }
    }
    // Stable: each history's own order stands where times are equal.
    all.sort_by_key(|op| op.time);

    let mut seen_run = false;
    let mut scenarios: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(all.len());
    for mut op in all {
        if op.process == VERIFY && op.f == "run" {
            if seen_run {
                continue;
            }
            seen_run = true;
        }
        // Every shard notes the race it takes part in: one note, the
        // earliest, starts the race's segment.
        if op.process == VERIFY && op.f == "scenario" && !scenarios.insert(op.value.to_string()) {
            continue;
        }
        op.index = out.len() as u64;
        out.push(op);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpKind;
    use serde_json::json;

    fn op(time: u64, kind: OpKind, process: &str, f: &str, value: Value) -> Op {
        Op {
            index: 0,
            kind,
            time,
            process: process.into(),
            f: f.into(),
            value,
        }
    }

    fn run_note(anchor: Option<u64>) -> Op {
        let mut v = json!({"target": "t", "checks": ["oversell"],
                           "confirmDeadlineSecs": 10, "storeDeadlineSecs": 15});
        if let Some(a) = anchor {
            v["startedUnixNs"] = json!(a);
        }
        op(0, OpKind::Info, VERIFY, "run", v)
    }

    fn shard(anchor: Option<u64>, buyer: &str) -> Vec<Op> {
        vec![
            run_note(anchor),
            op(
                5,
                OpKind::Info,
                VERIFY,
                "scenario",
                json!({"scenario": "race"}),
            ),
            op(10, OpKind::Invoke, buyer, "reserve", json!({})),
            op(20, OpKind::Ok, buyer, "reserve", json!({"status": 200})),
            op(30, OpKind::Invoke, "checker", "read-event", json!({})),
            op(
                40,
                OpKind::Ok,
                "checker",
                "read-event",
                json!({"status": 200}),
            ),
        ]
    }

    #[test]
    fn times_are_aligned_on_the_wall_clock_and_notes_kept_once() {
        let merged = merge(vec![
            ("a".into(), shard(Some(1_000), "buyer-0")),
            ("b".into(), shard(Some(1_100), "buyer-1")),
        ])
        .unwrap();
        // b started 100 ns after a: its operations land 100 ns later.
        let b_reserve = merged.iter().find(|o| o.process == "buyer-1").unwrap();
        let a_reserve = merged.iter().find(|o| o.process == "buyer-0").unwrap();
        assert_eq!((a_reserve.time, b_reserve.time), (10, 110));
        let last_a = merged.iter().rposition(|o| o.process.ends_with("@0"));
        let first_b = merged.iter().position(|o| o.process == "buyer-1");
        assert!(first_b > last_a, "b's ops after all of a's: {merged:?}");
        assert!(merged.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(merged.iter().enumerate().all(|(i, o)| o.index == i as u64));
        let count = |f: &str| merged.iter().filter(|o| o.f == f).count();
        assert_eq!((count("run"), count("scenario")), (1, 1));
        // Each shard's checker is its own process.
        assert!(merged.iter().any(|o| o.process == "checker@0"));
        assert!(merged.iter().any(|o| o.process == "checker@1"));
        assert_eq!(merged.len(), 10);
    }

    #[test]
    fn one_history_is_unchanged_even_without_an_anchor() {
        let ops = shard(None, "buyer-0");
        assert_eq!(merge(vec![("a".into(), ops.clone())]).unwrap(), ops);
    }

    #[test]
    fn two_histories_without_an_anchor_are_refused() {
        let e = merge(vec![
            ("a".into(), shard(Some(1), "buyer-0")),
            ("b.jsonl".into(), shard(None, "buyer-1")),
        ])
        .unwrap_err();
        assert!(e.contains("b.jsonl") && e.contains("startedUnixNs"), "{e}");
    }

    #[test]
    fn the_same_buyer_in_two_histories_is_refused() {
        let e = merge(vec![
            ("a".into(), shard(Some(1), "buyer-3")),
            ("b".into(), shard(Some(2), "buyer-3")),
        ])
        .unwrap_err();
        assert!(
            e.contains("process buyer-3") && e.contains("not shards"),
            "{e}"
        );
    }

    #[test]
    fn different_run_settings_are_refused() {
        let mut b = shard(Some(2), "buyer-1");
        b[0].value["confirmDeadlineSecs"] = json!(99);
        let e = merge(vec![
            ("a".into(), shard(Some(1), "buyer-0")),
            ("b".into(), b),
        ])
        .unwrap_err();
        assert!(e.contains("confirmDeadlineSecs"), "{e}");
    }
}
