//! A run as its history records it. The checks judge this, and only this,
//! so a live run and `verify judge history.jsonl` reach the same verdict.
//!
//! The history is cut at the verifier's `scenario` notes: each scenario
//! runs alone (the previous one's tasks have all ended), so the operations
//! between two notes are that scenario's. Each part is rebuilt into the
//! structure its checks read:
//!
//! - [`race`]: check 1 (and 2's reservations), [`queue`]: checks 3 and 4,
//!   [`tokens`]: check 5, [`seatmap`]: check 6 (and 2's seat events).

pub mod pause;
pub mod queue;
pub mod race;
pub mod seatmap;
pub mod tokens;

use serde_json::{json, Value};

use crate::capabilities::Capabilities;
use crate::history::read::Calls;
use crate::history::{Op, OpKind, VERIFY};
use crate::options::{CheckName, Options};
use crate::scenarios::queue::QueueRun;
use crate::scenarios::race::RaceRun;
use crate::scenarios::seatmap::SeatRun;
use crate::scenarios::tokens::TokensRun;
use crate::stores::{Observed, SeatObserved};

/// The run's settings the checks need, as the `run` note records them.
pub fn run_note(target: &str, options: &Options) -> Value {
    json!({
        "target": target,
        "checks": options.selected().iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "confirmDeadlineSecs": options.confirm_deadline,
        "storeDeadlineSecs": options.store_deadline,
        "nemesis": options.nemesis.iter().map(|f| json!({
            "kind": f.kind.as_str(),
            "startMs": f.start.as_millis() as u64,
            "durationMs": f.duration.as_millis() as u64,
        })).collect::<Vec<_>>(),
        "releaseOverMs": options.release_over_ms,
        "recoveryDeadlineSecs": options.recovery_deadline,
    })
}

/// One scenario's operations, paired, and the parameters it noted.
pub struct Segment {
    pub params: Value,
    pub calls: Calls,
}

/// Everything the checks judge.
pub struct Recorded {
    pub target: String,
    pub checks: Vec<CheckName>,
    pub confirm_deadline_secs: u64,
    pub store_deadline_secs: u64,
    pub capabilities: Capabilities,
    /// Each race, with what the stores held of it when they were read.
    pub races: Vec<(RaceRun, Option<Observed>)>,
    pub queue: Option<QueueRun>,
    pub tokens: Option<TokensRun>,
    pub seats: Option<(SeatRun, Option<SeatObserved>)>,
    pub pause: Option<pause::PauseRun>,
    /// Time of the last operation, in ms.
    pub duration_ms: u64,
    pub ops: usize,
}

impl Recorded {
    /// Rebuilds a run from its operations; an error names what is missing
    /// or malformed.
    pub fn from_ops(ops: &[Op]) -> Result<Self, String> {
        let run = ops
            .iter()
            .find(|op| op.process == VERIFY && op.f == "run")
            .ok_or("the history has no `run` note: not written by this verify")?;
        let checks = run.value["checks"]
            .as_array()
            .ok_or("the `run` note lists no checks")?
            .iter()
            .map(|c| {
                c.as_str()
                    .and_then(CheckName::parse)
                    .ok_or_else(|| format!("unknown check {c} in the `run` note"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Recorded {
            target: run.value["target"].as_str().unwrap_or("?").to_owned(),
            checks,
            confirm_deadline_secs: u64_of(&run.value, "confirmDeadlineSecs")?,
            store_deadline_secs: u64_of(&run.value, "storeDeadlineSecs")?,
            capabilities: Capabilities::from_history(ops),
            races: Vec::new(),
            queue: None,
            tokens: None,
            seats: None,
            pause: None,
            duration_ms: ops.iter().map(|op| op.time).max().unwrap_or(0) / 1_000_000,
            ops: ops.len(),
        };
        let starts: Vec<usize> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.process == VERIFY && op.f == "scenario")
            .map(|(i, _)| i)
            .collect();
        for (k, &start) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(ops.len());
            let params = ops[start].value.clone();
            let seg = Segment {
                calls: Calls::of(&ops[start..end]),
                params,
            };
            let observed = |f: &str| -> Result<Option<Value>, String> {
                Ok(seg.calls.note(f).map(|n| n.value["observed"].clone()))
            };
            let at = |e: String| format!("scenario at operation {start}: {e}");
            match seg.params["scenario"].as_str() {
                Some("race") => {
                    let stores = observed("stores")?
                        .map(serde_json::from_value)
                        .transpose()
                        .map_err(|e| at(e.to_string()))?;
                    out.races.push((race::rebuild(&seg).map_err(at)?, stores));
                }
                Some("queue") => out.queue = Some(queue::rebuild(&seg).map_err(at)?),
                Some("tokens") => out.tokens = Some(tokens::rebuild(&seg).map_err(at)?),
                Some("pause") => out.pause = Some(pause::rebuild(&seg).map_err(at)?),
                Some("seatmap") => {
                    let stores = observed("seat-stores")?
                        .map(serde_json::from_value)
                        .transpose()
                        .map_err(|e| at(e.to_string()))?;
                    out.seats = Some((seatmap::rebuild(&seg).map_err(at)?, stores));
                }
                other => return Err(at(format!("unknown scenario {other:?}"))),
            }
        }
        Ok(out)
    }
}

/// When `user` was seen ACTIVE by following its place: an `active` event
/// on its stream, or a status read answering ACTIVE.
pub fn seen_active(calls: &Calls, user: &str) -> Option<u64> {
    let streamed = calls
        .delivered
        .iter()
        .find(|d| d.process == user && d.f == "sse" && d.value["event"] == "active")
        .map(|d| d.at);
    let polled = calls
        .by(user, "status")
        .find(|c| {
            c.call.reply.status() == Some(200) && c.call.reply.str_field("status") == Some("ACTIVE")
        })
        .map(|c| c.call.completed);
    streamed.into_iter().chain(polled).min()
}

/// When `user` was admitted: at once (its enter answered ACTIVE) or later.
pub fn admitted(calls: &Calls, user: &str) -> Option<u64> {
    let at_once = calls
        .by(user, "enter")
        .find(|c| {
            c.call.reply.kind() == OpKind::Ok && c.call.reply.str_field("status") == Some("ACTIVE")
        })
        .map(|c| c.call.completed);
    at_once.or_else(|| seen_active(calls, user))
}

pub(crate) fn u64_of(v: &Value, field: &str) -> Result<u64, String> {
    v[field]
        .as_u64()
        .ok_or_else(|| format!("`{field}` missing or not a number in {v}"))
}

pub(crate) fn usize_of(v: &Value, field: &str) -> Result<usize, String> {
    u64_of(v, field).map(|n| n as usize)
}

pub(crate) fn str_of(v: &Value, field: &str) -> Result<String, String> {
    v[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("`{field}` missing or not a string in {v}"))
}
