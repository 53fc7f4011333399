//! A history read back: the JSON lines [`super::History`] writes, and its
//! operations paired into calls (an invoke with its completion) the way the
//! checks look at them.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use serde_json::Value;

use super::{Op, OpKind, VERIFY};
use crate::client::{self, Reply};

/// Why a history file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not an operation of a verify history: {source}")]
    Line {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{path}: no operations")]
    Empty { path: String },
}

/// Reads a `history.jsonl`; every non-blank line must be one operation.
pub fn read_jsonl(path: &Path) -> Result<Vec<Op>, ReadError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: name.clone(),
        source,
    })?;
    let mut ops = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        ops.push(
            serde_json::from_str(line).map_err(|source| ReadError::Line {
                path: name.clone(),
                line: i + 1,
                source,
            })?,
        );
    }
    if ops.is_empty() {
        return Err(ReadError::Empty { path: name });
    }
    Ok(ops)
}

/// One request as recorded: its invocation and completion.
#[derive(Debug, Clone)]
pub struct Call {
    pub process: String,
    pub f: String,
    /// The arguments recorded on invoke.
    pub args: Value,
    /// The answer and both times; an invoke never completed reads as an
    /// unknown outcome completed at the end of the history.
    pub call: client::Call,
}

/// A completion with no invoke: an event a stream delivered (`sse`).
#[derive(Debug, Clone)]
pub struct Delivered {
    pub process: String,
    pub f: String,
    pub value: Value,
    pub at: u64,
}

/// One of the verifier's own steps.
#[derive(Debug, Clone)]
pub struct Note {
    pub f: String,
    pub value: Value,
    pub at: u64,
}

/// Operations paired into calls, in the order they were invoked.
#[derive(Debug, Clone, Default)]
pub struct Calls {
    pub calls: Vec<Call>,
    pub delivered: Vec<Delivered>,
    pub notes: Vec<Note>,
}

impl Calls {
    /// Pairs each completion with the oldest open invoke of the same process
    /// and operation. (A process may run one operation several times at
    /// once, as the seat map's retried payments do; first-in, first-out
    /// pairing keeps every call's invoke before its completion.)
    pub fn of(ops: &[Op]) -> Self {
        let end = ops.iter().map(|op| op.time).max().unwrap_or(0);
        let mut out = Calls::default();
        let mut open: HashMap<(&str, &str), VecDeque<usize>> = HashMap::new();
        for op in ops {
            if op.process == VERIFY {
                out.notes.push(Note {
                    f: op.f.clone(),
                    value: op.value.clone(),
                    at: op.time,
                });
                continue;
            }
            if op.kind == OpKind::Invoke {
                open.entry((&op.process, &op.f))
                    .or_default()
                    .push_back(out.calls.len());
                out.calls.push(Call {
                    process: op.process.clone(),
                    f: op.f.clone(),
                    args: op.value.clone(),
                    call: client::Call {
                        reply: Reply::Transport("no completion recorded".into()),
                        invoked: op.time,
                        completed: end,
                    },
                });
                continue;
            }
            match open
                .get_mut(&(op.process.as_str(), op.f.as_str()))
                .and_then(VecDeque::pop_front)
            {
                Some(i) => {
                    let c = &mut out.calls[i].call;
                    c.reply = reply_of(&op.value);
                    c.completed = op.time;
                }
                None => out.delivered.push(Delivered {
                    process: op.process.clone(),
                    f: op.f.clone(),
                    value: op.value.clone(),
                    at: op.time,
                }),
            }
        }
        out
    }

    /// The calls of `process` doing `f`, in the order invoked.
    pub fn by<'a>(&'a self, process: &'a str, f: &'a str) -> impl Iterator<Item = &'a Call> + 'a {
        self.calls
            .iter()
            .filter(move |c| c.process == process && c.f == f)
    }

    /// The calls doing `f`, whoever made them.
    pub fn of_f<'a>(&'a self, f: &'a str) -> impl Iterator<Item = &'a Call> + 'a {
        self.calls.iter().filter(move |c| c.f == f)
    }

    /// The first note of the verifier named `f`.
    pub fn note(&self, f: &str) -> Option<&Note> {
        self.notes.iter().find(|n| n.f == f)
    }
}

/// The answer as the client recorded it (`client::Reply::to_value`).
fn reply_of(value: &Value) -> Reply {
    match value["status"].as_u64() {
        Some(status) => Reply::Http {
            status: status as u16,
            body: value.get("body").cloned().unwrap_or(Value::Null),
        },
        None => Reply::Transport(
            value["error"]
                .as_str()
                .unwrap_or("unknown outcome")
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(index: u64, kind: OpKind, time: u64, process: &str, f: &str, value: Value) -> Op {
        Op {
            index,
            kind,
            time,
            process: process.into(),
            f: f.into(),
            value,
        }
    }

    #[test]
    fn completions_pair_with_the_oldest_open_invoke_of_their_process_and_operation() {
        let ops = vec![
            op(0, OpKind::Invoke, 1, "a", "pay", json!({"n": 1})),
            op(1, OpKind::Invoke, 2, "a", "pay", json!({"n": 2})),
            op(2, OpKind::Invoke, 3, "b", "pay", json!({})),
            op(3, OpKind::Ok, 4, "a", "sse", json!({"event": "active"})),
            op(
                4,
                OpKind::Fail,
                5,
                "a",
                "pay",
                json!({"status": 410, "body": {"error": "HOLD_EXPIRED"}}),
            ),
            op(5, OpKind::Info, 6, "a", "pay", json!({"error": "timeout"})),
            op(6, OpKind::Info, 7, VERIFY, "release", json!({})),
        ];
        let calls = Calls::of(&ops);
        let a: Vec<_> = calls.by("a", "pay").collect();
        assert_eq!((a[0].call.invoked, a[0].call.completed), (1, 5));
        assert_eq!(a[0].call.reply.short(), "410 HOLD_EXPIRED");
        assert_eq!((a[1].call.invoked, a[1].call.completed), (2, 6));
        assert_eq!(a[1].call.reply.kind(), OpKind::Info);
        // b's never completed: unknown, at the end of the history.
        let b = calls.by("b", "pay").next().unwrap();
        assert_eq!((b.call.reply.kind(), b.call.completed), (OpKind::Info, 7));
        assert_eq!(calls.delivered.len(), 1);
        assert_eq!(calls.note("release").unwrap().at, 7);
    }

    #[test]
    fn a_bad_line_is_named_by_its_number() {
        let dir = std::env::temp_dir().join(format!("verify-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.jsonl");
        std::fs::write(&path, "{\"index\":0,\"type\":\"invoke\",\"time\":1,\"process\":\"a\",\"f\":\"x\",\"value\":null}\n{\"index\":1}\n").unwrap();
        let e = read_jsonl(&path).unwrap_err().to_string();
        assert!(e.contains("history.jsonl:2: not an operation"), "{e}");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_jsonl(&path)
            .unwrap_err()
            .to_string()
            .contains("no operations"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
