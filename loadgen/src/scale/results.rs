//! What a scaling run measured, as `scale.json` holds it: each fleet
//! size's steps (the capacity probe, then each rate tried), its best
//! passing rate, its efficiency and the over-selling check's verdict.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cgroup::Flavour;
use crate::machine::Machine;

/// One measured rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Offered iterations per second (`None`: the closed-model probe).
    pub rate: Option<f64>,
    /// Successful iterations completed inside the step's measured window,
    /// per second (in reports made before the window was measured:
    /// successes over the nominal duration).
    pub tps: f64,
    /// `tps / rate` (absent for the probe and in older reports).
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub instances: usize,
    pub steps: Vec<Step>,
    /// The highest passing rate's step.
    pub best: Option<Step>,
    pub efficiency: Option<f64>,
    /// Efficiency above 100% by more than [`EFFICIENCY_ALLOWANCE`]: more
    /// than N single instances would do, which the measurement cannot
    /// explain (see [`efficiency_flagged`]).
    #[serde(default)]
    pub efficiency_flagged: bool,
    pub verify_pass: bool,
    pub verify_headline: String,
    /// Quota periods in which an instance was throttled, summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_periods: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleReport {
    pub run_id: String,
    pub started_at: String,
    pub machine: Machine,
    pub quota: Flavour,
    pub cpus_per_instance: f64,
    pub scenario: String,
    pub p95_bound_ms: f64,
    pub max_error_rate: f64,
    /// The share of the offered rate a passing step achieves (absent in
    /// older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_achieved: Option<f64>,
    pub step_secs: f64,
    pub points: Vec<Point>,
    /// Set when the run was not (fully) carried out, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub elapsed_secs: f64,
}

impl ScaleReport {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        crate::summary::read_json(path)
    }

    /// A report for a scaling run that could not take place.
    pub fn skipped(run_id: &str, reason: String) -> Self {
        ScaleReport {
            run_id: run_id.into(),
            started_at: now_rfc3339(),
            machine: Machine::detect(),
            quota: Flavour::None,
            cpus_per_instance: 0.0,
            scenario: String::new(),
            p95_bound_ms: 0.0,
            max_error_rate: 0.0,
            min_achieved: None,
            step_secs: 0.0,
            points: Vec::new(),
            skipped: Some(reason),
            elapsed_secs: 0.0,
        }
    }

    pub fn tps_of(&self, n: usize) -> Option<f64> {
        self.points
            .iter()
            .find(|p| p.instances == n)
            .and_then(|p| p.best.as_ref())
            .map(|b| b.tps)
    }

    /// Efficiency(N) = TPS(N) / (N x one instance's TPS), where one
    /// instance's TPS is measured, or scaled from the first fleet when 1 is
    /// not among --instances. A fleet that over-sold gets none: a fast wrong
    /// answer is not a result. Sets the flags too.
    pub fn set_efficiency(&mut self) {
        let base = self
            .points
            .first()
            .and_then(|p| p.best.as_ref().map(|b| b.tps / p.instances as f64));
        for point in &mut self.points {
            point.efficiency = match (&point.best, base) {
                (Some(best), Some(base)) if base > 0.0 && point.verify_pass => {
                    Some(best.tps / (point.instances as f64 * base))
                }
                _ => None,
            };
        }
        self.flag_efficiency();
    }

    /// Flags each efficiency above 100% beyond the allowance (also for
    /// reports read back, whatever they said).
    pub fn flag_efficiency(&mut self) {
        for point in &mut self.points {
            point.efficiency_flagged = point.efficiency.is_some_and(efficiency_flagged);
        }
    }

    /// Fleets with no passing rate (no TPS, no efficiency).
    pub fn unmet(&self) -> Vec<usize> {
        self.points
            .iter()
            .filter(|p| p.best.is_none())
            .map(|p| p.instances)
            .collect()
    }
}

/// How far above 100% an efficiency may be before it is flagged. Until
/// repeated runs give TPS an interval, this is the resolution the rate
/// search aims for (it stops bisecting once the passing and failing rates
/// are within 5%, or after its last rate), so each TPS(N), and their ratio,
/// is known to about that at best.
pub const EFFICIENCY_ALLOWANCE: f64 = 0.05;

/// Efficiency above 100% by more than [`EFFICIENCY_ALLOWANCE`]: N
/// instances did more than N times one, which more likely means TPS(1) is
/// an underestimate (its search stopped below one instance's capacity) than
/// that instances help each other.
pub fn efficiency_flagged(efficiency: f64) -> bool {
    efficiency > 1.0 + EFFICIENCY_ALLOWANCE
}

/// The words every output puts beside a flagged efficiency.
pub const FLAG_TEXT: &str = "above 100% beyond the 5% allowance";

pub(super) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
