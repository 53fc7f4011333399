//! Calibration before measuring: the shared stack's ceiling on this
//! machine (the highest purchase rate it sustains within the bounds, the
//! instances unconstrained), then the per-instance CPU quota that keeps
//! the largest fleet within half of it, so the instances, not the stack,
//! are what a fleet's size changes. One instance is then a fixed slice of
//! compute, like one cloud instance; the stack is what is shared.

use std::path::PathBuf;

use super::deploy::Deployment;
use super::results::{Calibration, Step};
use super::search::{Search, Start};

/// The unconstrained fleet the ceiling is measured with: two instances
/// can each take a core of this machine, more would only contend.
const FLEET: usize = 2;

/// Rates the ceiling's search may try, --quick too: every fleet's quota
/// follows from it, so it is worth a bracket where a repeat's is not.
const CEILING_STEPS: usize = 6;

/// The smallest quota an instance gets: below it a quota period is mostly
/// stall, which the latency bound feels more than the rate.
pub const MIN_CPUS: f64 = 0.08;

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
        trial: None,
        cpu_ms_per_purchase_at_quota: None,
        headroom: ceiling / 2.0,
        expected_largest: None,
        quota_from: String::new(),
        steps: repeat.steps,
    })
}

/// One instance saturated under `cpus` (closed model): the CPU seconds
/// per purchase of an instance at a quota, background work included.
pub(super) async fn trial<D: Deployment>(
    search: &Search<'_, D>,
    cpus: f64,
) -> anyhow::Result<(Step, Option<f64>)> {
    (search.progress)(&format!(
        "calibration: one instance saturated at {cpus:.2} CPU"
    ));
    let step = search
        .step(
            1,
            &PathBuf::from("calibration").join("trial"),
            None,
            Some(cpus),
        )
        .await?;
    let per = (step.tps > 0.0).then(|| cpus / step.tps);
    Ok((step, per))
}

/// The instances' CPU seconds per purchase during a step.
fn cpu_per_purchase(step: &Step) -> Option<f64> {
    let u = step.usage.as_ref()?;
    let cpu: f64 = u.instances.iter().map(|i| i.cpu).sum();
    (cpu > 0.0 && step.tps > 0.0).then(|| cpu / step.tps)
}

/// The quota that lets `largest` instances, each at its whole quota,
/// need at most the headroom: headroom x CPU per purchase / largest,
/// rounded down to 0.01 CPU and at least [`MIN_CPUS`].
pub fn quota_for(headroom: f64, cpu_s_per_purchase: f64, largest: usize) -> f64 {
    let q = headroom * cpu_s_per_purchase / largest.max(1) as f64;
    ((q * 100.0).floor() / 100.0).max(MIN_CPUS)
}

/// Whether `n` instances fit the headroom at a quota of at least
/// [`MIN_CPUS`].
pub fn fits(headroom: f64, cpu_s_per_purchase: f64, n: usize) -> bool {
    headroom * cpu_s_per_purchase / n as f64 >= MIN_CPUS
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
        // Eight get 0.1: they fit; at 0.5 ms per purchase they would not.
        assert!(fits(400.0, 0.002, 8));
        assert!(!fits(400.0, 0.0005, 8));
        // Never below the floor, even where the stack is slow.
        assert_eq!(quota_for(10.0, 0.001, 4), MIN_CPUS);
    }
}
