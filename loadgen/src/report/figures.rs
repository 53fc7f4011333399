//! The figures each page tabulates (compared with a baseline when there is
//! one), and the lines both pages word the same way.

use super::Report;
use crate::scale::FLAG_TEXT;
use crate::summary::RunSummary;

/// One compared figure.
pub(super) struct Row {
    pub what: String,
    pub now: f64,
    pub unit: &'static str,
    pub before: Option<f64>,
    /// Set when the figure is beyond what its measurement allows.
    pub flag: Option<&'static str>,
}

impl Row {
    /// The figure as measured, with its flag.
    pub fn now_text(&self, mark: &str) -> String {
        match self.flag {
            Some(f) => format!("{:.1} {} {mark} {f}", self.now, self.unit),
            None => format!("{:.1} {}", self.now, self.unit),
        }
    }

    /// The baseline's value, or `dash` where the baseline lacks the figure.
    pub fn before_text(&self, dash: &str) -> String {
        self.before
            .map_or(dash.to_owned(), |b| format!("{b:.1} {}", self.unit))
    }

    /// The change from the baseline, in percent.
    pub fn change(&self) -> String {
        match self.before {
            Some(b) if b != 0.0 => format!("{:+.1}%", (self.now - b) / b * 100.0),
            Some(_) => "n/a".into(),
            None => String::new(),
        }
    }
}

/// Every load run's and scaling point's figures, each beside the baseline's
/// same figure (matched by scenario, or by instance count).
pub(super) fn rows(report: &Report, baseline: Option<&Report>) -> Vec<Row> {
    let mut rows = Vec::new();
    for load in &report.loads {
        let old = baseline.and_then(|b| b.loads.iter().find(|l| l.scenario == load.scenario));
        let figure = |f: &dyn Fn(&RunSummary) -> f64| (f(load), old.map(f));
        let mut push = |what: &str, unit: &'static str, (now, before): (f64, Option<f64>)| {
            rows.push(Row {
                what: format!("{}: {what}", load.scenario),
                now,
                unit,
                before,
                flag: None,
            })
        };
        let old_definition = if load.measured() {
            ""
        } else {
            " (old definition)"
        };
        push(&format!("TPS{old_definition}"), "/s", figure(&|l| l.tps()));
        if let Some(achieved) = load.achieved {
            push(
                "achieved (TPS / offered)",
                "%",
                (
                    achieved * 100.0,
                    old.and_then(|o| o.achieved).map(|a| a * 100.0),
                ),
            );
        }
        if let Some(backlog) = load.backlog {
            let before = old.and_then(|o| o.backlog).map(|b| b.total() as f64);
            push(
                "backlog (not completed in the window)",
                "iterations",
                (backlog.total() as f64, before),
            );
        }
        push(
            &format!("requests{old_definition}"),
            "/s",
            figure(&|l| l.rps()),
        );
        for (name, pick) in [
            ("P50 corrected", 0usize),
            ("P95 corrected", 1),
            ("P99 corrected", 2),
            ("P95 raw", 3),
        ] {
            push(
                name,
                "ms",
                figure(&|l| {
                    l.headline().map_or(0.0, |t| {
                        let us = match pick {
                            0 => t.corrected.p50,
                            1 => t.corrected.p95,
                            2 => t.corrected.p99,
                            _ => t.raw.p95,
                        };
                        us as f64 / 1000.0
                    })
                }),
            );
        }
        push("errors", "%", figure(&|l| l.error_rate() * 100.0));
    }
    if let Some(scale) = &report.scale {
        for p in &scale.points {
            let old = baseline
                .and_then(|b| b.scale.as_ref())
                .and_then(|s| s.points.iter().find(|o| o.instances == p.instances));
            if let Some(tps) = p.tps {
                rows.push(Row {
                    what: format!("scale: TPS({}), median", p.instances),
                    now: tps,
                    unit: "/s",
                    before: old.and_then(|o| o.tps),
                    flag: None,
                });
            }
            if let Some(e) = p.efficiency {
                rows.push(Row {
                    what: format!("scale: efficiency({})", p.instances),
                    now: e * 100.0,
                    unit: "%",
                    before: old.and_then(|o| o.efficiency).map(|e| e * 100.0),
                    flag: if p.efficiency_flagged {
                        Some(FLAG_TEXT)
                    } else {
                        p.speed_flagged.then_some(crate::scale::speed::SHORT_TEXT)
                    },
                });
            }
        }
    }
    rows
}

pub(super) fn verdict_line(report: &Report) -> (bool, String) {
    match &report.verify {
        Some(v) => (v.pass, v.headline.clone()),
        None => (false, "verify did not run".into()),
    }
}

/// What the measured window saw: TPS against the offered rate and the
/// backlog (or that the run is of the old definition).
pub(super) fn window_line(load: &RunSummary) -> String {
    let (Some(w), Some(b)) = (load.window, load.backlog) else {
        return format!(
            "TPS {:.1}/s by the old definition (successes / nominal duration), not re-measured",
            load.tps()
        );
    };
    let achieved = match (load.offered, load.achieved) {
        (Some(o), Some(a)) => format!(" of {o:.0}/s offered ({:.1}% achieved)", a * 100.0),
        _ => String::new(),
    };
    format!(
        "TPS {:.1}/s{achieved}: {} successful and {} failed iterations completed inside the {} s \
         window; backlog {} ({} completed after it, {} outstanding at the stop, {} never started)",
        load.tps(),
        w.completed,
        w.failed,
        w.secs,
        b.total(),
        b.completed_after,
        b.outstanding,
        b.unstarted
    )
}

pub(super) fn generator_line(load: &RunSummary) -> String {
    match &load.generator {
        Some(g) => format!(
            "{:.1} CPU-s, max RSS {:.1} MiB, limited by {}",
            g.cpu_seconds,
            g.max_rss_kib as f64 / 1024.0,
            g.limited_by
        ),
        None => format!("{} merged process(es)", load.processes),
    }
}

/// Every threshold the run was gated on, as judged: the load runs' and
/// the scaling run's, in that order.
pub(super) fn thresholds(report: &Report) -> Vec<&crate::thresholds::Judged> {
    report
        .loads
        .iter()
        .flat_map(|l| &l.thresholds)
        .chain(report.scale.iter().flat_map(|s| &s.thresholds))
        .collect()
}
