//! Faults during a load run (`loadgen job --faults KIND@START+DURATION,...`).
//!
//! The faults are verify's nemesis, used as a library: the same names, the
//! same schedule syntax, the same actions on the reference stack's local
//! processes or the user's `--fault-cmd KIND='command'`. Its start and end
//! notes go to a history of their own (as Jepsen records its nemesis beside
//! the clients), from which each fault's window is read back in seconds of
//! the load run's measured window, so the plots can shade it.
//!
//! START counts from the measured window's opening (the load's first
//! iteration), the plots' zero; the recorded windows are the actions'
//! real times (an action takes its time: a restart's seconds are in the
//! window).
//!
//! - [`timeline`]: the requests' outcomes and the purchases served, in
//!   100 ms bins, and the fault table computed from them.

pub mod timeline;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use verify::history::{History, Op, VERIFY};
pub use verify::nemesis::actions::Nemesis;
pub use verify::nemesis::{FaultCmd, FaultKind, FaultSpec};

pub use timeline::Timeline;

/// One fault as the load run recorded it: a row of the fault table and a
/// shaded band of the plots (`faults` of a load run in report.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultWindow {
    /// Its place in the schedule.
    pub id: u64,
    pub kind: String,
    /// When its start action was invoked, in seconds of the measured window.
    pub start_secs: f64,
    /// When its end action completed (absent: never recorded).
    pub end_secs: Option<f64>,
    /// The schedule's START and DURATION.
    pub planned_start_secs: f64,
    pub planned_duration_secs: f64,
    /// Whether both actions succeeded; what each did.
    pub actions_ok: bool,
    pub actions: Vec<String>,
    /// Requests answered while it lasted: 2xx, refused (4xx), unknown (no
    /// answer, a timeout or a 5xx: the request may or may not have acted).
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
    /// Purchases served per second before it (since the load began or the
    /// previous fault ended); absent when that was under 0.3 s.
    pub rate_before: Option<f64>,
    /// From its end until a second served at least 90% of the rate before
    /// (within 10% of it); absent when that never happened in the run.
    pub recovery_ms: Option<f64>,
    /// The recovery in words ("rate back in 420 ms", "not back within the
    /// run", ...).
    pub recovery: String,
}

impl FaultWindow {
    /// Its end, or its start when the end was never recorded.
    pub fn end_or_start(&self) -> f64 {
        self.end_secs.unwrap_or(self.start_secs)
    }
}

/// The nemesis running beside a load run.
pub struct Injection {
    /// Set once the schedule began (the load's window opened).
    began: Arc<AtomicBool>,
    /// The nemesis' history and the seconds from the run's origin to its
    /// start.
    task: tokio::task::JoinHandle<(History, f64)>,
}

/// How often the window's opening is looked for.
const OPENING_POLL: Duration = Duration::from_millis(5);

impl Injection {
    /// Starts `nemesis`'s schedule once `opened()` (the measured window
    /// opened with the first iteration, so START counts from the load's
    /// first second, as the plots do); its notes are read back in seconds
    /// since `origin` (the run's [`Timeline`]'s).
    pub fn start(
        nemesis: Arc<Nemesis>,
        origin: Instant,
        opened: impl Fn() -> bool + Send + 'static,
    ) -> Injection {
        let began = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&began);
        let task = tokio::spawn(async move {
            while !opened() {
                tokio::time::sleep(OPENING_POLL).await;
            }
            let history = History::new();
            let offset = origin.elapsed().as_secs_f64();
            flag.store(true, Ordering::SeqCst);
            nemesis.run(&history, 0).await;
            (history, offset)
        });
        Injection { began, task }
    }

    /// Waits until every fault has ended (undone: a fault scheduled past
    /// the load's end is still undone) and returns the nemesis' notes;
    /// none when the load never began.
    pub async fn finish(self) -> anyhow::Result<Vec<Note>> {
        if !self.began.load(Ordering::SeqCst) {
            self.task.abort();
            return Ok(Vec::new());
        }
        let (history, offset) = self
            .task
            .await
            .map_err(|e| anyhow::anyhow!("the nemesis failed: {e}"))?;
        let mut notes = notes(&history.ops());
        for n in &mut notes {
            n.invoked += offset;
            n.completed += offset;
        }
        Ok(notes)
    }
}

/// One phase of one fault, in seconds (since the history's start as
/// [`notes`] reads them; since the run's origin from [`Injection`]).
#[derive(Debug, Clone)]
pub struct Note {
    pub id: u64,
    pub kind: String,
    pub end: bool,
    /// When the action was invoked and when it completed, seconds.
    pub invoked: f64,
    pub completed: f64,
    pub ok: bool,
    pub action: String,
    pub planned_start: f64,
    pub planned_duration: f64,
}

/// The nemesis' notes of `ops` (verify's history format).
pub fn notes(ops: &[Op]) -> Vec<Note> {
    let secs = |ns: u64| ns as f64 / 1e9;
    ops.iter()
        .filter(|op| op.process == VERIFY && op.f == "nemesis")
        .map(|op| {
            let v = &op.value;
            let ms = |k: &str| v[k].as_u64().unwrap_or(0) as f64 / 1e3;
            Note {
                id: v["fault"].as_u64().unwrap_or(u64::MAX),
                kind: v["kind"].as_str().unwrap_or("?").to_owned(),
                end: v["phase"] == "end",
                invoked: secs(v["invoked"].as_u64().unwrap_or(op.time)),
                completed: secs(op.time),
                ok: v["ok"] == true,
                action: v["action"].as_str().unwrap_or("?").to_owned(),
                planned_start: ms("plannedStartMs"),
                planned_duration: ms("plannedDurationMs"),
            }
        })
        .collect()
}

/// Refuses a schedule the job cannot carry out, before anything starts.
pub fn check_schedule(schedule: &[FaultSpec], commands: &[FaultCmd]) -> anyhow::Result<()> {
    for f in schedule {
        // The job's instance listens on a port chosen at its start: started
        // again from its command line it would listen elsewhere, and the
        // load would never find it.
        if f.kind == FaultKind::KillInstance && !commands.iter().any(|c| c.kind == f.kind) {
            anyhow::bail!(
                "--faults kill-instance: the job's instance would come back on another port; \
                 use pause-instance, or give --fault-cmd kill-instance='...'"
            );
        }
    }
    Ok(())
}
