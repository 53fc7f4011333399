//! The history of a run, in the Jepsen model: every operation is an
//! `invoke` followed by `ok` (it happened), `fail` (it definitely did not)
//! or `info` (unknown: a timeout, a reset, a 5xx). Written as JSON lines so
//! a verdict can be re-judged offline.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Debug, Clone, Serialize)]
pub struct Op {
    pub index: u64,
    #[serde(rename = "type")]
    pub kind: OpKind,
    /// Nanoseconds since the run started (monotonic clock).
    pub time: u64,
    /// The client (buyer) that performed the operation.
    pub process: String,
    /// The operation: enter, status, stream, reserve, read-ticket, read-event, create-event.
    pub f: &'static str,
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
                ops: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        self.inner.start.elapsed().as_nanos() as u64
    }

    /// Records an operation's invocation and returns its time.
    pub fn invoke(&self, process: &str, f: &'static str, value: Value) -> u64 {
        self.push(OpKind::Invoke, process, f, value)
    }

    /// Records an operation's completion and returns its time.
    pub fn complete(&self, kind: OpKind, process: &str, f: &'static str, value: Value) -> u64 {
        self.push(kind, process, f, value)
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
            f,
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
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for op in self.inner.ops.lock().expect("history lock poisoned").iter() {
            serde_json::to_writer(&mut out, op)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}
