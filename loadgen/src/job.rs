//! The main job: verify, a load run and the scaling run against the
//! reference server, then the report in `reports/<run-id>/` with
//! `reports/latest` pointing at it. `--faults` injects verify's nemesis
//! during the flash-sale load run (none by default); `--dashboard` follows
//! every step on a live page.
//!
//! - `args`: its options; `bars`: its progress lines.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::ProgressBar;

use crate::cgroup::Controller;
use crate::instances::{Backend, Fleet, ServerSpec};
use crate::report::{self, Report, VerifySummary};
use crate::run::{self, RunArgs};
use crate::scale::{self, ScaleArgs, ScaleReport};
use crate::scenarios::Kind;
use crate::summary::RunSummary;

mod args;
mod bars;

pub use args::{BackendChoice, JobArgs};
use bars::{done, spinner, timed};

const ADMIN: &str = "job-admin";

/// What a reader of a report made on this project's local stack must know.
pub const TANSU_NOTE: &str = "Kafka here is tansu 0.6.0 with SQLite storage (scripts/services.sh; \
    reports/broker-storage.md): its latency stayed flat over 10 minutes at 300 purchases/s, and on this \
    2-core machine it is the stack's largest CPU consumer (about 0.46 ms per purchase, \
    reports/stack-ceiling.md), which bounds the shared stack's ceiling. The scaling run starts every \
    step on fresh topics, to isolate its fleets.";

/// One open-model load run of `kind` against `host`, into `out/<kind>`,
/// from `shards` processes (`--load-shards`) when more than one, under
/// `nemesis`'s faults if given; the bar is left for the caller to finish
/// with what the run measured.
async fn load_run(
    title: &str,
    host: &str,
    (kind, rate, duration): (Kind, f64, f64),
    run_id: String,
    out: &Path,
    (shards, nemesis): (u32, Option<std::sync::Arc<crate::faults::Nemesis>>),
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
    let summary = match nemesis {
        Some(nemesis) => Box::pin(run::run_faulted(&args, nemesis)).await,
        None if shards > 1 => {
            crate::sharded::run(&args, shards, &crate::sharded::default_bin()).await
        }
        None => Box::pin(run::run(&args)).await,
    };
    (bar, summary)
}

/// Runs the job; returns its report directory and whether every
/// threshold passed. With `--dashboard`, its page follows every step.
pub async fn run(args: &JobArgs) -> anyhow::Result<(PathBuf, bool)> {
    args.validate()?;
    let run_id = args.run_id.clone().unwrap_or_else(run::default_run_id);
    let out = args.reports_dir.join(&run_id);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let Some(addr) = args.dashboard else {
        return Box::pin(job(args, run_id, out)).await;
    };
    let board = crate::dashboard::Dashboard::start(addr, out.clone()).await?;
    let live = board.live.clone();
    let outcome =
        crate::dashboard::within(Some(live.clone()), Box::pin(job(args, run_id, out.clone())))
            .await;
    if let Err(e) = &outcome {
        live.status(&format!("the job failed: {e:#}"));
    }
    let links = crate::dashboard::existing(
        &out,
        &[
            ("HTML report", "report.html"),
            ("report.md", "report.md"),
            ("report.json", "report.json"),
        ],
    );
    board.finish(links, args.dashboard_linger).await;
    outcome
}

async fn job(args: &JobArgs, run_id: String, out: PathBuf) -> anyhow::Result<(PathBuf, bool)> {
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
    let nemesis = if args.faults.is_empty() {
        None
    } else {
        let pids = fleet.instances.iter().filter_map(|i| i.pid()).collect();
        notes.push(format!(
            "faults during the flash-sale load run (--faults): {}",
            args.faults
                .iter()
                .map(|f| format!(
                    "{} at {:.1} s for {:.1} s",
                    f.kind,
                    f.start.as_secs_f64(),
                    f.duration.as_secs_f64()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Some(std::sync::Arc::new(args.nemesis(pids, out.join("logs"))?))
    };
    let (bar, load) = load_run(
        "load run",
        &host,
        (Kind::FlashSale, args.rate, duration),
        format!("{run_id}-load"),
        &out,
        (args.load_shards, nemesis),
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
        (args.load_shards, None),
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
        let progress = |msg: &str| {
            let msg = format!("scaling run: {msg}");
            crate::dashboard::say(&msg);
            bar.set_message(msg);
        };
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
                                    p.flags()
                                        .iter()
                                        .map(|f| format!(", {f}"))
                                        .collect::<String>()
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
        notes,
        verify,
        loads: vec![load, seats],
        scale,
        tps_measure: report::TpsMeasure::Window,
        ..Report::now(run_id.clone(), backend.flag().into())
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
