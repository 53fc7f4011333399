//! The scaling run's options, and what --quick makes of them.

use std::path::PathBuf;

use crate::scenarios::{Kind, Wait};

#[derive(clap::Args, Debug, Clone)]
pub struct ScaleArgs {
    /// Instance counts to measure [default: 1,2,4, and 8 where the
    /// calibrated quota lets eight fit; --quick: 1,2,4].
    #[arg(long, value_delimiter = ',')]
    pub instances: Option<Vec<usize>>,
    /// CPUs each instance may use (its cgroup quota) [default: calibrated,
    /// so the largest fleet needs at most half the stack's ceiling]. Given,
    /// it overrides, and the report warns when the largest fleet's
    /// expected rate exceeds that headroom.
    #[arg(long)]
    pub cpus_per_instance: Option<f64>,
    /// Run without CPU quotas where none can be set (the report says so).
    #[arg(long)]
    pub no_cpu_quota: bool,
    /// Repeats of each instance count, interleaved, each on fresh fleets.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// The search stops once the passing and failing rates are within
    /// this share of each other.
    #[arg(long, default_value_t = 0.05)]
    pub resolution: f64,
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
    /// Seconds of load per measured rate [default: 5; --quick: 2].
    #[arg(long)]
    pub step_secs: Option<f64>,
    /// Seconds of unrecorded purchases before each step [default: 2;
    /// --quick: 0.5].
    #[arg(long)]
    pub warmup_secs: Option<f64>,
    /// Rates tried per repeat at most.
    #[arg(long, default_value_t = 6)]
    pub max_steps: usize,
    /// Stop (report what was measured) after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub max_secs: u64,
    /// Short: 2 s steps after 0.5 s of warm-up, a bracket of 10% (or the
    /// --resolution given, if coarser), at most 3 rates per repeat, 1,2,4.
    #[arg(long)]
    pub quick: bool,
    /// Bring your own deployment to N instances: a shell command with
    /// `{n}`, e.g. `docker compose up -d --scale server={n}` (run before
    /// every step, and with 0 at the end). Needs --hosts-cmd.
    #[arg(long, requires = "hosts_cmd")]
    pub fleet_cmd: Option<String>,
    /// Prints the N instances' base URLs (whitespace or commas), e.g.
    /// `scripts/hosts.sh {n}`; each must answer /actuator/health.
    #[arg(long, requires = "fleet_cmd")]
    pub hosts_cmd: Option<String>,
    /// Skip verify's over-selling check (stand-in servers that do not sell).
    #[arg(long)]
    pub no_verify: bool,
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
    #[command(flatten)]
    pub gates: crate::thresholds::ThresholdArgs,
    /// Serve a live page of the scaling run on this address (e.g.
    /// 127.0.0.1:9900): each step's successes per second, errors and
    /// P50/P95/P99 raw and corrected, each second, which fleet size, rate
    /// and repeat is running, then a link to the HTML report (written to
    /// <out>/report/).
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<std::net::SocketAddr>,
    /// With --dashboard: seconds to keep serving after the run ended.
    #[arg(long, default_value_t = 0.0, requires = "dashboard")]
    pub dashboard_linger: f64,
}

/// `ScaleArgs` as the command line defines them.
#[derive(clap::Parser)]
struct ScaleCli {
    #[command(flatten)]
    args: ScaleArgs,
}

/// Step seconds, warm-up seconds, probe seconds, resolution and rates per
/// repeat, as --quick shortens them.
pub(super) struct Effective {
    pub step_secs: f64,
    pub warmup: f64,
    pub probe_secs: f64,
    pub resolution: f64,
    pub max_steps: usize,
}

impl ScaleArgs {
    /// The command line's defaults (the main job sets what it needs).
    pub fn defaults() -> Self {
        <ScaleCli as clap::Parser>::parse_from(["scale"]).args
    }

    /// The scaling run's threshold gates (efficiency@N, tps@N, p95@N).
    pub fn thresholds(&self) -> anyhow::Result<Vec<crate::thresholds::Threshold>> {
        self.gates.parse(&crate::thresholds::Scope {
            command: "scale",
            scenarios: Vec::new(),
            scale: true,
        })
    }

    /// Refuses bad options before any instance is started.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.thresholds()?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        if let Some(instances) = &self.instances {
            anyhow::ensure!(
                !instances.is_empty() && instances.iter().all(|&n| n >= 1),
                "--instances must list counts of at least 1"
            );
        }
        if let Some(c) = self.cpus_per_instance {
            anyhow::ensure!(
                c > 0.0 && c <= cores,
                "--cpus-per-instance must be above 0 and at most the {cores} CPUs of this machine"
            );
        }
        anyhow::ensure!(self.repeats >= 1, "--repeats must be at least 1");
        anyhow::ensure!(
            self.resolution > 0.0 && self.resolution < 1.0,
            "--resolution must be a fraction between 0 and 1"
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
            self.step_secs.is_none_or(|s| s > 0.0 && s.is_finite()),
            "--step-secs must be a positive number"
        );
        anyhow::ensure!(
            self.warmup_secs.is_none_or(|s| s >= 0.0 && s.is_finite()),
            "--warmup-secs must be zero or a positive number"
        );
        anyhow::ensure!(self.max_steps >= 1, "--max-steps must be at least 1");
        Ok(())
    }

    pub(super) fn effective(&self) -> Effective {
        if self.quick {
            Effective {
                step_secs: self.step_secs.unwrap_or(2.0),
                warmup: self.warmup_secs.unwrap_or(0.5),
                probe_secs: 2.0,
                resolution: self.resolution.max(0.1),
                max_steps: self.max_steps.min(3),
            }
        } else {
            Effective {
                step_secs: self.step_secs.unwrap_or(5.0),
                warmup: self.warmup_secs.unwrap_or(2.0),
                probe_secs: 3.0,
                resolution: self.resolution,
                max_steps: self.max_steps,
            }
        }
    }
}
