//! What a report holds: the run's machine, the verifier's verdict, the load
//! runs and the scaling run. `report.json` is this, serialised, and is what
//! `--from` re-renders and `--baseline` compares against.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::machine::Machine;
use crate::scale::ScaleReport;
use crate::summary::RunSummary;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckLine {
    pub name: String,
    pub pass: bool,
    pub summary: String,
}

/// The verifier's verdict, as much of it as the report shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifySummary {
    pub pass: bool,
    pub headline: String,
    pub checks: Vec<CheckLine>,
}

impl VerifySummary {
    /// From verify's `verdict.json` (or the serialised `Verdict`).
    pub fn from_value(v: &Value) -> Self {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        VerifySummary {
            pass: v.get("pass").and_then(Value::as_bool).unwrap_or(false),
            headline: text(v, "headline"),
            checks: v
                .get("checks")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| CheckLine {
                            name: format!("{}: {}", text(c, "check"), text(c, "name")),
                            pass: c.get("pass").and_then(Value::as_bool).unwrap_or(false),
                            summary: text(c, "summary"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// How a report's TPS figures were measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TpsMeasure {
    /// Successes over the nominal duration, completions drained after the
    /// window included (reports made before the window was measured; a
    /// `report.json` without the field is one).
    #[default]
    NominalDuration,
    /// Successes completed inside the measured window, per second of it.
    Window,
}

/// What both pages say about a report of the old definition.
pub const OLD_TPS_NOTE: &str = "TPS by the old definition (successes / nominal duration), \
not re-measured: completions drained after the measured window were counted as throughput, \
so an offered rate that was kept shows as achieved by construction, and efficiency is a ratio \
of the offered rates the search chose. What a recount needs (each completion's time against \
the window) was not kept, so these figures stay as they were measured.";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub run_id: String,
    pub created_at: String,
    pub machine: Machine,
    /// `real` or `memory`.
    pub backend: String,
    /// Anything the reader must know about how the run was made (e.g. the
    /// fallback to the embedded backend).
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySummary>,
    /// Load runs, the main one first.
    #[serde(default)]
    pub loads: Vec<RunSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleReport>,
    /// The seat-hold strategies side by side (`scripts/run.sh
    /// --seat-comparison`), added to the job's report afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat_comparison: Option<super::SeatComparison>,
    /// How the TPS figures were measured; derived from the data whenever
    /// the report is written (see [`Report::normalized`]).
    #[serde(default)]
    pub tps_measure: TpsMeasure,
}

impl Report {
    /// A report made now on this machine, with nothing in it yet: callers
    /// fill in what their command measured.
    pub fn now(run_id: String, backend: String) -> Report {
        Report {
            run_id,
            created_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            machine: crate::machine::Machine::detect(),
            backend,
            notes: Vec::new(),
            verify: None,
            loads: Vec::new(),
            scale: None,
            seat_comparison: None,
            // Derived from the data on writing (see `normalized`).
            tps_measure: Default::default(),
        }
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        crate::summary::read_json(path)
    }

    /// What was derived from the data, derived again: the TPS measure
    /// (the window only when every load run and every offered step was
    /// counted inside its window) and the scaling run's statistics (reports
    /// made before repeats read as one repeat per fleet size).
    pub fn normalized(&self) -> Report {
        let mut r = self.clone();
        if let Some(scale) = &mut r.scale {
            scale.upgrade();
        }
        let loads = r.loads.iter().all(RunSummary::measured);
        let steps = r.scale.as_ref().is_none_or(|s| {
            s.points
                .iter()
                .flat_map(|p| p.all_steps())
                .all(|st| st.rate.is_none() || st.achieved.is_some())
        });
        r.tps_measure = if loads && steps {
            TpsMeasure::Window
        } else {
            TpsMeasure::NominalDuration
        };
        r
    }

    /// Whether the TPS figures are of the old definition.
    pub fn old_tps(&self) -> bool {
        self.tps_measure == TpsMeasure::NominalDuration
    }
}
