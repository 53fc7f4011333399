//! Calibration before measuring: the shared stack's ceiling on this
//! machine (the highest purchase rate it sustains within the bounds, the
//! instances unconstrained), then the per-instance CPU quota that keeps
//! the largest fleet within half of it, so the instances, not the stack,
//! are what a fleet's size changes. One instance is then a fixed slice of
//! compute, like one cloud instance; the stack is what is shared.

use std::path::PathBuf;

use super::deploy::Deployment;
use super::results::{Calibration, Repeat, SecondTrial, Sizing, Step};
use super::search::{Search, Start};

/// The unconstrained fleet the ceiling is measured with: two instances
/// can each take a core of this machine, more would only contend.
const FLEET: usize = 2;

/// Rates the ceiling's search may try, --quick too: every fleet's quota
/// follows from it, so it is worth a bracket where a repeat's is not.
const CEILING_STEPS: usize = 6;

/// The smallest quota an instance gets. A reference instance spends about
/// 0.05 CPU on work that does not scale with its rate (fitted in the
/// calibration trials here): below 0.1 CPU that is most of its slice, and
/// a quota period is mostly stall, which the latency bound feels more
/// than the rate. Such a sliver is not "one instance".
pub const MIN_CPUS: f64 = 0.1;

/// The smallest quota at which the default run adds a fleet of eight.
/// At 0.10 CPU the fitted background work (0.02-0.05 CPU) was 20-46% of
/// an instance's slice, one instance's TPS ranged 16-52/s over three
/// repeats, and no efficiency interval was narrower than 90 points
/// (reports/main-job-consecutive, runs 3 and 4): the run then measured
/// that fixed cost more than the instances. Sized for four instead, each
/// gets twice the slice; eight come back on a stack whose ceiling gives
/// them this much.
pub const EIGHT_MIN_CPUS: f64 = 0.2;

/// The ceiling and the instances' CPU per purchase.
pub(super) async fn ceiling<D: Deployment>(search: &Search<'_, D>) -> anyhow::Result<Calibration> {
    (search.progress)("calibration: the shared stack's ceiling, instances unconstrained");
    let repeat = search
        .repeat(
            FLEET,
            0,
            PathBuf::from("calibration"),
            (Start::Probe, search.max_steps.max(CEILING_STEPS)),
            None,
        )
        .await?;
    let best = repeat.best.clone();
    let ceiling = best.as_ref().map_or(0.0, |b| b.tps);
    let cpu_ms_per_purchase = best.as_ref().and_then(cpu_per_purchase).map(|c| c * 1000.0);
    Ok(Calibration {
        instances: FLEET,
        ceiling,
        bracket: repeat.bracket,
        cpu_ms_per_purchase,
        sizing: None,
        headroom: ceiling / 2.0,
        expected_largest: None,
        quota_from: String::new(),
        steps: repeat.steps,
    })
}

/// Rates the trial's search may try: it only sizes the quota (the
/// measured repeats are what the verdict rests on), so a rough bracket is
/// enough.
const TRIAL_STEPS: usize = 5;

/// What one instance sustains within the bounds under a trial quota
/// `cpus` (open model, searched like a repeat from `estimate`), its steps
/// under `calibration/<name>`.
pub(super) async fn trial<D: Deployment>(
    search: &Search<'_, D>,
    name: &str,
    cpus: f64,
    estimate: f64,
) -> anyhow::Result<Repeat> {
    (search.progress)(&format!(
        "calibration: what one instance sustains at {cpus:.2} CPU (open model)"
    ));
    search
        .repeat(
            1,
            0,
            PathBuf::from("calibration").join(name),
            (Start::Rate(estimate.max(5.0), 1.5), TRIAL_STEPS),
            Some(cpus),
        )
        .await
}

