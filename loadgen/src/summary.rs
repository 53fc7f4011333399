//! The JSON summary of a load run (also what `loadgen merge` writes and what
//! the reports read).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::record::Triple;

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// The percentiles of the HDR percentile plot (x = 1 / (1 - p)).
pub const LADDER: [f64; 23] = [
    0.0, 0.25, 0.5, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.975, 0.98, 0.99, 0.995,
    0.9975, 0.999, 0.9995, 0.99975, 0.9999, 0.99995, 0.99999, 1.0,
];

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LadderPoint {
    pub percentile: f64,
    pub raw_us: u64,
    pub corrected_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxSummary {
    /// Requests (or iterations) completed, failed ones included.
    pub count: u64,
    pub errors: u64,
    pub raw: Percentiles,
    pub corrected: Percentiles,
    pub ladder: Vec<LadderPoint>,
}

impl TxSummary {
    pub fn from_triple(t: &Triple) -> Self {
        TxSummary {
            count: t.count(),
            errors: t.error_count(),
            raw: Percentiles::of(&t.raw),
            corrected: Percentiles::of(&t.corrected),
            ladder: LADDER
                .iter()
                .map(|&q| LadderPoint {
                    percentile: (q * 100_000.0).round() / 1000.0,
                    raw_us: t.raw.value_at_quantile(q),
                    corrected_us: t.corrected.value_at_quantile(q),
                })
                .collect(),
        }
    }

    pub fn ok(&self) -> u64 {
        self.count - self.errors
    }

    pub fn error_rate(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.errors as f64 / self.count as f64
        }
    }
}

/// One transaction's second of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    /// Seconds since the measured window opened, at the end of the
    /// interval (one interval ends exactly where the window does).
    pub t: f64,
    pub count: u64,
    pub errors: u64,
    /// Successful completions per second in this interval.
    pub tps: f64,
    pub raw: [u64; 3],
    pub corrected: [u64; 3],
}

impl SeriesPoint {
    pub fn from_triple(t: f64, secs: f64, tr: &Triple) -> Self {
        let q = |h: &Histogram<u64>| {
            [
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.95),
                h.value_at_quantile(0.99),
            ]
        };
        let ok = tr.count() - tr.error_count();
        SeriesPoint {
            t,
            count: tr.count(),
            errors: tr.error_count(),
            tps: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
            raw: q(&tr.raw),
            corrected: q(&tr.corrected),
        }
    }
}

/// Completions of one transaction, as the measured window counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub ok: u64,
    pub failed: u64,
}

impl Counts {
    pub fn add(&mut self, ok: bool) {
        if ok {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
    }

    pub fn total(&self) -> u64 {
        self.ok + self.failed
    }
}

/// What one process counted around its measured window, per transaction
/// (the run's recorder keeps it, the interval log ends with it, and
/// `loadgen merge` adds the processes' together).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowLog {
    /// The window's length in seconds.
    pub secs: f64,
    /// Iterations started (in the window or after it).
    pub started: u64,
    /// Open model: iterations the schedule planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<u64>,
    /// Completions inside the window.
    pub inside: BTreeMap<String, Counts>,
    /// Completions after it.
    pub after: BTreeMap<String, Counts>,
    /// Requests answered 429 (the target's rate limit), in the whole run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rate_limited: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl WindowLog {
    /// Adds another process's counts (processes run side by side with the
    /// same window length).
    pub fn add(&mut self, other: &WindowLog) {
        self.secs = self.secs.max(other.secs);
        self.started += other.started;
        self.rate_limited += other.rate_limited;
        self.planned = match (self.planned, other.planned) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        for (mine, theirs) in [
            (&mut self.inside, &other.inside),
            (&mut self.after, &other.after),
        ] {
            for (tx, c) in theirs {
                let m = mine.entry(tx.clone()).or_default();
                m.ok += c.ok;
                m.failed += c.failed;
            }
        }
    }
}

/// The measured window: it opens when the first iteration starts (in the
/// open model, the first scheduled slot) and closes `secs` later, wall
/// clock. Iterations are counted by when they complete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    pub secs: f64,
    /// Successful iterations completed inside the window: TPS's numerator.
    pub completed: u64,
    /// Failed iterations completed inside the window.
    pub failed: u64,
    /// Requests (every transaction but the headline) completed inside it.
    pub requests: u64,
    /// Requests the target refused with 429 (its rate limit) in the whole
    /// run, the drain after the window included: also counted as errors,
    /// and named apart so a run that measured a limiter says so.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rate_limited: u64,
}

/// What the window left undone: drained, not throughput.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backlog {
    /// Iterations that completed (successfully or not) after the window
    /// closed.
    pub completed_after: u64,
    /// Iterations started but not completed when the run stopped.
    pub outstanding: u64,
    /// Open model: scheduled iterations never started before the run
    /// stopped.
    pub unstarted: u64,
}

impl Backlog {
    /// Iterations started or scheduled that did not complete inside the
    /// window. In the open model, these and the window's completions add
    /// up to the planned iterations.
    pub fn total(&self) -> u64 {
        self.completed_after + self.outstanding + self.unstarted
    }
}

/// How the load was offered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Model {
    /// A constant arrival rate (iterations per second), independent of how
    /// fast the target answers: latency measured at a fixed offered load.
    Open { rate: f64 },
    /// Users looping as fast as answers come back: the numbers are at
    /// saturation, and "corrected" equals "raw" (there is no schedule).
    Closed,
}

