//! `loadgen scale`: how a sale's throughput scales with instances. First
//! the shared stack's ceiling is measured and each instance's CPU quota
//! chosen so the largest fleet needs at most half of it (`calibrate`);
//! then every fleet size (1, 2, 4, and 8 where it fits) is measured in
//! several repeats in an interleaved order (1, 2, 4, 4, 2, 1, ...), each
//! on fresh fleets, each searching the highest rate within the P95, error
//! and achieved-rate bounds to a bracket of about 5%. Per fleet size: the
//! median TPS with its spread, efficiency = TPS(N) / (N x TPS(1)) with an
//! interval and a verdict (pass, fail, inconclusive against 90%), what
//! limited it, and verify's over-selling check (a fast wrong answer is not
//! a result); over all, the Universal Scalability Law fitted to them.
//!
//! - `deploy`: the interface every fleet implements; `fleet` (the bundled
//!   ticket-server processes) and `command` (`--fleet-cmd`) implement it.
//! - `calibrate`: the ceiling and the quota.
//! - `search`: one repeat's rate search; `meters` and [`limits`]: what
//!   each part used during a step, and what limited it.
//! - [`stats`] and [`usl`]: the interval arithmetic and the model.
//! - [`results`]: what was measured (`scale.json`); `args`: the options.

mod args;
mod calibrate;
mod command;
pub mod deploy;
mod fleet;
pub mod limits;
pub mod meters;
pub mod results;
mod search;
pub mod speed;
pub mod stats;
pub mod usl;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cgroup::{Controller, Flavour};
use crate::instances::ServerSpec;
use crate::run;

pub use args::ScaleArgs;
use deploy::Deployment;
pub use results::{Bracket, Calibration, Point, Repeat, ScaleReport, Sizing, Step, FLAG_TEXT};
use search::{Search, Start};

/// The quota used when calibration found no CPU per purchase.
const FALLBACK_CPUS: f64 = 0.15;

/// Runs the scaling run on the bundled fleet or, with --fleet-cmd, on the
/// user's deployment; `progress` hears each step.
pub async fn run(args: &ScaleArgs, progress: &dyn Fn(&str)) -> anyhow::Result<ScaleReport> {
    args.validate()?;
    if let (Some(fleet_cmd), Some(hosts_cmd)) = (&args.fleet_cmd, &args.hosts_cmd) {
        let deploy = command::Commands {
            fleet_cmd: fleet_cmd.clone(),
            hosts_cmd: hosts_cmd.clone(),
            ready_within: Duration::from_secs(120),
        };
        return Box::pin(run_with(args, &deploy, progress)).await;
    }
    let controller = match Controller::detect() {
        Ok(c) => c,
        Err(e) if args.no_cpu_quota => {
            progress(&format!(
                "no CPU quota ({e}); running without (--no-cpu-quota)"
            ));
            Controller::none()
        }
        Err(e) => anyhow::bail!(
            "{e}. The scaling run gives every instance the same CPU quota; \
             pass --no-cpu-quota to run without one (the report will say so)"
        ),
    };
    for var in ["REDIS_URL", "KAFKA_BROKERS", "POSTGRES_URL"] {
        if std::env::var_os(var).is_none() {
            anyhow::bail!(
                "{var} is not set: the scaling run needs the shared real stack \
                 (start it with `scripts/services.sh start` and `eval \"$(scripts/services.sh env)\"`)"
            );
        }
    }
    let run_id = args.run_id.clone().unwrap_or_else(run::default_run_id);
    let deploy = fleet::Bundled {
        bin: args
            .server_bin
            .clone()
            .unwrap_or_else(ServerSpec::default_bin),
        admin_token: args.admin_token.clone(),
        run_id,
        log_dir: args.out.join("logs"),
        controller,
    };
    Box::pin(run_with(args, &deploy, progress)).await
}

