//! The scaling report's own consistency, recomputed from its steps'
//! summaries: shared by the tests in `scale.rs`.

use super::*;

/// TPS as a step's own summary counted it: successes completed inside
/// the window over its length (not the scaling report's `tps` field).
pub fn counted_tps(s: &RunSummary) -> Result<f64, String> {
    let w = s.window.ok_or("the step's summary has no window counts")?;
    Ok(w.completed as f64 / w.secs)
}

/// A step whose load run failed (the shared stack refused it, say): a
/// failing step with its reason and no summary.
pub fn not_run(step: &Step) -> bool {
    step.reason
        .as_deref()
        .is_some_and(|r| r.starts_with("the load run failed"))
}

pub type SummaryOf<'a> = &'a dyn Fn(&Step) -> Result<RunSummary, String>;

/// Every offered step's summary is a measurement (its window's
/// completions and backlog add up to the planned iterations), a passing
/// step met every bound, each repeat's best is its passing step of the
/// highest TPS and its bracket is a passing rate below a failing one.
pub fn check_repeats(report: &ScaleReport, summary_of: SummaryOf<'_>) -> Result<(), String> {
    for p in &report.points {
        for r in &p.repeats {
            for step in r.steps.iter().filter(|s| s.rate.is_some() && !not_run(s)) {
                let s = summary_of(step)?;
                let (w, b) = s.window.zip(s.backlog).ok_or("no window counts")?;
                let planned = s.schedule.as_ref().ok_or("no schedule")?.planned;
                if w.completed + w.failed + b.total() != planned {
                    return Err(format!("{}: counts do not add up to {planned}", step.dir));
                }
                let min = report.min_achieved.ok_or("no achieved bound")?;
                if step.pass
                    && (step.achieved.ok_or("no achieved share")? < min
                        || step.p95_ms > report.p95_bound_ms
                        || step.error_rate > report.max_error_rate)
                {
                    return Err(format!("{} passed out of bounds: {step:?}", step.dir));
                }
            }
            let best = r
                .steps
                .iter()
                .filter(|s| s.pass)
                .map(|s| s.tps)
                .max_by(f64::total_cmp);
            if best != r.tps() {
                return Err(format!(
                    "{} instances: best {:?} of {best:?}",
                    p.instances,
                    r.tps()
                ));
            }
            if let Some(b) = r.bracket {
                let passed = r.steps.iter().any(|s| s.pass && s.rate == Some(b.passed));
                let failed = r.steps.iter().any(|s| !s.pass && s.rate == Some(b.failed));
                if !(passed && failed && b.passed < b.failed) {
                    return Err(format!(
                        "{} instances: bracket {b:?} not its steps'",
                        p.instances
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Each fleet size's median, spread, efficiency interval and verdict,
/// recomputed from its repeats' own summaries (TPS as the steps counted
/// it), are the report's.
pub fn check_statistics(report: &ScaleReport, summary_of: SummaryOf<'_>) -> Result<(), String> {
    let counted = |p: &Point| -> Result<Vec<f64>, String> {
        p.repeats
            .iter()
            .filter_map(|r: &Repeat| r.best.as_ref())
            .map(|b| counted_tps(&summary_of(b)?))
            .collect()
    };
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    let first = &report.points[0];
    let base = counted(first)?;
    for p in &report.points {
        let tps = counted(p)?;
        let (median, spread) = (stats::median(&tps), stats::spread(&tps));
        if median.zip(p.tps).is_some_and(|(a, b)| !close(a, b))
            || median.is_some() != p.tps.is_some()
            || spread != p.tps_interval
        {
            return Err(format!(
                "{} instances: TPS {:?} {:?}, counted {median:?} {spread:?}",
                p.instances, p.tps, p.tps_interval
            ));
        }
        let expected = match (
            median.zip(spread),
            stats::median(&base).zip(stats::spread(&base)),
        ) {
            (Some(t), Some(b)) if p.verify_pass => {
                stats::efficiency(p.instances, t, b, first.instances)
            }
            _ => None,
        };
        let same = match (expected, p.efficiency, p.efficiency_interval) {
            (Some((e, i)), Some(pe), Some(pi)) => {
                // A repeat without a passing rate (here or at the base)
                // leaves the spread incomplete: no verdict beyond
                // inconclusive, no flag.
                let complete = [p, first]
                    .iter()
                    .all(|q| q.repeats.iter().all(|r| r.tps().is_some()));
                let (verdict, flag) = if complete {
                    (Verdict::of(i), stats::above_ideal(i))
                } else {
                    (Verdict::Inconclusive, false)
                };
                close(e, pe)
                    && close(i.lo, pi.lo)
                    && close(i.hi, pi.hi)
                    && p.verdict == Some(verdict)
                    && p.efficiency_flagged == flag
            }
            (None, None, None) => p.verdict.is_none(),
            _ => false,
        };
        if !same {
            return Err(format!(
                "{} instances: efficiency {:?} {:?} {:?}, counted {expected:?}",
                p.instances, p.efficiency, p.efficiency_interval, p.verdict
            ));
        }
    }
    Ok(())
}
