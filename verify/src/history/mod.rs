//! The history of a run, in the Jepsen model: every operation is an
//! `invoke` followed by `ok` (it happened), `fail` (it definitely did not)
//! or `info` (unknown: a timeout, a reset, a 5xx). Written as JSON lines so
//! a verdict can be re-judged offline: the checks judge nothing else.
//!
//! Beside the clients' operations, the verifier's own steps are recorded
//! as single `info` operations of the process [`VERIFY`] (as Jepsen records
//! its nemesis): where each scenario starts and with what parameters, the
//! moment a barrier released the buyers, a queue that stalled.
//!
//! - [`read`]: a written history read back, and its operations paired into
//!   calls.
//! - [`merge`]: the histories of several shards of one race as one.

pub mod merge;
pub mod read;

pub use read::{read_jsonl, Call as RecordedCall, Calls, ReadError};

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The process of the verifier's own steps (not a client's requests).
pub const VERIFY: &str = "verify";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub index: u64,
    #[serde(rename = "type")]
    pub kind: OpKind,
    /// Nanoseconds since the run started (monotonic clock).
    pub time: u64,
    /// The client (buyer) that performed the operation.
    pub process: String,
    /// The operation: enter, status, stream, sse, reserve, read-ticket,
    /// read-event, create-event, …; for the process `verify`, its step.
    pub f: String,
    /// Arguments on invoke, result on completion.
    pub value: Value,
}

/// A shared, append-only history. Cloning is cheap.
#[derive(Clone)]
pub struct History {
    inner: Arc<Inner>,
}

struct Inner {
    start: Instant,
    /// The wall clock at `start` (ns since the Unix epoch): what lines up
    /// the histories of several processes ([`merge`]).
    started_unix_ns: u64,
    ops: Mutex<Vec<Op>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> Self {
        History {
            inner: Arc::new(Inner {
                start: Instant::now(),
                started_unix_ns: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
                ops: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        self.inner.start.elapsed().as_nanos() as u64
    }

    /// When the run started on the wall clock, in ns since the Unix epoch.
    pub fn started_unix_ns(&self) -> u64 {
        self.inner.started_unix_ns
    }

    /// Records an operation's invocation and returns its time.
    pub fn invoke(&self, process: &str, f: &'static str, value: Value) -> u64 {
        self.push(OpKind::Invoke, process, f, value)
    }

    /// Records an operation's completion and returns its time.
    pub fn complete(&self, kind: OpKind, process: &str, f: &'static str, value: Value) -> u64 {
        self.push(kind, process, f, value)
    }

    /// Records one of the verifier's own steps (a scenario's start, a
    /// barrier's release) and returns its time.
    pub fn note(&self, f: &'static str, value: Value) -> u64 {
        self.push(OpKind::Info, VERIFY, f, value)
    }

    fn push(&self, kind: OpKind, process: &str, f: &'static str, value: Value) -> u64 {
        let mut ops = self.inner.ops.lock().expect("history lock poisoned");
        // Taken under the lock so that times follow the order of `index`.
        let time = self.now();
        let index = ops.len() as u64;
        ops.push(Op {
            index,
            kind,
            time,
            process: process.to_owned(),
            f: f.to_owned(),
            value,
        });
        time
    }

    pub fn ops(&self) -> Vec<Op> {
        self.inner
            .ops
            .lock()
            .expect("history lock poisoned")
            .clone()
    }

    pub fn len(&self) -> usize {
        self.inner.ops.lock().expect("history lock poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn write_jsonl(&self, path: &Path) -> std::io::Result<()> {
        write_jsonl(&self.inner.ops.lock().expect("history lock poisoned"), path)
    }
}

/// Writes `ops` as JSON lines, one operation a line.
pub fn write_jsonl(ops: &[Op], path: &Path) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for op in ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
