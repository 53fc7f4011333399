//! What both pages say about the scaling run: the quota, each fleet's
//! closed-model capacity, and where scaling stopped being the instances'
//! doing.

use crate::scale::{Point, ScaleReport, EFFICIENCY_ALLOWANCE, FLAG_TEXT};

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
/// measured; a flagged efficiency is followed by `mark` and the flag's
/// words.
pub(super) struct Cells {
    pub tps: String,
    pub p95: String,
    pub efficiency: String,
    pub capacity: String,
}

impl Cells {
    pub fn of(p: &Point, dash: &str, mark: &str) -> Self {
        let (tps, p95) = p.best.as_ref().map_or((dash.into(), dash.into()), |b| {
            (format!("{:.0}", b.tps), format!("{:.1}", b.p95_ms))
        });
        Cells {
            tps,
            p95,
            efficiency: p.efficiency.map_or(dash.into(), |e| {
                if p.efficiency_flagged {
                    format!("{:.0}% {mark} {FLAG_TEXT}", e * 100.0)
                } else {
                    format!("{:.0}%", e * 100.0)
                }
            }),
            capacity: capacity(p).map_or(dash.into(), |c| format!("{c:.0}/s")),
        }
    }
}

/// What a rate had to do to pass.
pub(super) fn bounds(scale: &ScaleReport) -> String {
    let achieved = scale
        .min_achieved
        .map_or("the offered rate achieved".to_owned(), |a| {
            format!(
                "at least {:.0}% of the offered rate achieved inside the measured window",
                a * 100.0
            )
        });
    format!(
        "a rate passes with corrected P95 <= {} ms, errors <= {:.2}% and {achieved}; {} s per rate",
        scale.p95_bound_ms,
        scale.max_error_rate * 100.0,
        scale.step_secs
    )
}

/// The passing rate a fleet's TPS came from and the lowest failing rate
/// above it, when one was tried: its capacity lies between them.
fn bracket(p: &Point) -> Option<(f64, f64)> {
    let lo = p.best.as_ref()?.rate?;
    let hi = p
        .steps
        .iter()
        .filter(|s| !s.pass)
        .filter_map(|s| s.rate)
        .filter(|&r| r > lo)
        .min_by(f64::total_cmp)?;
    Some((lo, hi))
}

/// The explanation under a table with a flagged efficiency, with how
/// closely the search bracketed the first fleet's capacity.
pub(super) fn flag_note(scale: &ScaleReport) -> Option<String> {
    scale.points.iter().any(|p| p.efficiency_flagged).then(|| {
        let first = scale.points.first();
        let base = match first.map(|p| (p.instances, bracket(p))) {
            Some((n, Some((lo, hi)))) => format!(
                " Here the search at {n} instance(s) stopped between {lo:.0}/s (passed) and \
                 {hi:.0}/s (failed), a gap of {:.0}%.",
                (hi - lo) / lo * 100.0
            ),
            Some((n, None)) => format!(
                " Here no rate failed above the best one at {n} instance(s): its capacity was \
                 not bracketed."
            ),
            None => String::new(),
        };
        format!(
            "Efficiency is flagged when it exceeds 100% by more than {:.0}%, the resolution the \
             rate search aims for (it stops bisecting there, or after its last rate), until repeated \
             runs give TPS an interval: N instances doing more than N times one more likely means \
             the first fleet's TPS is an underestimate (its search stopped below its capacity) than \
             that instances help each other.{base}",
            EFFICIENCY_ALLOWANCE * 100.0
        )
    })
}

/// Fleets where no offered rate met the bounds: the performance
/// expectation the report states, with each rate's reason.
pub(super) fn unmet_note(scale: &ScaleReport) -> Option<String> {
    let lines: Vec<String> = scale
        .points
        .iter()
        .filter(|p| p.best.is_none())
        .map(|p| {
            let reasons: Vec<String> = p
                .steps
                .iter()
                .filter_map(|s| {
                    let r = s.rate?;
                    Some(format!(
                        "{r:.0}/s: {}",
                        s.reason.as_deref().unwrap_or("did not pass")
                    ))
                })
                .collect();
            format!(
                "{} instance(s): no offered rate met the bounds ({})",
                p.instances,
                if reasons.is_empty() {
                    "none tried".into()
                } else {
                    reasons.join("; ")
                }
            )
        })
        .collect();
    (!lines.is_empty()).then(|| {
        format!(
            "Not met: {}. TPS and efficiency at that size are not measured.",
            lines.join(". ")
        )
    })
}
