//! The main job's options.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::faults::{FaultCmd, FaultSpec, Nemesis};
use crate::scenarios::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// The real stack when REDIS_URL, KAFKA_BROKERS and POSTGRES_URL are
    /// set, the embedded backend otherwise.
    Auto,
    Real,
    Memory,
}

#[derive(clap::Args, Debug, Clone)]
pub struct JobArgs {
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    /// Why the real stack is not used (the report repeats it).
    #[arg(long)]
    pub fallback_reason: Option<String>,
    /// Offered rate of the load run (iterations per second, open model).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of each load run.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Offered rate of the seat-map load run (`hold_and_pay` iterations
    /// per second: charge, enter, seat map, hold, pay).
    #[arg(long, default_value_t = 50.0)]
    pub seat_rate: f64,
    /// A short job: 10 s load run and `scale --quick`.
    #[arg(long)]
    pub quick: bool,
    /// Skip the scaling run.
    #[arg(long)]
    pub no_scale: bool,
    /// Scaling run: CPUs per instance [default: calibrated against the
    /// shared stack's ceiling; see `loadgen scale --help`].
    #[arg(long)]
    pub cpus_per_instance: Option<f64>,
    /// Scaling run without CPU quotas where none can be set.
    #[arg(long)]
    pub no_cpu_quota: bool,
    /// An earlier run's report.json to compare with.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// The ticket-server binary [default: next to loadgen].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    #[arg(long, default_value = "reports")]
    pub reports_dir: PathBuf,
    #[arg(long)]
    pub run_id: Option<String>,
    /// Generates each load run from this many loadgen processes, each a
    /// shard of the run (`loadgen run --shard I/N`, one start time), whose
    /// logs are merged exactly: the path of a run split over machines.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub load_shards: u32,
    /// Gates on the flash-sale load run (unprefixed metrics), any
    /// transaction of either load run, and the scaling run (efficiency@N).
    #[command(flatten)]
    pub gates: crate::thresholds::ThresholdArgs,
    /// Faults during the flash-sale load run, verify's nemesis:
    /// `KIND[@START][+DURATION]`, comma-separated, START after the load
    /// begins (its first iteration, the plots' zero; default 1s), DURATION until the fault is undone (default
    /// 3s), e.g. `pause-instance@5s+3s,restart-broker@12s+2s`. Kinds:
    /// pause-instance, restart-redis, lose-redis, restart-postgres,
    /// restart-broker, pause-broker; kill-instance and failover-redis with
    /// --fault-cmd. The report shades each window in the plots and has a
    /// fault table. None by default.
    #[arg(long, value_delimiter = ',', value_name = "FAULTS")]
    pub faults: Vec<FaultSpec>,
    /// `KIND='command'`: inject that kind of fault by running the command
    /// (`sh -c`, the phase `start` or `end` as `$1`) instead of acting on
    /// local processes. Repeat it for several kinds.
    #[arg(long = "fault-cmd", value_name = "KIND=COMMAND")]
    pub fault_cmd: Vec<FaultCmd>,
    /// The script the faults act through on the local stack's services.
    #[arg(
        long,
        env = "VERIFY_SERVICES_SCRIPT",
        default_value = "scripts/services.sh"
    )]
    pub services_script: PathBuf,
    /// Serve a live page of the job on this address (e.g. 127.0.0.1:9900):
    /// each load run's and scaling step's successes per second, errors and
    /// P50/P95/P99 raw and corrected, each second, what the job is doing,
    /// then a link to the HTML report.
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<SocketAddr>,
    /// With --dashboard: seconds to keep serving after the job ended.
    #[arg(long, default_value_t = 0.0, requires = "dashboard")]
    pub dashboard_linger: f64,
}

impl JobArgs {
    /// Refuses bad options before anything starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.thresholds()?;
        if self.faults.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            self.load_shards == 1,
            "--faults needs the load run in one process (--load-shards 1): \
             its fault table counts the requests of that process"
        );
        crate::faults::check_schedule(&self.faults, &self.fault_cmd)?;
        // The instance's pid is known once it runs: a stand-in here, so a
        // fault with no way to act is refused before anything starts.
        self.nemesis(vec![std::process::id()], PathBuf::new())
            .map(drop)
    }

    /// The nemesis of `--faults`, acting on `pids`.
    pub fn nemesis(&self, pids: Vec<u32>, log_dir: PathBuf) -> anyhow::Result<Nemesis> {
        Nemesis::new(
            self.faults.clone(),
            self.fault_cmd.clone(),
            pids,
            self.services_script.clone(),
            log_dir,
        )
        .map_err(|e| anyhow::anyhow!("--faults: {e}"))
    }

    pub fn thresholds(&self) -> anyhow::Result<Vec<crate::thresholds::Threshold>> {
        self.gates.parse(&crate::thresholds::Scope {
            command: "job",
            scenarios: vec![Kind::FlashSale, Kind::HoldAndPay],
            scale: !self.no_scale,
        })
    }
}
