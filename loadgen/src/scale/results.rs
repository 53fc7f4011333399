//! What a scaling run measured, as `scale.json` holds it: the calibration,
//! then per fleet size every repeat's rates (each a [`Step`]), the
//! repeats' median TPS with its interval, efficiency with its interval and
//! the verdict, the over-selling check; and the scalability model fitted
//! to it all.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::limits::{Limit, Usage};
use super::speed;
use super::stats::{self, Interval, Verdict};
use super::usl::Fit;
use crate::cgroup::Flavour;
use crate::machine::Machine;

/// One measured rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Offered iterations per second (`None`: a closed-model probe).
    pub rate: Option<f64>,
    /// Successful iterations completed inside the step's measured window,
    /// per second (in reports made before the window was measured:
    /// successes over the nominal duration).
    pub tps: f64,
    /// `tps / rate` (absent for a probe and in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved: Option<f64>,
    /// Iterations of the step that did not complete inside its window
    /// (absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u64>,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p95_raw_ms: f64,
    pub error_rate: f64,
    pub pass: bool,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub dir: String,
    /// What each part of the system used during the measured window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[cfg(test)]
impl Step {
    /// A passing step offered `tps` and serving all of it, P95 40 ms, with
    /// `usage`: what tests build runs from.
    pub fn passing(tps: f64, usage: Option<Usage>) -> Self {
        Step {
            rate: Some(tps),
            tps,
            achieved: None,
            backlog: None,
            p50_ms: 10.0,
            p95_ms: 40.0,
            p99_ms: 60.0,
            p95_raw_ms: 40.0,
            error_rate: 0.0,
            pass: true,
            reason: None,
            dir: String::new(),
            usage,
        }
    }
}

/// The passing and failing rates a search ended between: the capacity
/// within the bounds lies in `[passed, failed)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bracket {
    pub passed: f64,
    pub failed: f64,
}

impl Bracket {
    /// The gap as a share of the passing rate.
    pub fn gap(&self) -> f64 {
        (self.failed - self.passed) / self.passed
    }
}

/// One repeat of a fleet size: its own fresh fleets, its own search.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repeat {
    /// The position in the run's interleaved order (0 first).
    pub order: usize,
    pub steps: Vec<Step>,
    /// The passing step of the highest TPS.
    pub best: Option<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bracket: Option<Bracket>,
}

impl Repeat {
    pub fn tps(&self) -> Option<f64> {
        self.best.as_ref().map(|b| b.tps)
    }

    pub fn p95_ms(&self) -> Option<f64> {
        self.best.as_ref().map(|b| b.p95_ms)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub instances: usize,
    #[serde(default)]
    pub repeats: Vec<Repeat>,
    /// The median of the repeats' TPS, and their spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tps_interval: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_interval: Option<Interval>,
    pub efficiency: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency_interval: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Efficiency above 100% beyond its interval: a measurement problem
    /// (see [`stats::above_ideal`]).
    #[serde(default)]
    pub efficiency_flagged: bool,
    /// The machine's speed while this size was measured, read off the
    /// shared stack, against the first size's (see [`speed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yardstick: Option<speed::Yardstick>,
    /// The yardstick strayed beyond [`speed::TOLERANCE`] from the first
    /// size's: this efficiency compares two speeds of the machine.
    #[serde(default)]
    pub speed_flagged: bool,
    pub verify_pass: bool,
    pub verify_headline: String,
    /// What limited this fleet size, from its steps' usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    /// Reports made before repeats: the one search's steps and best step
    /// (read into one repeat, never written).
    #[serde(default, skip_serializing)]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing)]
    pub best: Option<Step>,
}

impl Point {
    pub fn new(instances: usize) -> Self {
        Point {
            instances,
            repeats: Vec::new(),
            tps: None,
            tps_interval: None,
            p95_ms: None,
            p95_interval: None,
            efficiency: None,
            efficiency_interval: None,
            verdict: None,
            efficiency_flagged: false,
            yardstick: None,
            speed_flagged: false,
            verify_pass: false,
            verify_headline: String::new(),
            limit: None,
            steps: Vec::new(),
            best: None,
        }
    }

    /// The median TPS and P95 of the repeats so far, and their spreads.
    pub fn derive_tps(&mut self) {
        let tps: Vec<f64> = self.repeats.iter().filter_map(Repeat::tps).collect();
        let p95: Vec<f64> = self.repeats.iter().filter_map(Repeat::p95_ms).collect();
        self.tps = stats::median(&tps);
        self.tps_interval = stats::spread(&tps);
        self.p95_ms = stats::median(&p95);
        self.p95_interval = stats::spread(&p95);
    }

