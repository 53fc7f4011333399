//! Export of a recorded run for a checker we did not write: Jepsen's
//! history format (EDN, one operation map a line) as elle-cli reads it.
//!
//! - Each race becomes a **counter** workload: every reserve is an `:add`
//!   of its quantity (`:ok`, `:fail` or `:info` as recorded), and the
//!   checker's read of the event after the race is a `:read` of `sold`.
//!   Jepsen's counter checker then requires the read to lie between the
//!   sum of the acknowledged adds and that plus the unknown ones: what the
//!   server says it sold must agree with what its clients were told.
//! - The queue becomes a **set** workload: every accepted enter is an
//!   `:add` of the user's number, and one final `:read` returns the users
//!   seen ACTIVE: the set checker requires every acknowledged add in the
//!   read (nobody entered and never admitted) and nothing else in it.
//!
//! Processes are numbers, as Jepsen's are: the user's index (`buyer-17` is
//! 17), and [`CHECKER`] for the verifier's reads.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::client::Call;
use crate::history::{read_jsonl, OpKind};
use crate::recorded::Recorded;
use crate::RunError;

/// The process number of the verifier's own reads.
pub const CHECKER: u64 = 1_000_000;

/// One Jepsen operation map.
fn op(
    out: &mut String,
    index: &mut u64,
    kind: OpKind,
    f: &str,
    value: &str,
    process: u64,
    time: u64,
) {
    let kind = match kind {
        OpKind::Invoke => "invoke",
        OpKind::Ok => "ok",
        OpKind::Fail => "fail",
        OpKind::Info => "info",
    };
    let _ = writeln!(
        out,
        "{{:index {index}, :type :{kind}, :f :{f}, :value {value}, :process {process}, :time {time}}}"
    );
    *index += 1;
}

/// Both halves of a call, invoke first; the completion's value is
/// `completed` when it is known (an `:info` keeps the invoked value).
#[allow(clippy::too_many_arguments)]
fn call(
    out: &mut String,
    index: &mut u64,
    f: &str,
    value: &str,
    completed: &str,
    process: u64,
    c: &Call,
) {
    op(out, index, OpKind::Invoke, f, value, process, c.invoked);
    let kind = c.reply.kind();
    let v = if kind == OpKind::Info {
        value
    } else {
        completed
    };
    op(out, index, kind, f, v, process, c.completed);
}

/// The checker's last read, answering `value`, just after `after` (every
/// operation it must follow).
fn final_read(out: &mut String, index: &mut u64, value: &str, after: u64) {
    op(
        out,
        index,
        OpKind::Invoke,
        "read",
        "nil",
        CHECKER,
        after + 1,
    );
    op(out, index, OpKind::Ok, "read", value, CHECKER, after + 2);
}

/// The EDN histories of a recorded run: `(file name, text)` for each race
/// (`race-<run>-<k>.edn`, counter) and the queue (`queue.edn`, set).
pub fn histories(run: &Recorded) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for (k, (race, _)) in run.races.iter().enumerate() {
        let (mut out, mut index) = (String::new(), 0);
        let q = race.spec.quantity.to_string();
        // Jepsen's counter is a history of operations ordered by time.
        let mut calls: Vec<(u64, &Call)> = race
            .buyers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some((i as u64, b.reserve.as_ref()?)))
            .collect();
        calls.sort_by_key(|(_, c)| c.invoked);
        for (p, c) in calls {
            call(&mut out, &mut index, "add", &q, &q, p, c);
        }
        if let Some(sold) = race.event_after.as_ref().and_then(|e| e["sold"].as_u64()) {
            // The read is the checker's last read of the event; its call
            // times are not kept by the race, so it follows every add.
            let t = race
                .buyers
                .iter()
                .filter_map(|b| b.reserve.as_ref().map(|c| c.completed))
                .max()
                .unwrap_or(0);
            final_read(&mut out, &mut index, &sold.to_string(), t);
        }
        files.push((format!("race-{}-{k}.edn", race.run), out));
    }
    if let Some(queue) = &run.queue {
        let (mut out, mut index) = (String::new(), 0);
        let mut enters: Vec<(u64, &Call)> = queue
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (i as u64, &u.enter))
            .collect();
        enters.sort_by_key(|(_, c)| c.invoked);
        for (p, c) in enters {
            let v = p.to_string();
            call(&mut out, &mut index, "add", &v, &v, p, c);
        }
        let admitted: Vec<String> = queue
            .users
            .iter()
            .enumerate()
            .filter(|(_, u)| u.admitted_at.is_some())
            .map(|(i, _)| i.to_string())
            .collect();
        let end = queue
            .users
            .iter()
            .filter_map(|u| u.admitted_at)
            .chain(queue.users.iter().map(|u| u.enter.completed))
            .max()
            .unwrap_or(0);
        let read = format!("#{{{}}}", admitted.join(" "));
        final_read(&mut out, &mut index, &read, end);
        files.push(("queue.edn".to_owned(), out));
    }
    files
}

/// Writes the run's histories as EDN into `dir`; returns the files.
pub fn export_file(history: &Path, dir: &Path) -> Result<Vec<PathBuf>, RunError> {
    let ops = read_jsonl(history).map_err(|e| RunError::Usage(e.to_string()))?;
    let run = Recorded::from_ops(&ops)
        .map_err(|e| RunError::Usage(format!("{}: {e}", history.display())))?;
    let files = histories(&run);
    if files.is_empty() {
        return Err(RunError::Usage(format!(
            "{}: no race or queue recorded to export",
            history.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| RunError::Other(format!("{}: {e}", dir.display())))?;
    files
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map(|()| path.clone())
                .map_err(|e| RunError::Other(format!("{}: {e}", path.display())))
        })
        .collect()
}
