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
    /// Seconds since the run started, at the end of the interval.
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
    /// The transaction that is one iteration of the scenario: its count is
    /// the run's TPS.
    pub headline: String,
    pub model: Model,
    pub users: usize,
    pub hosts: Vec<String>,
    pub started_at: String,
    /// Seconds of measurement.
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

    /// Successful iterations per second over the run.
    pub fn tps(&self) -> f64 {
        match self.headline() {
            Some(t) if self.duration_secs > 0.0 => t.ok() as f64 / self.duration_secs,
            _ => 0.0,
        }
    }

    /// Requests per second, every transaction but the headline (which is
    /// made of the others).
    pub fn rps(&self) -> f64 {
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