    /// Every step of every repeat.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.repeats.iter().flat_map(|r| &r.steps)
    }

    /// Whether this size's efficiency carries either flag.
    pub fn flagged(&self) -> bool {
        self.efficiency_flagged || self.speed_flagged
    }

    /// The words of each flag this size's efficiency carries.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.efficiency_flagged {
            flags.push(FLAG_TEXT.to_owned());
        }
        if self.speed_flagged {
            flags.push(
                self.yardstick
                    .map_or_else(|| speed::SHORT_TEXT.to_owned(), |y| speed::flag_text(&y)),
            );
        }
        flags
    }
}

/// How the per-instance quota was chosen.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Calibration {
    /// The unconstrained fleet the ceiling was measured with.
    pub instances: usize,
    /// The highest purchase rate the shared stack sustained within the
    /// bounds (TPS of the best passing step), and the search's bracket.
    pub ceiling: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bracket: Option<Bracket>,
    /// The instances' CPU per purchase at that rate, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms_per_purchase: Option<f64>,
    /// What one instance sustained within the bounds under a trial quota
    /// (open model), and the quota sized from it. This, not the
    /// unconstrained figure, sizes the quota: a quota'd instance also
    /// spends its slice on loops that do not scale with its rate, and
    /// meets the latency bound below its whole quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizing: Option<Sizing>,
    /// Half the ceiling: what the largest fleet may need.
    pub headroom: f64,
    /// The largest fleet's expected rate: its instances at their whole
    /// quota, from the CPU per purchase (or, once measured, N x TPS(1)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_largest: Option<f64>,
    /// "calibrated" or "--cpus-per-instance".
    pub quota_from: String,
    pub steps: Vec<Step>,
}

/// How one instance's quota was sized from a trial at another quota.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sizing {
    /// The trial's quota (CPUs) and the rate it sustained within the bounds.
    pub trial_cpus: f64,
    pub trial_rate: f64,
    /// The quota one instance needs for the target rate (before rounding).
    pub cpus: f64,
    /// The instance's background CPU (cores) and CPU per purchase (ms),
    /// fitted to the trial's unsaturated steps; absent when they allowed
    /// no fit, and the quota then scales in proportion to the rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms_per_purchase: Option<f64>,
    /// The share of its quota the trial instance used at its bound.
    pub used_at_bound: f64,
    /// A second trial at the quota the first one sized, when that sizing
    /// was a guess (see [`super::calibrate::needs_second`]). With it the
    /// background and the CPU per purchase above are the line through
    /// the two trials' (quota, rate at the bound) points, whose quota was
    /// used whole at the bound (`used_at_bound` 1): what one instance
    /// sustains, not what it spends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second: Option<SecondTrial>,
}

/// A second trial's quota and the rate one instance sustained under it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecondTrial {
    pub cpus: f64,
    pub rate: f64,
}

impl Sizing {
    /// The rate one instance is expected to sustain within the bounds at
    /// `cpus`, by the same model.
    pub fn rate_at(&self, cpus: f64) -> f64 {
        match (self.background, self.cpu_ms_per_purchase) {
            (Some(bg), Some(ms)) => ((self.used_at_bound * cpus - bg) / (ms / 1000.0)).max(0.0),
            _ => self.trial_rate * cpus / self.trial_cpus,
        }
    }
}

