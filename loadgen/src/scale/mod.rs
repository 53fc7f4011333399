//! `loadgen scale`: N reference-server instances (1, 2, 4 by default) on
//! the shared real stack, each under the same CPU quota. For each N: the
//! highest arrival rate whose corrected P95 stays under the bound with
//! errors under the limit and the rate achieved (TPS counted inside the
//! measured window), then TPS(N), P95(N) and efficiency(N) =
//! TPS(N) / (N x TPS(1)), flagged above 100% beyond its allowance. verify's over-selling check runs against every
//! fleet: a fast wrong answer is not a result.
//!
//! - `search`: the capacity probe and the rate search for one fleet size.
//! - `fleet`: fresh fleets for each step, and the over-selling check.
//! - [`results`]: what was measured (`scale.json`), and efficiency.

mod fleet;
pub mod results;
mod search;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cgroup::{Controller, Flavour};
use crate::machine::Machine;
use crate::run;
use crate::scenarios::{Kind, Wait};

use results::now_rfc3339;
pub use results::{efficiency_flagged, Point, ScaleReport, Step, EFFICIENCY_ALLOWANCE, FLAG_TEXT};
use search::Search;

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

    /// Step seconds, rates per fleet and probe seconds, shortened by --quick.
    fn effective(&self) -> (f64, usize, f64) {
        if self.quick {
            (3.0, 3.min(self.max_steps), 2.0)
        } else {
            (self.step_secs, self.max_steps, 3.0)
        }
    }
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
        min_achieved: Some(args.min_achieved),
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
    report.set_efficiency();
    report.elapsed_secs = started.elapsed().as_secs_f64();
    std::fs::write(
        args.out.join("scale.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}
