//! The main job: verify, a load run and the scaling run against the
//! reference server, then the report in `reports/<run-id>/` with
//! `reports/latest` pointing at it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cgroup::Controller;
use crate::instances::{Backend, Fleet, ServerSpec};
use crate::machine::Machine;
use crate::report::{self, Report, VerifySummary};
use crate::run::{self, RunArgs};
use crate::scale::{self, ScaleArgs, ScaleReport};
use crate::scenarios::Kind;
use crate::summary::RunSummary;

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
}

impl JobArgs {
    pub fn thresholds(&self) -> anyhow::Result<Vec<crate::thresholds::Threshold>> {
        self.gates.parse(&crate::thresholds::Scope {
            command: "job",
            scenarios: vec![Kind::FlashSale, Kind::HoldAndPay],
            scale: !self.no_scale,
        })
    }
}

const ADMIN: &str = "job-admin";

/// What a reader of a report made on this project's local stack must know.
pub const TANSU_NOTE: &str = "Kafka here is tansu 0.6.0 with SQLite storage (scripts/services.sh; \
    reports/broker-storage.md): its latency stayed flat over 10 minutes at 300 purchases/s, and on this \
    2-core machine it is the stack's largest CPU consumer (about 0.46 ms per purchase, \
    reports/stack-ceiling.md), which bounds the shared stack's ceiling. The scaling run starts every \
    step on fresh topics, to isolate its fleets.";

/// One open-model load run of `kind` against `host`, into `out/<kind>`,
/// from `shards` processes (`--load-shards`) when more than one; the bar
/// is left for the caller to finish with what the run measured.
async fn load_run(
    title: &str,
    host: &str,
    (kind, rate, duration): (Kind, f64, f64),
    run_id: String,
    out: &Path,
    shards: u32,
) -> (ProgressBar, anyhow::Result<RunSummary>) {
    let by = if shards > 1 {
        format!(", {shards} shard processes")
    } else {
        String::new()
    };
    let bar = timed(
        format!(
            "{title}: {} at {rate:.0}/s for {duration:.0} s{by}",
            kind.name()
        ),
        duration + 1.0,
    );
    let mut args = RunArgs::new(vec![host.to_owned()], ADMIN, kind, out.join(kind.name()));
    args.rate = Some(rate);
    args.duration = duration;
    args.run_id = Some(run_id);
    let summary = if shards > 1 {
        crate::sharded::run(&args, shards, &crate::sharded::default_bin()).await
    } else {
        Box::pin(run::run(&args)).await
    };
    (bar, summary)
}

/// Ends a step's bar with `msg`; without a terminal (CI logs), where
/// indicatif draws nothing, the line is printed instead.
fn done(bar: &ProgressBar, msg: String) {
    if bar.is_hidden() {
        eprintln!("{msg}");
    }
    bar.finish_with_message(msg);
}

