//! `loadgen scale`: N reference-server instances (1, 2, 4 by default) on
//! the shared real stack, each under the same CPU quota. For each N: the
//! highest arrival rate whose corrected P95 stays under the bound with
//! errors under the limit, then TPS(N), P95(N) and efficiency(N) =
//! TPS(N) / (N x TPS(1)). verify's over-selling check runs against every
//! fleet: a fast wrong answer is not a result.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cgroup::{Controller, Flavour};
use crate::instances::{Backend, Fleet, ServerSpec};
use crate::machine::Machine;
use crate::run::{self, RunArgs};
use crate::scenarios::{Kind, Wait};
use crate::summary::RunSummary;

#[derive(clap::Args, Debug, Clone)]
pub struct ScaleArgs {
    /// Instance counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub instances: Vec<usize>,
    /// CPUs each instance may use (its cgroup quota).
    /// (0.15 by default: four instances then take 0.6 of this 2-core
    /// machine, leaving the shared stack and the generator the rest, so
    /// the instances, not the machine, are what scales.)
    #[arg(long, default_value_t = 0.15)]
    pub cpus_per_instance: f64,
    /// Run without CPU quotas where none can be set (the report says so).
    #[arg(long)]
    pub no_cpu_quota: bool,
    #[arg(long, value_enum, default_value = "flash-sale")]
    pub scenario: Kind,
    #[arg(long, value_enum, default_value = "sse")]
    pub wait: Wait,
    /// A rate passes when its corrected P95 is under this many ms...
    #[arg(long, default_value_t = 50.0)]
    pub p95_bound_ms: f64,
    /// ...its error rate under this fraction...
    #[arg(long, default_value_t = 0.001)]
    pub max_error_rate: f64,
    /// ...and it achieves at least this share of the offered rate.
    #[arg(long, default_value_t = 0.95)]
    pub min_achieved: f64,
    /// Seconds of load per measured rate.
    #[arg(long, default_value_t = 10.0)]
    pub step_secs: f64,
    /// Rates tried per instance count (after the capacity probe).
    #[arg(long, default_value_t = 6)]
    pub max_steps: usize,
    /// Stop searching (report what was measured) after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub max_secs: u64,
    /// About a minute and a half: 3 s steps after 2 s of warm-up, 3 rates
    /// per instance count.
    #[arg(long)]
    pub quick: bool,
    /// The ticket-server binary [default: next to loadgen].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    #[arg(long, env = "ADMIN_TOKEN", default_value = "scale-admin")]
    pub admin_token: String,
    #[arg(long, default_value = "scale-out")]
    pub out: PathBuf,
    /// Names the run [default: time-based].
    #[arg(long)]
    pub run_id: Option<String>,
    #[arg(long, short)]
    pub quiet: bool,
}

impl ScaleArgs {
    /// Refuses bad options before any instance is started.
    pub fn validate(&self) -> anyhow::Result<()> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        anyhow::ensure!(
            !self.instances.is_empty() && self.instances.iter().all(|&n| n >= 1),
            "--instances must list counts of at least 1"
        );
        anyhow::ensure!(
            self.cpus_per_instance > 0.0 && self.cpus_per_instance <= cores,
            "--cpus-per-instance must be above 0 and at most the {cores} CPUs of this machine"
        );
        anyhow::ensure!(
            self.p95_bound_ms > 0.0 && self.p95_bound_ms.is_finite(),
            "--p95-bound-ms must be a positive number"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.max_error_rate),
            "--max-error-rate must be a fraction between 0 and 1"
        );
        anyhow::ensure!(
            self.min_achieved > 0.0 && self.min_achieved <= 1.0,
            "--min-achieved must be a fraction above 0 and at most 1"
        );
        anyhow::ensure!(
            self.step_secs > 0.0 && self.step_secs.is_finite(),
            "--step-secs must be a positive number"
        );
        anyhow::ensure!(self.max_steps >= 1, "--max-steps must be at least 1");
        Ok(())
    }

    fn effective(&self) -> (f64, usize, f64) {
        if self.quick {
            (3.0, 3.min(self.max_steps), 2.0)
        } else {
            (self.step_secs, self.max_steps, 3.0)
        }
    }
}

/// One measured rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Offered iterations per second (`None`: the closed-model probe).
    pub rate: Option<f64>,
    pub tps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p95_raw_ms: f64,
    pub error_rate: f64,
    pub pass: bool,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub instances: usize,
    pub steps: Vec<Step>,
    /// The highest passing rate's step.
    pub best: Option<Step>,
    pub efficiency: Option<f64>,
    pub verify_pass: bool,
    pub verify_headline: String,
    /// Quota periods in which an instance was throttled, summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_periods: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleReport {
    pub run_id: String,
    pub started_at: String,
    pub machine: Machine,
    pub quota: Flavour,
    pub cpus_per_instance: f64,
    pub scenario: String,
    pub p95_bound_ms: f64,
    pub max_error_rate: f64,
    pub step_secs: f64,
    pub points: Vec<Point>,
    /// Set when the run was not (fully) carried out, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub elapsed_secs: f64,
}