/// The quota for one instance to sustain `target`/s, from the trial at
/// `cpus` (`None` when no trial rate passed): the instance's CPU is
/// modelled as a background share plus a cost per purchase, fitted to the
/// trial's steps, and the quota is what that needs at `target`, at the
/// share of its quota the trial instance used where it met the bound.
pub fn sizing(trial: &Repeat, cpus: f64, target: f64) -> Option<Sizing> {
    let best = trial.best.as_ref()?;
    let points: Vec<(f64, f64)> = trial
        .steps
        .iter()
        .filter_map(|s| Some((s.tps, instances_cpu(s)?)))
        .collect();
    Some(size(cpus, best.tps, &points, target))
}

/// The quota for `target`/s, from a trial at `cpus` that sustained
/// `at_bound`/s, and its steps' (rate, instance CPU) pairs.
pub fn size(cpus: f64, at_bound: f64, points: &[(f64, f64)], target: f64) -> Sizing {
    // Only unsaturated steps show the cost of a rate; a throttled one
    // shows the quota.
    let free: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|&(r, c)| r > 0.0 && c < 0.9 * cpus)
        .collect();
    let fit = linear_fit(&free).filter(|&(bg, per)| per > 0.0 && (0.0..cpus).contains(&bg));
    match fit {
        Some((bg, per)) => {
            let used = ((bg + per * at_bound) / cpus).clamp(0.3, 1.0);
            Sizing {
                trial_cpus: cpus,
                trial_rate: at_bound,
                cpus: (bg + per * target) / used,
                background: Some(bg),
                cpu_ms_per_purchase: Some(per * 1000.0),
                used_at_bound: used,
                second: None,
            }
        }
        None => Sizing {
            trial_cpus: cpus,
            trial_rate: at_bound,
            cpus: cpus * target / at_bound.max(1e-9),
            background: None,
            cpu_ms_per_purchase: None,
            used_at_bound: 1.0,
            second: None,
        },
    }
}

/// The most quota each of `n` instances may get: the machine's cores
/// shared out, so that a sizing from a noisy trial never asks for more
/// compute than there is (at 5/s in a 0.11 CPU trial, proportion would
/// give each of four 2.5 CPU).
pub fn machine_share(n: usize) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    cores as f64 / n.max(1) as f64
}

/// The rate a trial at `cpus` sustained within the bounds, when its
/// instance was held by that quota where it met them (it used at least
/// 80% of it, or its usage was not measured): only then does the rate
/// say what the quota buys.
pub fn held_rate(trial: &Repeat, cpus: f64) -> Option<f64> {
    let best = trial.best.as_ref()?;
    match instances_cpu(best) {
        Some(used) if used < 0.8 * cpus => None,
        _ => Some(best.tps),
    }
}

/// Whether a sizing needs a second trial at the quota it sized: one made
/// in proportion assumed that nothing in an instance's CPU is fixed, and
/// one that moves the quota by more than a quarter extrapolates a fit
/// beyond the rates its trial saw. Both went wrong here: a 0.11 CPU trial
/// sustained 53/s, proportion sized 0.20 CPU for 96/s, and one instance
/// did 198/s under 0.19 (reports/main-job-consecutive, run 6), so four
/// instances overran the stack.
pub fn needs_second(first: &Sizing) -> bool {
    first.background.is_none() || (first.cpus / first.trial_cpus - 1.0).abs() > 0.25
}

/// The sizing for `target`/s through two trials: the first one's and a
/// second at `cpus` that sustained `rate`/s within the bounds. The
/// quota a rate needs is taken as a line, fixed part plus cost per
/// purchase, through the two (quota, rate) points, so a quota between or
/// near them is interpolated, not guessed. `None` when the two allow no
/// such line: rates within 20% of each other, a cost that is not
/// positive, or a fixed part below zero (a positive cost puts it below
/// the smaller quota).
pub fn refit(first: &Sizing, cpus: f64, rate: f64, target: f64) -> Option<Sizing> {
    let (q1, r1) = (first.trial_cpus, first.trial_rate);
    let (lo, hi) = (r1.min(rate), r1.max(rate));
    if lo <= 0.0 || hi < 1.2 * lo {
        return None;
    }
    let per = (cpus - q1) / (rate - r1);
    let fixed = q1 - r1 * per;
    if per <= 0.0 || fixed < 0.0 {
        return None;
    }
    Some(Sizing {
        trial_cpus: q1,
        trial_rate: r1,
        cpus: fixed + per * target,
        background: Some(fixed),
        cpu_ms_per_purchase: Some(per * 1000.0),
        used_at_bound: 1.0,
        second: Some(SecondTrial { cpus, rate }),
    })
}