/// The Universal Scalability Law fitted to every repeat, with what it
/// predicts (predictions, not measurements).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    pub fit: Fit,
    /// Where the fitted throughput peaks (`None`: it never falls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_instances: Option<f64>,
    /// `(instances, TPS)` the law predicts, at 8 and 16.
    pub predicted: Vec<(usize, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleReport {
    pub run_id: String,
    pub started_at: String,
    pub machine: Machine,
    pub quota: Flavour,
    pub cpus_per_instance: f64,
    /// The CFS period of each instance's quota, in microseconds: a
    /// throttled instance may stall for up to `period x (1 - quota)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cfs_period_us: Option<u64>,
    /// What was scaled: the bundled fleet or the user's command.
    #[serde(default)]
    pub fleet: String,
    pub scenario: String,
    pub p95_bound_ms: f64,
    pub max_error_rate: f64,
    /// The share of the offered rate a passing step achieves (absent in
    /// older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_achieved: Option<f64>,
    pub step_secs: f64,
    /// Repeats per fleet size and the bracket the search aims for.
    #[serde(default)]
    pub repeats: usize,
    #[serde(default)]
    pub resolution: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    pub points: Vec<Point>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Model>,
    /// What the reader must know before trusting the figures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set when the run was not (fully) carried out, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub elapsed_secs: f64,
    /// The run's threshold gates, judged (`--threshold`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<crate::thresholds::Judged>,
}

impl ScaleReport {
    /// Reads `scale.json`, older ones too (see [`ScaleReport::upgrade`]).
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let mut r: Self = crate::summary::read_json(path)?;
        r.upgrade();
        Ok(r)
    }

    /// A report for a scaling run that could not take place.
    pub fn skipped(run_id: &str, reason: String) -> Self {
        ScaleReport {
            run_id: run_id.into(),
            started_at: now_rfc3339(),
            machine: Machine::detect(),
            quota: Flavour::None,
            cpus_per_instance: 0.0,
            cfs_period_us: None,
            fleet: String::new(),
            scenario: String::new(),
            p95_bound_ms: 0.0,
            max_error_rate: 0.0,
            min_achieved: None,
            step_secs: 0.0,
            repeats: 0,
            resolution: 0.0,
            calibration: None,
            points: Vec::new(),
            model: None,
            warnings: Vec::new(),
            skipped: Some(reason),
            elapsed_secs: 0.0,
            thresholds: Vec::new(),
        }
    }

    /// A report made before repeats: each fleet's one search becomes its
    /// one repeat, and the statistics are derived again.
    pub fn upgrade(&mut self) {
        for p in &mut self.points {
            if p.repeats.is_empty() && !p.steps.is_empty() {
                p.repeats.push(Repeat {
                    order: 0,
                    steps: std::mem::take(&mut p.steps),
                    best: p.best.take(),
                    bracket: None,
                });
            }
        }
        if self.repeats == 0 && !self.points.is_empty() {
            self.repeats = 1;
        }
        self.derive();
    }

    /// The median TPS of fleet size `n`.
    pub fn tps_of(&self, n: usize) -> Option<f64> {
        self.points
            .iter()
            .find(|p| p.instances == n)
            .and_then(|p| p.tps)
    }

    /// Everything derived from the repeats: per fleet size the medians and
    /// intervals, efficiency against the first fleet (per instance) with
    /// its interval and verdict, the flags, and the fitted model. A fleet
    /// that over-sold gets no efficiency: a fast wrong answer is not a
    /// result.
    pub fn derive(&mut self) {
        for p in &mut self.points {
            p.derive_tps();
        }
        let base = self
            .points
            .first()
            .and_then(|p| Some((p.tps?, p.tps_interval?, p.instances)));
        // A repeat that found no passing rate is not in the spread (its
        // capacity is below every rate it tried, how far is unknown), so
        // an interval it would have widened decides nothing.
        let complete = |p: &Point| p.repeats.iter().all(|r| r.tps().is_some());
        let base_complete = self.points.first().is_some_and(complete);
        for p in &mut self.points {
            let decisive = base_complete && complete(p);
            let e = match (p.tps.zip(p.tps_interval), base) {
                (Some(t), Some((b, bi, bn))) if p.verify_pass => {
                    stats::efficiency(p.instances, t, (b, bi), bn)
                }
                _ => None,
            };
            p.efficiency = e.map(|e| e.0);
            p.efficiency_interval = e.map(|e| e.1);
            p.verdict = e.map(|e| {
                if decisive {
                    Verdict::of(e.1)
                } else {
                    Verdict::Inconclusive
                }
            });
            p.efficiency_flagged = decisive && e.is_some_and(|e| stats::above_ideal(e.1));
        }
        let base_cost = self.points.first().and_then(speed::cost);
        for p in &mut self.points {
            p.yardstick = speed::yardstick(p, base_cost);
            p.speed_flagged =
                p.efficiency.is_some() && p.yardstick.as_ref().is_some_and(speed::drifted);
        }
        let points: Vec<(f64, f64)> = self
            .points
            .iter()
            .filter(|p| p.verify_pass)
            .flat_map(|p| {
                p.repeats
                    .iter()
                    .filter_map(move |r| Some((p.instances as f64, r.tps()?)))
            })
            .collect();
        self.model = super::usl::fit(&points).map(|fit| Model {
            fit,
            peak_instances: fit.peak(),
            predicted: [8, 16].map(|n| (n, fit.at(n as f64))).to_vec(),
        });
    }

    /// Fleets with no passing rate in any repeat (no TPS, no efficiency).
    pub fn unmet(&self) -> Vec<usize> {
        self.points
            .iter()
            .filter(|p| p.tps.is_none())
            .map(|p| p.instances)
            .collect()
    }
}

/// The words every output puts beside a flagged efficiency.
pub const FLAG_TEXT: &str = "above 100% beyond its interval: a measurement problem";

pub(super) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
