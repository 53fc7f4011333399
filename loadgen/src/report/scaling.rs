//! What both pages say about the scaling run: the quota, each fleet's
//! closed-model capacity, and where scaling stopped being the instances'
//! doing.

use crate::scale::{Point, ScaleReport};

/// The closed-model capacity probe of each fleet (the first step).
fn capacity(p: &Point) -> Option<f64> {
    p.steps.iter().find(|s| s.rate.is_none()).map(|s| s.tps)
}

/// Says where scaling stopped being the instances' doing: a fleet whose
/// closed-model capacity grew much less than its size.
pub fn scaling_diagnosis(scale: &ScaleReport) -> Option<String> {
    let first = scale.points.first()?;
    let base = capacity(first)? / first.instances as f64;
    let flat: Vec<String> = scale
        .points
        .iter()
        .filter_map(|p| {
            let c = capacity(p)?;
            let ratio = c / (base * p.instances as f64);
            (ratio < 0.75).then(|| {
                format!(
                    "{} instances reach {:.0}/s ({:.0}% of {} x one)",
                    p.instances,
                    c,
                    ratio * 100.0,
                    p.instances
                )
            })
        })
        .collect();
    (!flat.is_empty()).then(|| {
        format!(
            "Closed-model capacity stops following the instance count: {}. There the limit is outside \
             the instances (the shared stack and the generator on the same machine), so efficiency \
             at that size measures the machine rather than the instances.",
            flat.join("; ")
        )
    })
}

pub(super) fn quota_label(scale: &ScaleReport) -> String {
    if scale.points.is_empty() {
        return "none (no scaling run)".into();
    }
    match scale.quota {
        crate::cgroup::Flavour::None => {
            "no CPU quota (--no-cpu-quota): instances share the machine freely".into()
        }
        f => format!(
            "{:.2} CPU per instance (cgroup {})",
            scale.cpus_per_instance,
            serde_json::to_value(f)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
    }
}

/// One fleet's cells of the scaling table, `dash` where nothing was
/// measured.
pub(super) struct Cells {
    pub tps: String,
    pub p95: String,
    pub efficiency: String,
    pub capacity: String,
}

impl Cells {
    pub fn of(p: &Point, dash: &str) -> Self {
        let (tps, p95) = p.best.as_ref().map_or((dash.into(), dash.into()), |b| {
            (format!("{:.0}", b.tps), format!("{:.1}", b.p95_ms))
        });
        Cells {
            tps,
            p95,
            efficiency: p
                .efficiency
                .map_or(dash.into(), |e| format!("{:.0}%", e * 100.0)),
            capacity: capacity(p).map_or(dash.into(), |c| format!("{c:.0}/s")),
        }
    }
}