fn spinner(msg: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar that fills over `secs` seconds (for timed steps).
fn timed(msg: impl Into<String>, secs: f64) -> ProgressBar {
    let bar = ProgressBar::new((secs * 10.0) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(msg.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    let ticker = bar.clone();
    tokio::spawn(async move {
        while !ticker.is_finished() && ticker.position() < ticker.length().unwrap_or(0) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            ticker.inc(1);
        }
    });
    bar
}

/// Runs the job; returns its report directory and whether every
/// threshold passed.
pub async fn run(args: &JobArgs) -> anyhow::Result<(PathBuf, bool)> {
    let gates = args.thresholds()?;
    anyhow::ensure!(
        args.rate > 0.0
            && args.rate.is_finite()
            && args.seat_rate > 0.0
            && args.seat_rate.is_finite(),
        "--rate must be a positive number"
    );
    anyhow::ensure!(
        args.duration > 0.0 && args.duration.is_finite(),
        "--duration must be a positive number of seconds"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    anyhow::ensure!(
        args.cpus_per_instance.is_none_or(|c| c > 0.0 && c <= cores),
        "--cpus-per-instance must be above 0 and at most the {cores} CPUs of this machine"
    );
    let run_id = args.run_id.clone().unwrap_or_else(run::default_run_id);
    let out = args.reports_dir.join(&run_id);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let stack_env = ["REDIS_URL", "KAFKA_BROKERS", "POSTGRES_URL"]
        .iter()
        .all(|v| std::env::var_os(v).is_some());
    let mut notes = Vec::new();
    let backend = match args.backend {
        BackendChoice::Real => Backend::Real,
        BackendChoice::Memory => Backend::Memory,
        BackendChoice::Auto if stack_env => Backend::Real,
        BackendChoice::Auto => {
            let why = args.fallback_reason.clone().unwrap_or_else(|| {
                "REDIS_URL, KAFKA_BROKERS and POSTGRES_URL are not all set".into()
            });
            notes.push(format!(
                "embedded backend: the real stack is not available ({why})"
            ));
            Backend::Memory
        }
    };
    if backend == Backend::Real
        && std::env::var("KAFKA_BROKER_KIND").is_ok_and(|k| k.starts_with("tansu"))
    {
        notes.push(TANSU_NOTE.into());
    }
    eprintln!(
        "ticketbench job {run_id}: backend {}, report in {}",
        backend.flag(),
        out.display()
    );
    let namespace = format!(
        "job{}",
        run_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase()
    );
    let spec = ServerSpec {
        bin: args
            .server_bin
            .clone()
            .unwrap_or_else(ServerSpec::default_bin),
        backend,
        admin_token: ADMIN.into(),
        token_secret: format!("job-secret-{run_id}"),
        namespace: namespace.chars().take(40).collect(),
        log_dir: out.join("logs"),
    };

    let bar = spinner("starting the reference server");
    let fleet = Fleet::start(&spec, 1, &Controller::none(), 0.0, "job").await?;
    let host = fleet.hosts()[0].clone();
    done(&bar, format!("reference server on {host}"));

    let bar = spinner("verify: over-selling, FIFO, display, tokens, seat map");
    let verdict = verify_target(&host, backend, &spec.namespace, &out.join("verify")).await;
    let verify = match verdict {
        Ok(v) => {
            done(&bar, format!("verify: {}", v.headline));
            Some(v)
        }
        Err(e) => {
            done(&bar, format!("verify could not run: {e:#}"));
            notes.push(format!("verify could not run: {e:#}"));
            None
        }
    };

    let duration = if args.quick {
        args.duration.min(10.0)
    } else {
        args.duration
    };
    let (bar, load) = load_run(
        "load run",
        &host,
        (Kind::FlashSale, args.rate, duration),
        format!("{run_id}-load"),
        &out,
        args.load_shards,
    )
    .await;
    let load = match load.context("load run") {
        Ok(load) => load,
        Err(e) => {
            fleet.stop().await;
            return Err(e);
        }
    };
    done(
        &bar,
        format!(
            "load run: {:.0} TPS{}, P95 {:.1} ms corrected",
            load.tps(),
            achieved_text(&load),
            load.p95_corrected_ms()
        ),
    );

    let (bar, seats) = load_run(
        "seat-map run",
        &host,
        (Kind::HoldAndPay, args.seat_rate, duration),
        format!("{run_id}-seats"),
        &out,
        args.load_shards,
    )
    .await;
    fleet.stop().await;
    let seats = seats.context("seat-map load run")?;
    done(
        &bar,
        format!(
            "seat-map run: {:.0} paid or abandoned holds/s{}, P95 {:.1} ms corrected",
            seats.tps(),
            achieved_text(&seats),
            seats.p95_corrected_ms()
        ),
    );

    let scale = if args.no_scale {
        Some(ScaleReport::skipped(&run_id, "skipped (--no-scale)".into()))
    } else if backend != Backend::Real {
        Some(ScaleReport::skipped(
            &run_id,
            "skipped: the scaling run needs the shared real stack (Redis, Kafka, PostgreSQL), which this run did not have".into(),
        ))
    } else {
        let bar = spinner("scaling run");
        let mut scale_args = ScaleArgs::defaults();
        scale_args.cpus_per_instance = args.cpus_per_instance;
        scale_args.no_cpu_quota = args.no_cpu_quota;
        scale_args.quick = args.quick;
        scale_args.server_bin = args.server_bin.clone();
        scale_args.admin_token = ADMIN.into();
        scale_args.out = out.join("scale");
        scale_args.run_id = Some(run_id.clone());
        scale_args.quiet = true;
        let progress = |msg: &str| bar.set_message(format!("scaling run: {msg}"));
        match Box::pin(scale::run(&scale_args, &progress)).await {
            Ok(r) => {
                done(
                    &bar,
                    format!(
                        "scaling run: {}",
                        r.points
                            .iter()
                            .map(|p| format!(
                                "N={} {} TPS{}",
                                p.instances,
                                p.tps.map_or("-".into(), |t| format!("{t:.0}")),
                                p.efficiency.map_or(String::new(), |e| format!(
                                    " ({:.0}% {}{})",
                                    e * 100.0,
                                    p.verdict.map_or("", |v| v.word()),
                                    if p.efficiency_flagged {
                                        format!(", {}", scale::FLAG_TEXT)
                                    } else {
                                        String::new()
                                    }
                                ))
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                Some(r)
            }
            Err(e) => {
                done(&bar, format!("scaling run failed: {e:#}"));
                Some(ScaleReport::skipped(
                    &run_id,
                    format!("the scaling run failed: {e:#}"),
                ))
            }
        }
    };

    // Each result is kept with what it judged: the scaling run's in
    // scale.json, the others with the main load run; junit.xml has all.
    let mut load = load;
    let mut scale = scale;
    let judged: Vec<_> = gates
        .iter()
        .map(|t| crate::thresholds::judge(t, &[&load, &seats], scale.as_ref()))
        .collect();
    let passed = judged.iter().all(|j| j.pass);
    if !judged.is_empty() {
        crate::thresholds::write_junit(&judged, "thresholds", &out.join("junit.xml"))?;
        eprint!("{}", crate::thresholds::human(&judged));
    }
    for (t, j) in gates.iter().zip(judged) {
        match scale.as_mut() {
            Some(s) if t.metric.is_scale() => s.thresholds.push(j),
            _ => load.thresholds.push(j),
        }
    }

    let bar = spinner("report");
    let report = Report {
        run_id: run_id.clone(),
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        machine: Machine::detect(),
        backend: backend.flag().into(),
        notes,
        verify,
        loads: vec![load, seats],
        scale,
        tps_measure: report::TpsMeasure::Window,
    };
    let baseline = args.baseline.as_deref().map(Report::read).transpose()?;
    report::write(&report, &out, baseline.as_ref())?;
    point_latest(&args.reports_dir, &run_id)?;
    done(
        &bar,
        format!("report: {}", out.join("report.html").display()),
    );
    Ok((out, passed))
}

/// " of 200/s offered (99%), 3 in backlog" for an open-model run.
fn achieved_text(load: &RunSummary) -> String {
    match (load.offered, load.achieved) {
        (Some(offered), Some(achieved)) => format!(
            " of {offered:.0}/s offered ({:.0}%), {} in backlog",
            achieved * 100.0,
            load.backlog.map_or(0, |b| b.total())
        ),
        _ => String::new(),
    }
}

async fn verify_target(
    host: &str,
    backend: Backend,
    namespace: &str,
    out: &Path,
) -> anyhow::Result<VerifySummary> {
    let target = verify::Target::external(host, Some(ADMIN)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut options = verify::Options::defaults();
    options.quiet = true;
    options.out = out.to_owned();
    if backend == Backend::Real {
        // Check 2 reads the stores directly.
        options.redis_url = std::env::var("REDIS_URL").ok();
        options.kafka_brokers = std::env::var("KAFKA_BROKERS").ok();
        options.postgres_url = std::env::var("POSTGRES_URL").ok();
        options.namespace = namespace.to_owned();
    }
    let outcome = verify::run_against(&target, &options)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    outcome.verdict.write(out, &outcome.history)?;
    Ok(VerifySummary::from_value(&serde_json::to_value(
        &outcome.verdict,
    )?))
}

/// `reports/latest` -> `<run-id>` (a relative symlink, replaced each run).
fn point_latest(reports: &Path, run_id: &str) -> anyhow::Result<()> {
    let latest = reports.join("latest");
    if latest.symlink_metadata().is_ok() {
        std::fs::remove_file(&latest).with_context(|| format!("replacing {}", latest.display()))?;
    }
    std::os::unix::fs::symlink(run_id, &latest)
        .with_context(|| format!("linking {}", latest.display()))
}
