//! The search for one repeat of one fleet size: open-model rates, raised
//! while they pass and lowered while they fail, then bisected until the
//! passing and failing rates are within the run's resolution of each
//! other; each rate on a fresh fleet, judged against the P95, error and
//! achieved-rate bounds, with what every part used during its window.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use super::deploy::Deployment;
use super::limits::Usage;
use super::meters::{self, Sampler};
use super::results::{Bracket, Repeat, Step};
use super::ScaleArgs;
use crate::run::{self, RunArgs};
use crate::summary::RunSummary;

/// One scaling run's search, step by step.
pub(super) struct Search<'a, D: Deployment> {
    pub args: &'a ScaleArgs,
    pub deploy: &'a D,
    pub run_id: &'a str,
    pub step_secs: f64,
    pub probe_secs: f64,
    pub warmup: f64,
    pub max_steps: usize,
    pub resolution: f64,
    pub deadline: Instant,
    pub progress: &'a dyn Fn(&str),
}

/// Where a repeat's search begins.
#[derive(Debug, Clone, Copy)]
pub(super) enum Start {
    /// Nothing known: a closed-model probe, then 60% of what it reached.
    Probe,
    /// An estimate, and the factor to move by until the bound is crossed
    /// (small when the estimate is this fleet size's own earlier median).
    Rate(f64, f64),
}

impl<D: Deployment> Search<'_, D> {
    /// One load run on a fresh fleet of `n`, under `dir` (relative to the
    /// run's output).
    pub(super) async fn step(
        &self,
        n: usize,
        dir: &Path,
        rate: Option<f64>,
        cpus: Option<f64>,
    ) -> anyhow::Result<Step> {
        let label = dir
            .to_string_lossy()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "");
        let fleet = self.deploy.up(n, &label, cpus).await?;
        let out = self.args.out.join(dir);
        let mut args = RunArgs::new(
            self.deploy.hosts(&fleet),
            &self.args.admin_token,
            self.args.scenario,
            out.clone(),
        );
        args.rate = rate;
        args.users = rate.map_or(Some(16 * n), |_| None);
        args.duration = if rate.is_some() {
            self.step_secs
        } else {
            self.probe_secs
        };
        args.wait = self.args.wait;
        args.active_capacity = 100_000;
        args.warmup = self.warmup;
        args.run_id = Some(format!("{}-{label}", self.run_id));
        args.no_goose_report = true;
        let meters = self.deploy.meters(&fleet);
        let mut reads: Vec<meters::ReadFn> = meters
            .instances
            .iter()
            .chain(&meters.shared)
            .map(|m| m.read.clone())
            .collect();
        // The machine: its busy cores, then the time a task waited for one.
        for read in [meters::machine_cpu, meters::cpu_waiting] {
            reads.push(std::sync::Arc::new(move || {
                Some(meters::Reading {
                    busy_secs: read()?,
                    periods: None,
                })
            }));
        }
        let sampler = Sampler::start(reads);
        let summary = Box::pin(run::run(&args)).await;
        let usage = match &summary {
            Ok(s) => match window(s) {
                Some((from, to)) => sampler.finish(from, to).await,
                None => sampler.finish(SystemTime::now(), SystemTime::now()).await,
            }
            .map(|(secs, deltas)| Usage::from(&meters, secs, &deltas, s)),
            Err(_) => None,
        };
        self.deploy.down(fleet).await;
        // A run that could not be carried out (the stack refused the
        // set-up, say) is a failing step with its reason, not the end of
        // the whole scaling run.
        let mut step = match &summary {
            Ok(s) => judge(self.args, s, rate, &out),
            Err(e) => failed(rate, &out, format!("the load run failed: {e:#}")),
        };
        step.usage = usage;
        Ok(step)
    }

    /// One repeat's search for fleets of `n`, `max_steps` rates at most;
    /// its steps go under `dir`.
    pub(super) async fn repeat(
        &self,
        n: usize,
        order: usize,
        dir: PathBuf,
        (start, max_steps): (Start, usize),
        cpus: Option<f64>,
    ) -> anyhow::Result<Repeat> {
        let mut steps = Vec::new();
        let (mut rate, mut factor) = match start {
            Start::Rate(r, f) => (r, f),
            Start::Probe => {
                (self.progress)(&format!("{n} instance(s): capacity probe (closed model)"));
                let probe = self.step(n, &dir.join("probe"), None, cpus).await?;
                let r = (probe.tps * 0.6).max(5.0);
                steps.push(probe);
                (r, 1.3)
            }
        };
        let (mut lo, mut hi, mut hint): (Option<f64>, Option<f64>, Option<f64>) =
            (None, None, None);
        let mut over = 1.0;
        for k in 0..max_steps {
            if Instant::now() > self.deadline {
                break;
            }
            (self.progress)(&format!(
                "{n} instance(s), repeat {}: {rate:.0}/s",
                order + 1
            ));
            let step = self
                .step(n, &dir.join(format!("step{k}-{rate:.0}")), Some(rate), cpus)
                .await?;
            if step.pass {
                lo = Some(lo.map_or(rate, |l: f64| l.max(rate)));
            } else {
                if hi.is_none_or(|h| rate < h) {
                    over = step.p95_ms / self.args.p95_bound_ms;
                }
                hi = Some(hi.map_or(rate, |h: f64| h.min(rate)));
                if step.tps > 0.0 {
                    hint = Some(hint.map_or(step.tps, |t: f64| t.min(step.tps)));
                }
            }
            steps.push(step);
            match next_rate(lo, hi, hint, over, factor, self.resolution) {
                Some((r, f)) => (rate, factor) = (r, f),
                None => break,
            }
        }
        let best = steps
            .iter()
            .filter(|s| s.pass && s.rate.is_some())
            .max_by(|a, b| a.tps.total_cmp(&b.tps))
            .cloned();
        Ok(Repeat {
            order,
            steps,
            best,
            bracket: lo
                .zip(hi)
                .map(|(passed, failed)| Bracket { passed, failed }),
        })
    }
}

