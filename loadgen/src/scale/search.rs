//! The search for one fleet size: a closed-model capacity probe, then
//! open-model rates, raised while they pass and bisected once one fails,
//! each judged against the P95, error and achieved-rate bounds.

use std::path::Path;
use std::time::Instant;

use super::fleet::guard;
use super::results::{Point, Step};
use super::ScaleArgs;
use crate::cgroup::Controller;
use crate::run::{self, RunArgs};
use crate::summary::RunSummary;

/// One scaling run's search, fleet by fleet.
pub(super) struct Search<'a> {
    pub args: &'a ScaleArgs,
    pub controller: &'a Controller,
    pub run_id: &'a str,
    pub step_secs: f64,
    pub probe_secs: f64,
    pub max_steps: usize,
    pub deadline: Instant,
    pub progress: &'a dyn Fn(&str),
}

impl Search<'_> {
    /// One load run on a fresh fleet of `n`.
    async fn step(
        &self,
        n: usize,
        k: usize,
        rate: Option<f64>,
    ) -> anyhow::Result<(Step, Option<u64>)> {
        let fleet = self.fleet(n, &format!("s{k}")).await?;
        let label = rate.map_or("probe".to_owned(), |r| format!("{r:.0}"));
        let mut args = RunArgs::new(
            fleet.hosts(),
            &self.args.admin_token,
            self.args.scenario,
            self.args
                .out
                .join(format!("n{n}"))
                .join(format!("step{k}-{label}")),
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
        args.warmup = if self.args.quick { 2.0 } else { 3.0 };
        args.run_id = Some(format!("{}-n{n}-s{k}", self.run_id));
        args.no_goose_report = true;
        let summary = Box::pin(run::run(&args)).await;
        let throttled = fleet
            .instances
            .iter()
            .filter_map(|i| i.throttled_periods())
            .reduce(|a, b| a + b);
        fleet.stop().await;
        Ok((judge(self.args, &summary?, rate, &args.out), throttled))
    }

    /// The capacity probe, the rate search and the over-selling guard for
    /// fleets of `n`.
    pub(super) async fn point(
        &self,
        n: usize,
        per_instance_tps: Option<f64>,
    ) -> anyhow::Result<Point> {
        let progress = self.progress;
        progress(&format!("{n} instance(s): capacity probe (closed model)"));
        let mut steps = Vec::new();
        let mut throttled: Option<u64> = None;
        let mut add = |t: Option<u64>| {
            if let Some(t) = t {
                throttled = Some(throttled.unwrap_or(0) + t);
            }
        };
        let (probe, t) = Box::pin(self.step(n, 0, None)).await?;
        add(t);
        // Start below what the closed model reached, or near what one
        // instance sustained times n.
        let closed = probe.tps;
        steps.push(probe);
        let mut rate = match per_instance_tps {
            Some(one) => (one * n as f64 * 0.95).max(closed * 0.5),
            None => closed * 0.6,
        }
        .max(10.0);
        let (mut lo, mut hi): (f64, Option<f64>) = (0.0, None);
        for k in 1..=self.max_steps {
            if Instant::now() > self.deadline {
                break;
            }
            progress(&format!("{n} instance(s): {rate:.0}/s"));
            let (judged, t) = Box::pin(self.step(n, k, Some(rate.round()))).await?;
            add(t);
            if judged.pass {
                lo = rate;
            } else {
                hi = Some(rate);
            }
            steps.push(judged);
            rate = match hi {
                None => rate * 1.3,
                Some(h) if lo > 0.0 => (lo + h) / 2.0,
                Some(h) => h * 0.7,
            };
            if let Some(h) = hi {
                if lo > 0.0 && (h - lo) / lo < 0.05 {
                    break;
                }
            }
        }
        progress(&format!("{n} instance(s): verify (over-selling)"));
        let fleet = self.fleet(n, "verify").await?;
        let guard = guard(
            &fleet.hosts(),
            &self.args.admin_token,
            &self.args.out.join(format!("n{n}")).join("verify"),
        )
        .await;
        fleet.stop().await;
        let (verify_pass, verify_headline) = guard?;
        let best = steps
            .iter()
            .filter(|s| s.pass && s.rate.is_some())
            .max_by(|a, b| a.tps.total_cmp(&b.tps))
            .cloned();
        Ok(Point {
            instances: n,
            steps,
            best,
            efficiency: None,
            efficiency_flagged: false,
            verify_pass,
            verify_headline,
            throttled_periods: throttled,
        })
    }
}

/// One step's figures, judged against the bounds. The closed-model probe
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
    let achieved = s.achieved;
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
        achieved,
        backlog: s.backlog.map(|b| b.total()),
        p50_ms: p50,
        p95_ms: p95,
        p99_ms: p99,
        p95_raw_ms: p95_raw,
        error_rate,
        pass: rate.is_some() && reason.is_none(),
        reason,
        dir: dir.display().to_string(),
    }
}
