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
}

impl Report {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        crate::summary::read_json(path)
    }
}