/// How well the generator kept the open model's schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Iterations the schedule asked for within the run.
    pub planned: u64,
    /// Iterations that started more than 10 ms after their slot (every user
    /// was busy: the target, or too few users, held them back).
    pub late: u64,
    pub max_lag_us: u64,
}

/// What the generator process itself used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Generator {
    pub cpu_seconds: f64,
    pub max_rss_kib: u64,
    /// `generator` when the generator's CPU was saturated or it fell behind
    /// its schedule with idle users; `target` otherwise.
    pub limited_by: String,
    /// One sample a second: resident memory and CPU used so far.
    #[serde(default)]
    pub samples: Vec<ProcSample>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcSample {
    pub t: f64,
    pub rss_kib: u64,
    pub cpu_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub run_id: String,
    pub scenario: String,
    /// The transaction that is one iteration of the scenario: its
    /// successes inside the window are the run's TPS.
    pub headline: String,
    pub model: Model,
    pub users: usize,
    pub hosts: Vec<String>,
    pub started_at: String,
    /// Seconds of measurement (the window's length).
    pub duration_secs: f64,
    pub transactions: BTreeMap<String, TxSummary>,
    pub series: BTreeMap<String, Vec<SeriesPoint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<Generator>,
    /// Files of the run, relative to the summary.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Number of loadgen processes merged into this summary.
    #[serde(default = "one")]
    pub processes: usize,
    /// Successful iterations completed inside the measured window, per
    /// second of the window. Absent from summaries made before the window
    /// was measured: for those, [`RunSummary::tps`] falls back to every
    /// success over the nominal duration (the old definition, which
    /// counted completions drained after the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tps: Option<f64>,
    /// Open model: the offered rate (iterations per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered: Option<f64>,
    /// Open model: `tps / offered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<Backlog>,
    /// The run's threshold gates, judged (`--threshold`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<crate::thresholds::Judged>,
    /// Faults injected during the run (`loadgen job --faults`): each one's
    /// window, in seconds of the measured window, and what it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<crate::faults::FaultWindow>,
}

/// Reads one of loadgen's JSON files (summary, scale, report).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn one() -> usize {
    1
}

impl RunSummary {
    pub fn headline(&self) -> Option<&TxSummary> {
        self.transactions.get(&self.headline)
    }

    /// Successful iterations completed inside the measured window, per
    /// second; for a summary made before the window was measured, every
    /// success over the nominal duration (see [`RunSummary::measured`]).
    pub fn tps(&self) -> f64 {
        if let Some(tps) = self.tps {
            return tps;
        }
        match self.headline() {
            Some(t) if self.duration_secs > 0.0 => t.ok() as f64 / self.duration_secs,
            _ => 0.0,
        }
    }

    /// Whether TPS was counted inside the measured window (false for
    /// summaries of the old definition).
    pub fn measured(&self) -> bool {
        self.window.is_some()
    }

    /// Sets the window's figures from what the recorder counted: `tps`,
    /// `offered`, `achieved`, `window` and `backlog`.
    pub fn apply_window(&mut self, log: &WindowLog) {
        let head = log.inside.get(&self.headline).copied().unwrap_or_default();
        let after = log.after.get(&self.headline).copied().unwrap_or_default();
        let requests = log
            .inside
            .iter()
            .filter(|(tx, _)| **tx != self.headline)
            .map(|(_, c)| c.total())
            .sum();
        let tps = if log.secs > 0.0 {
            head.ok as f64 / log.secs
        } else {
            0.0
        };
        self.window = Some(Window {
            secs: log.secs,
            completed: head.ok,
            failed: head.failed,
            requests,
            rate_limited: log.rate_limited,
        });
        self.backlog = Some(Backlog {
            completed_after: after.total(),
            outstanding: log.started.saturating_sub(head.total() + after.total()),
            unstarted: log.planned.map_or(0, |p| p.saturating_sub(log.started)),
        });
        self.tps = Some(tps);
        self.offered = match self.model {
            Model::Open { rate } => Some(rate),
            Model::Closed => None,
        };
        self.achieved = self.offered.filter(|r| *r > 0.0).map(|r| tps / r);
    }

    /// Requests per second, every transaction but the headline (which is
    /// made of the others): those completed inside the window, or for the
    /// old definition every request over the nominal duration.
    pub fn rps(&self) -> f64 {
        if let Some(w) = self.window.filter(|w| w.secs > 0.0) {
            return w.requests as f64 / w.secs;
        }
        if self.duration_secs <= 0.0 {
            return 0.0;
        }
        let requests: u64 = self
            .transactions
            .iter()
            .filter(|(name, _)| **name != self.headline)
            .map(|(_, t)| t.count)
            .sum();
        requests as f64 / self.duration_secs
    }

    pub fn error_rate(&self) -> f64 {
        self.headline().map_or(0.0, TxSummary::error_rate)
    }

    /// Requests the target refused with 429 (see [`Window::rate_limited`]).
    pub fn rate_limited(&self) -> u64 {
        self.window.map_or(0, |w| w.rate_limited)
    }

    pub fn p95_corrected_ms(&self) -> f64 {
        self.headline()
            .map_or(0.0, |t| t.corrected.p95 as f64 / 1000.0)
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        crate::summary::read_json(path)
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}