/// The next rate to try and the factor after it, from the highest
/// passing and lowest failing rates so far and the lowest TPS a failing
/// step reached (`hint`: a fleet offered more than it serves shows about
/// what it serves); `None` once the rates are within `resolution` of each
/// other. Until the bound is crossed the factor grows at each step, so a
/// poor estimate costs a few steps, not many; a failing rate whose P95 was
/// `over` times the bound (2 or more) at least halves the next.
pub(super) fn next_rate(
    lo: Option<f64>,
    hi: Option<f64>,
    hint: Option<f64>,
    over: f64,
    factor: f64,
    resolution: f64,
) -> Option<(f64, f64)> {
    let wider = 1.0 + (factor - 1.0) * 1.5;
    match (lo, hi) {
        (Some(l), Some(h)) if h <= l * (1.0 + resolution) + 1e-9 => None,
        (Some(l), Some(h)) => {
            let mid = (l + h) / 2.0;
            let next = match hint {
                Some(t) if t >= l * (1.0 - resolution) => mid.min(t.max(l * (1.0 + resolution))),
                _ => mid,
            };
            Some((next, factor))
        }
        (Some(l), None) => Some((l * factor, wider)),
        (None, Some(h)) => {
            let by = if over >= 2.0 { factor.max(2.0) } else { factor };
            Some(((h / by).min(hint.unwrap_or(f64::INFINITY)), wider))
        }
        (None, None) => None,
    }
}