/// The run, order 1, 2, 4, 4, 2, 1, 1, 2, 4, ...: `repeats` passes over
/// `instances`, every other one reversed, so a drift of the machine over
/// the run falls on every fleet size alike.
pub fn interleaved(instances: &[usize], repeats: usize) -> Vec<(usize, usize)> {
    (0..repeats)
        .flat_map(|r| {
            let mut pass: Vec<usize> = instances.to_vec();
            if r % 2 == 1 {
                pass.reverse();
            }
            pass.into_iter().map(move |n| (r, n))
        })
        .collect()
}

/// The scaling run on any deployment; the deployment is finished (a
/// fleet command brought to 0) whatever the outcome.
pub async fn run_with<D: Deployment>(
    args: &ScaleArgs,
    deploy: &D,
    progress: &dyn Fn(&str),
) -> anyhow::Result<ScaleReport> {
    args.validate()?;
    let outcome = Box::pin(measure(args, deploy, progress)).await;
    deploy.finish().await;
    outcome
}

async fn measure<D: Deployment>(
    args: &ScaleArgs,
    deploy: &D,
    progress: &dyn Fn(&str),
) -> anyhow::Result<ScaleReport> {
    let started = Instant::now();
    let run_id = args.run_id.clone().unwrap_or_else(run::default_run_id);
    std::fs::create_dir_all(&args.out)?;
    let e = args.effective();
    let search = Search {
        args,
        deploy,
        run_id: &run_id,
        step_secs: e.step_secs,
        probe_secs: e.probe_secs,
        warmup: e.warmup,
        max_steps: e.max_steps,
        resolution: e.resolution,
        deadline: started + Duration::from_secs(args.max_secs),
        progress,
    };
    let mut report = ScaleReport::skipped(&run_id, String::new());
    report.skipped = None;
    report.quota = deploy.quota();
    report.fleet = deploy.describe();
    report.scenario = args.scenario.name().into();
    report.p95_bound_ms = args.p95_bound_ms;
    report.max_error_rate = args.max_error_rate;
    report.min_achieved = Some(args.min_achieved);
    report.step_secs = e.step_secs;
    report.repeats = args.repeats;
    report.resolution = e.resolution;

    let mut instances = args.instances.clone();
    let mut cpus = None;
    let mut sizing = None;
    let mut largest_default = 4;
    if deploy.quota() != Flavour::None {
        let mut c = Box::pin(calibrate::ceiling(&search)).await?;
        let unconstrained = c.cpu_ms_per_purchase.map(|ms| ms / 1000.0);
        // A trial quota from the unconstrained CPU per purchase, doubled
        // (a quota'd instance at a modest rate spends more per purchase
        // than two free ones at the ceiling); what one instance sustains
        // under it sizes the real quota.
        if let (Some(p), None) = (unconstrained, args.cpus_per_instance) {
            let first = calibrate::quota_for(c.headroom, 2.0 * p, 4);
            let estimate = 0.7 * c.headroom / 4.0;
            let trial = Box::pin(calibrate::trial(&search, "trial", first, estimate)).await?;
            let listed = instances.as_ref().and_then(|l| l.iter().copied().max());
            let fleet = |size: &dyn Fn(f64) -> Option<Sizing>| {
                largest_fleet(size, c.headroom, listed, args.quick)
            };
            (sizing, largest_default) = fleet(&|t| calibrate::sizing(&trial, first, t));
            c.steps.extend(trial.steps);
            if let Some(guess) = sizing.filter(calibrate::needs_second) {
                let (q, target) = (
                    calibrate::round_quota(guess.cpus)
                        .min(calibrate::machine_share(largest_default)),
                    c.headroom / largest_default as f64,
                );
                let second = Box::pin(calibrate::trial(&search, "trial-2", q, target)).await?;
                let rate = calibrate::held_rate(&second, q)
                    .filter(|&rate| calibrate::refit(&guess, q, rate, target).is_some());
                match rate {
                    Some(rate) => {
                        (sizing, largest_default) =
                            fleet(&|t| calibrate::refit(&guess, q, rate, t));
                    }
                    None => report.warnings.push(format!(
                        "calibration: a second trial at {q:.2} CPU gave no line through the \
                         first (no passing rate that its quota held, or one within 20% of the \
                         first trial's): the quota stays as the first trial sized it"
                    )),
                }
                c.steps.extend(second.steps);
            }
        }
        let list = instances.get_or_insert_with(|| {
            [1, 2, 4, 8]
                .into_iter()
                .filter(|&n| n <= largest_default)
                .collect()
        });
        let largest = list.iter().copied().max().unwrap_or(1);
        let q = match (args.cpus_per_instance, sizing) {
            (Some(q), _) => {
                c.quota_from = "--cpus-per-instance".into();
                q
            }
            (None, Some(s)) => {
                c.quota_from = "calibrated".into();
                let share = calibrate::machine_share(largest);
                if s.cpus > share {
                    report.warnings.push(format!(
                        "the calibrated quota ({:.2} CPU) is capped at {share:.2} CPU, the \
                         machine's cores shared among {largest} instances",
                        s.cpus
                    ));
                }
                calibrate::round_quota(s.cpus.min(share))
            }
            (None, None) => {
                c.quota_from = "fallback (calibration found no passing rate)".into();
                report.warnings.push(format!(
                    "calibration found no passing rate (unconstrained, or one instance under a \
                     trial quota): each instance gets {FALLBACK_CPUS} CPU, not a calibrated quota"
                ));
                FALLBACK_CPUS
            }
        };
        c.expected_largest = match sizing {
            Some(s) => Some(largest as f64 * s.rate_at(q)),
            None => unconstrained.map(|p| calibrate::expected(largest, q, p)),
        };
        c.sizing = sizing;
        cpus = Some(q);
        report.cpus_per_instance = q;
        report.cfs_period_us = Some(crate::cgroup::period_us(q));
        report.calibration = Some(c);
    } else if let Some(q) = args.cpus_per_instance {
        report.warnings.push(format!(
            "--cpus-per-instance {q} is not applied: {} sizes its own instances",
            deploy.describe()
        ));
    }
    let instances = instances.unwrap_or_else(|| vec![1, 2, 4]);
    report.points = instances.iter().map(|&n| results::Point::new(n)).collect();

    for (order, (round, n)) in interleaved(&instances, args.repeats)
        .into_iter()
        .enumerate()
    {
        if Instant::now() > search.deadline {
            report.skipped = Some(format!(
                "stopped at the --max-secs bound ({} s) before repeat {} of {n} instances",
                args.max_secs,
                round + 1
            ));
            break;
        }
        let start = start_for(&report, n, cpus, sizing, e.resolution);
        let dir = PathBuf::from(format!("n{n}")).join(format!("r{}", round + 1));
        let repeat = Box::pin(search.repeat(n, order, dir, (start, e.max_steps), cpus)).await?;
        if let Some(p) = report.points.iter_mut().find(|p| p.instances == n) {
            p.repeats.push(repeat);
            p.derive_tps();
        }
    }
    for p in &mut report.points {
        (p.verify_pass, p.verify_headline) = if args.no_verify {
            (true, "not checked (--no-verify)".into())
        } else {
            progress(&format!(
                "{} instance(s): verify (over-selling)",
                p.instances
            ));
            let fleet = deploy
                .up(p.instances, &format!("verify{}", p.instances), cpus)
                .await?;
            let out = args.out.join(format!("n{}", p.instances)).join("verify");
            let guard = fleet::guard(&deploy.hosts(&fleet), &args.admin_token, &out).await;
            deploy.down(fleet).await;
            guard?
        };
    }
    report.derive();
    for p in &mut report.points {
        p.limit = limits::point_limit(p);
    }
    headroom_warning(&mut report);
    report.elapsed_secs = started.elapsed().as_secs_f64();
    let judged: Vec<_> = args
        .thresholds()?
        .iter()
        .map(|t| crate::thresholds::judge(t, &[], Some(&report)))
        .collect();
    if !judged.is_empty() {
        crate::thresholds::write_junit(&judged, "thresholds", &args.out.join("junit.xml"))?;
    }
    report.thresholds = judged;
    std::fs::write(
        args.out.join("scale.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}

/// The sizing for the largest fleet and its size: the listed largest, or
/// by default eight when each of them still gets a slice its fixed work
/// does not dominate, else four. `size` gives the sizing for a target
/// rate per instance.
fn largest_fleet(
    size: &dyn Fn(f64) -> Option<Sizing>,
    headroom: f64,
    listed: Option<usize>,
    quick: bool,
) -> (Option<Sizing>, usize) {
    match listed {
        Some(l) => (size(headroom / l as f64), l),
        None => {
            match size(headroom / 8.0).filter(|s| !quick && s.cpus >= calibrate::EIGHT_MIN_CPUS) {
                Some(eight) => (Some(eight), 8),
                None => (size(headroom / 4.0), 4),
            }
        }
    }
}

/// Warns when the largest fleet's rate exceeds the headroom: as measured
/// (N x the first size's per-instance median) where it was, else as the
/// calibration expected it (from one instance under a trial quota), so
/// the measurement decides when there is one.
fn headroom_warning(report: &mut ScaleReport) {
    let Some(c) = &report.calibration else { return };
    let Some(largest) = report.points.iter().map(|p| p.instances).max() else {
        return;
    };
    let measured = report
        .points
        .first()
        .and_then(|p| Some(p.tps? / p.instances as f64 * largest as f64));
    let (rate, how) = match (measured, c.expected_largest) {
        (Some(m), _) => (m, "reach (N x TPS(1) as measured)"),
        (None, Some(x)) => (x, "are expected to reach (sized from the trial)"),
        (None, None) => return,
    };
    if rate > c.headroom {
        let text = format!(
            "{largest} instances at {:.2} CPU each {how} {rate:.0}/s, above the headroom of \
             {:.0}/s (half the stack's ceiling of {:.0}/s): at that size the shared stack, not \
             the instances, may be what is measured",
            report.cpus_per_instance, c.headroom, c.ceiling
        );
        report.warnings.push(text);
    }
}

/// Where a repeat of `n` starts: this size's own median so far; else the
/// smallest measured fleet's per-instance TPS times `n`; else what the
/// calibration expects of the quota; else a probe.
fn start_for(
    report: &ScaleReport,
    n: usize,
    cpus: Option<f64>,
    sizing: Option<Sizing>,
    resolution: f64,
) -> Start {
    if let Some(t) = report.tps_of(n) {
        return Start::Rate(t, 1.0 + resolution);
    }
    let per_instance = report
        .points
        .iter()
        .find_map(|p| Some(p.tps? / p.instances as f64));
    if let Some(one) = per_instance {
        return Start::Rate(one * n as f64 * 0.95, 1.0 + 2.0 * resolution);
    }
    match (cpus, sizing) {
        (Some(q), Some(s)) => Start::Rate(0.95 * n as f64 * s.rate_at(q), 1.0 + 3.0 * resolution),
        _ => Start::Probe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headroom_warning_follows_the_measurement_over_the_estimate() {
        let mut r = ScaleReport::skipped("t", String::new());
        r.cpus_per_instance = 0.08;
        r.calibration = Some(Calibration {
            instances: 2,
            ceiling: 200.0,
            bracket: None,
            cpu_ms_per_purchase: None,
            sizing: None,
            headroom: 100.0,
            expected_largest: Some(500.0),
            quota_from: "calibrated".into(),
            steps: Vec::new(),
        });
        r.points = vec![Point::new(1), Point::new(4)];
        // Nothing measured: the estimate warns.
        headroom_warning(&mut r);
        assert!(
            r.warnings[0].contains("expected to reach"),
            "{:?}",
            r.warnings
        );
        // Measured 4 x 20 = 80/s: within the headroom, whatever the estimate.
        r.warnings.clear();
        r.points[0].tps = Some(20.0);
        headroom_warning(&mut r);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        r.points[0].tps = Some(30.0);
        headroom_warning(&mut r);
        assert!(
            r.warnings[0].contains("reach (N x TPS(1) as measured) 120/s"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn repeats_interleave_up_and_down() {
        let order: Vec<usize> = super::interleaved(&[1, 2, 4], 3)
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(order, [1, 2, 4, 4, 2, 1, 1, 2, 4]);
    }
}