/// Least squares `y = a + b x`, when the points span at least 20% in x.
fn linear_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let (lo, hi) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &(x, _)| {
            (lo.min(x), hi.max(x))
        });
    if points.len() < 2 || hi < 1.2 * lo {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

/// The instances' CPU (cores) during a step.
fn instances_cpu(step: &Step) -> Option<f64> {
    Some(step.usage.as_ref()?.instances_cpu())
}

/// The instances' CPU seconds per purchase during a step.
fn cpu_per_purchase(step: &Step) -> Option<f64> {
    let cpu = instances_cpu(step)?;
    (cpu > 0.0 && step.tps > 0.0).then(|| cpu / step.tps)
}

/// `cpus` rounded down to 0.01 CPU and at least [`MIN_CPUS`].
pub fn round_quota(cpus: f64) -> f64 {
    ((cpus * 100.0).floor() / 100.0).max(MIN_CPUS)
}

/// The quota that lets `largest` instances, each at its whole quota,
/// need at most the headroom: headroom x CPU per purchase / largest,
/// rounded down to 0.01 CPU and at least [`MIN_CPUS`].
pub fn quota_for(headroom: f64, cpu_s_per_purchase: f64, largest: usize) -> f64 {
    let q = headroom * cpu_s_per_purchase / largest.max(1) as f64;
    ((q * 100.0).floor() / 100.0).max(MIN_CPUS)
}

/// The rate `n` instances at `cpus` each would reach at their whole quota.
pub fn expected(n: usize, cpus: f64, cpu_s_per_purchase: f64) -> f64 {
    n as f64 * cpus / cpu_s_per_purchase
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_fleet_needs_at_most_the_headroom() {
        // Ceiling 800/s, 2 ms CPU per purchase: 4 instances get 0.2 CPU.
        let q = quota_for(400.0, 0.002, 4);
        assert!((q - 0.2).abs() < 1e-9, "{q}");
        assert!(expected(4, q, 0.002) <= 400.0 + 1e-9);
        // 2.5 ms: 0.25.
        assert!((quota_for(400.0, 0.0025, 4) - 0.25).abs() < 1e-9);
        // Never below the floor, even where the stack is slow.
        assert_eq!(quota_for(10.0, 0.001, 4), MIN_CPUS);
    }

    #[test]
    fn the_quota_is_sized_from_background_and_cost_per_purchase() {
        // An instance using 0.03 CPU idle plus 1 ms per purchase, whose
        // bound breaks at 90% of its quota: at 0.1 CPU it sustains 60/s.
        let (bg, per, used) = (0.03, 0.001, 0.9);
        let cpu = |r: f64| bg + per * r;
        let steps = [
            (20.0, cpu(20.0)),
            (40.0, cpu(40.0)),
            (60.0, cpu(60.0)),
            (90.0, 0.1),
        ];
        let s = size(0.1, 60.0, &steps, 150.0);
        assert!((s.background.unwrap() - bg).abs() < 1e-9, "{s:?}");
        assert!((s.cpu_ms_per_purchase.unwrap() - 1.0).abs() < 1e-9, "{s:?}");
        assert!((s.used_at_bound - used).abs() < 1e-9, "{s:?}");
        // 150/s needs (0.03 + 0.15) / 0.9 = 0.2 CPU, and the model says so back.
        assert!((s.cpus - 0.2).abs() < 1e-9, "{s:?}");
        assert!((s.rate_at(s.cpus) - 150.0).abs() < 1e-6);
        // Not in proportion: 2.5 x the rate needs 2 x the quota here.
        assert!(s.cpus < 0.1 * 150.0 / 60.0 - 0.04);
    }

    #[test]
    fn a_second_trial_fits_the_fixed_part_proportion_missed() {
        // Run 6's figures: 53/s at 0.11 CPU, no fit, so proportion sized
        // 0.199 CPU for 96/s; one instance then did 198/s at 0.19.
        let first = size(0.11, 53.0, &[(53.0, 0.109), (80.0, 0.11)], 96.0);
        assert!(needs_second(&first), "{first:?}");
        assert!((first.cpus - 0.199).abs() < 1e-3, "{first:?}");
        let s = refit(&first, 0.19, 198.0, 96.0).expect("a line");
        // Through both points...
        assert!((s.rate_at(0.11) - 53.0).abs() < 1e-6, "{s:?}");
        assert!((s.rate_at(0.19) - 198.0).abs() < 1e-6, "{s:?}");
        // ...so 96/s needs 0.11 + 43 x 0.08 / 145 = 0.134 CPU, not 0.199.
        assert!(
            (s.cpus - (0.11 + 43.0 * 0.08 / 145.0)).abs() < 1e-9,
            "{s:?}"
        );
        assert!((s.rate_at(s.cpus) - 96.0).abs() < 1e-6, "{s:?}");
        assert_eq!(
            s.second,
            Some(SecondTrial {
                cpus: 0.19,
                rate: 198.0
            })
        );
        // A fitted sizing within a quarter of its trial needs none.
        let near = Sizing {
            cpus: 0.13,
            background: Some(0.05),
            ..first
        };
        assert!(!needs_second(&near));
        assert!(needs_second(&Sizing { cpus: 0.14, ..near }));
    }

    #[test]
    fn a_trial_rate_counts_only_where_the_quota_held_the_instance() {
        let trial = |cpu: Option<f64>| -> Repeat {
            let usage = cpu.map(|cpu| {
                serde_json::json!({"secs": 5.0, "generatorCpu": 0.05, "generatorLate": 0.0,
                    "instances": [{"cpu": cpu, "quota": 0.2}], "shared": []})
            });
            let step = serde_json::json!({"rate": 100.0, "tps": 99.0, "achieved": 0.99,
                "p50Ms": 5.0, "p95Ms": 20.0, "p99Ms": 30.0, "p95RawMs": 20.0, "errorRate": 0.0, "pass": true,
                "dir": "x", "usage": usage});
            serde_json::from_value(serde_json::json!({"order": 0, "steps": [step.clone()],
                "best": step}))
            .unwrap()
        };
        assert_eq!(held_rate(&trial(Some(0.19)), 0.2), Some(99.0));
        assert_eq!(held_rate(&trial(None), 0.2), Some(99.0));
        // At 40% of its quota something else bounded it: no point on the line.
        assert_eq!(held_rate(&trial(Some(0.08)), 0.2), None);
        assert!(machine_share(4) > 0.0 && machine_share(4) <= machine_share(2));
    }

    #[test]
    fn two_trials_that_allow_no_line_give_no_refit() {
        let first = size(0.11, 53.0, &[], 96.0);
        // Rates within 20%: the quota made no measurable difference.
        assert_eq!(refit(&first, 0.19, 60.0, 96.0), None);
        // More quota, fewer purchases: no positive cost.
        assert_eq!(refit(&first, 0.19, 30.0, 96.0), None);
        // A fixed part below zero: 2.7 x the quota for 1.3 x the rate.
        assert_eq!(refit(&first, 0.30, 70.0, 96.0), None);
        // Nothing passed in the first trial.
        assert_eq!(refit(&size(0.11, 0.0, &[], 96.0), 0.19, 198.0, 96.0), None);
    }

    #[test]
    fn without_a_fit_the_quota_scales_in_proportion() {
        // Every step throttled: the quota, not the cost, is what they show.
        let s = size(0.1, 50.0, &[(50.0, 0.099), (70.0, 0.1)], 100.0);
        assert_eq!(s.background, None);
        assert!((s.cpus - 0.2).abs() < 1e-9, "{s:?}");
        assert!((s.rate_at(0.3) - 150.0).abs() < 1e-9);
    }
}
