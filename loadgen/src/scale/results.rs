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
    pub tps: f64,
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
    /// answer is not a result.
    pub(super) fn set_efficiency(&mut self) {
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
    }
}

pub(super) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