/// The measured window of a step: from the recorder's start for the
/// step's duration.
fn window(s: &RunSummary) -> Option<(SystemTime, SystemTime)> {
    let from = time::OffsetDateTime::parse(
        &s.started_at,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    let from = SystemTime::from(from);
    Some((
        from,
        from + std::time::Duration::from_secs_f64(s.duration_secs),
    ))
}

/// A step whose load run did not complete.
fn failed(rate: Option<f64>, dir: &Path, reason: String) -> Step {
    Step {
        rate,
        tps: 0.0,
        achieved: None,
        backlog: None,
        p50_ms: 0.0,
        p95_ms: 0.0,
        p99_ms: 0.0,
        p95_raw_ms: 0.0,
        error_rate: 1.0,
        pass: false,
        reason: Some(reason),
        dir: dir.display().to_string(),
        usage: None,
    }
}

/// One step's figures, judged against the bounds. A closed-model probe
/// offers no rate, so it never passes: it only says where to start.
fn judge(args: &ScaleArgs, s: &RunSummary, rate: Option<f64>, dir: &Path) -> Step {
    let (p50, p95, p99, p95_raw) = s.headline().map_or((0.0, 0.0, 0.0, 0.0), |t| {
        let ms = |us: u64| us as f64 / 1000.0;
        (
            ms(t.corrected.p50),
            ms(t.corrected.p95),
            ms(t.corrected.p99),
            ms(t.raw.p95),
        )
    });
    let tps = s.tps();
    let error_rate = s.error_rate();
    let reason = match rate {
        None => None,
        Some(_) if p95 > args.p95_bound_ms => {
            Some(format!("P95 {p95:.1} ms > {} ms", args.p95_bound_ms))
        }
        Some(_) if error_rate > args.max_error_rate => Some(format!(
            "errors {:.3}% > {:.3}%",
            error_rate * 100.0,
            args.max_error_rate * 100.0
        )),
        Some(r) if tps < r * args.min_achieved => Some(format!(
            "achieved {tps:.0}/s of {r:.0}/s offered ({:.0}%)",
            tps / r * 100.0
        )),
        Some(_) => None,
    };
    Step {
        rate,
        tps,
        achieved: s.achieved,
        backlog: s.backlog.map(|b| b.total()),
        p50_ms: p50,
        p95_ms: p95,
        p99_ms: p99,
        p95_raw_ms: p95_raw,
        error_rate,
        pass: rate.is_some() && reason.is_none(),
        reason,
        dir: dir.display().to_string(),
        usage: None,
    }
}

#[cfg(test)]
mod tests {
    use super::next_rate;

    /// The search against a fleet whose bound lies exactly at `capacity`:
    /// the rates it tries, from `start`.
    /// Offered more, it serves `capacity`.
    fn search(capacity: f64, start: f64, factor: f64) -> (Vec<f64>, Option<f64>, Option<f64>) {
        let (mut rate, mut factor) = (start, factor);
        let (mut lo, mut hi, mut hint) = (None, None, None::<f64>);
        let mut tried = Vec::new();
        for _ in 0..20 {
            tried.push(rate);
            if rate <= capacity {
                lo = Some(lo.map_or(rate, |l: f64| l.max(rate)));
            } else {
                hi = Some(hi.map_or(rate, |h: f64| h.min(rate)));
                hint = Some(hint.map_or(capacity, |t| t.min(capacity)));
            }
            match next_rate(lo, hi, hint, 1.0, factor, 0.05) {
                Some(n) => (rate, factor) = n,
                None => break,
            }
        }
        (tried, lo, hi)
    }

    #[test]
    fn the_search_ends_with_a_bracket_within_the_resolution() {
        for (capacity, start, factor) in [
            (100.0, 60.0, 1.3),
            (100.0, 400.0, 1.3),
            (100.0, 98.0, 1.05),
            (100.0, 103.0, 1.05),
            (37.0, 20.0, 1.3),
        ] {
            let (tried, lo, hi) = search(capacity, start, factor);
            let (lo, hi) = (lo.unwrap(), hi.unwrap());
            assert!(lo <= capacity && capacity < hi, "{tried:?}");
            assert!(hi <= lo * 1.05 + 1e-9, "{lo}..{hi}: {tried:?}");
            assert!(tried.len() <= 6, "{capacity} from {start}: {tried:?}");
        }
        // Four times over: what the fleet served says where to go.
        assert!(search(100.0, 400.0, 1.3).0.len() <= 3);
        // Far over the bound (P95 at 8 times it): at least halved.
        let (next, _) = next_rate(None, Some(300.0), None, 8.0, 1.3, 0.05).unwrap();
        assert_eq!(next, 150.0);
        let (next, _) = next_rate(None, Some(300.0), None, 1.2, 1.3, 0.05).unwrap();
        assert!((next - 300.0 / 1.3).abs() < 1e-9);
        // From the fleet's own earlier median, two steps settle it.
        assert_eq!(search(100.0, 98.0, 1.05).0.len(), 2);
    }
}