impl ScaleReport {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        crate::summary::read_json(path)
    }

    /// A report for a scaling run that could not take place.
    pub fn skipped(run_id: &str, reason: String) -> Self {
        ScaleReport {
            run_id: run_id.into(),
            started_at: now_rfc3339(),
            machine: Machine::detect(),
            quota: Flavour::None,
            cpus_per_instance: 0.0,
            scenario: String::new(),
            p95_bound_ms: 0.0,
            max_error_rate: 0.0,
            step_secs: 0.0,
            points: Vec::new(),
            skipped: Some(reason),
            elapsed_secs: 0.0,
        }
    }

    pub fn tps_of(&self, n: usize) -> Option<f64> {
        self.points
            .iter()
            .find(|p| p.instances == n)
            .and_then(|p| p.best.as_ref())
            .map(|b| b.tps)
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Runs the scaling run; `progress` hears each step.
pub async fn run(args: &ScaleArgs, progress: &dyn Fn(&str)) -> anyhow::Result<ScaleReport> {
    args.validate()?;
    let started = Instant::now();
    let run_id = args.run_id.clone().unwrap_or_else(run::default_run_id);
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
    std::fs::create_dir_all(&args.out)?;
    let (step_secs, max_steps, probe_secs) = args.effective();
    let mut report = ScaleReport {
        run_id: run_id.clone(),
        started_at: now_rfc3339(),
        machine: Machine::detect(),
        quota: controller.flavour,
        cpus_per_instance: if controller.flavour == Flavour::None {
            0.0
        } else {
            args.cpus_per_instance
        },
        scenario: args.scenario.name().into(),
        p95_bound_ms: args.p95_bound_ms,
        max_error_rate: args.max_error_rate,
        step_secs,
        points: Vec::new(),
        skipped: None,
        elapsed_secs: 0.0,
    };
    let search = Search {
        args,
        controller: &controller,
        run_id: &run_id,
        step_secs,
        probe_secs,
        max_steps,
        deadline: started + Duration::from_secs(args.max_secs),
        progress,
    };
    let mut per_instance_tps: Option<f64> = None;
    for &n in &args.instances {
        if Instant::now() > search.deadline {
            report.skipped = Some(format!(
                "stopped at the --max-secs bound ({} s) before {n} instances",
                args.max_secs
            ));
            break;
        }
        let point = Box::pin(search.point(n, per_instance_tps)).await?;
        if per_instance_tps.is_none() {
            per_instance_tps = point.best.as_ref().map(|b| b.tps / n as f64);
        }
        report.points.push(point);
    }
    // Efficiency against one instance's TPS (measured, or scaled from the
    // smallest fleet when 1 is not among --instances).
    let base = report
        .points
        .first()
        .and_then(|p| p.best.as_ref().map(|b| b.tps / p.instances as f64));
    for point in &mut report.points {
        point.efficiency = match (&point.best, base) {
            (Some(best), Some(base)) if base > 0.0 && point.verify_pass => {
                Some(best.tps / (point.instances as f64 * base))
            }
            _ => None,
        };
    }
    report.elapsed_secs = started.elapsed().as_secs_f64();
    std::fs::write(
        args.out.join("scale.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}

/// One scaling run's search, fleet by fleet.
struct Search<'a> {
    args: &'a ScaleArgs,
    controller: &'a Controller,
    run_id: &'a str,
    step_secs: f64,
    probe_secs: f64,
    max_steps: usize,
    deadline: Instant,
    progress: &'a dyn Fn(&str),
}

impl Search<'_> {
    /// A fresh fleet of `n` for one step. Every step gets its own
    /// namespace (topics, keys, schema) so each starts from empty topics:
    /// tansu's memory store lists a partition's every batch on each fetch,
    /// so a topic that grew in earlier steps would slow later ones.
    async fn fleet(&self, n: usize, step: &str) -> anyhow::Result<Fleet> {
        let spec = ServerSpec {
            bin: self
                .args
                .server_bin
                .clone()
                .unwrap_or_else(ServerSpec::default_bin),
            backend: Backend::Real,
            admin_token: self.args.admin_token.clone(),
            token_secret: format!("scale-secret-{}", self.run_id),
            namespace: namespace(self.run_id, n, step),
            log_dir: self.args.out.join("logs"),
        };
        Fleet::start(
            &spec,
            n,
            self.controller,
            self.args.cpus_per_instance,
            &format!("n{n}-{step}"),
        )
        .await
    }

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
    async fn point(&self, n: usize, per_instance_tps: Option<f64>) -> anyhow::Result<Point> {
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
            verify_pass,
            verify_headline,
            throttled_periods: throttled,
        })
    }
}

fn namespace(run_id: &str, n: usize, step: &str) -> String {
    let clean: String = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let tail = &clean[clean.len().saturating_sub(20)..];
    format!("sc{tail}_n{n}_{step}")
}

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
        Some(r) if tps < r * args.min_achieved => {
            Some(format!("achieved {tps:.0}/s of {r:.0}/s offered"))
        }
        Some(_) => None,
    };
    Step {
        rate,
        tps,
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

/// verify's over-selling check against the fleet.
async fn guard(hosts: &[String], admin_token: &str, out: &Path) -> anyhow::Result<(bool, String)> {
    let target = verify::Target::external_many(hosts, Some(admin_token))
        .map_err(|e| anyhow::anyhow!("verify: {e}"))?;
    let mut options = verify::Options::defaults();
    options.checks = vec![verify::CheckName::Oversell];
    options.quiet = true;
    options.out = out.to_owned();
    let outcome = verify::run_against(&target, &options)
        .await
        .map_err(|e| anyhow::anyhow!("verify: {e}"))?;
    outcome.verdict.write(out, &outcome.history)?;
    Ok((outcome.verdict.pass, outcome.verdict.headline.clone()))
}
