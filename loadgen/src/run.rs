//! `loadgen run`: one load run with goose, recorded by us.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use goose::config::GooseConfiguration;
use goose::GooseAttack;

use crate::faults::{self, Nemesis, Timeline};
use crate::merge::LogMeta;
use crate::pacing::Pacer;
use crate::record::Recorder;
use crate::scenarios::{self, Ctx, Kind, Wait};
use crate::setup::{self, Admin};
use crate::summary::{Generator, Model, RunSummary, Schedule};
use crate::thresholds::{self, Scope, Threshold, ThresholdArgs};

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Target server(s) speaking the contract; repeat or comma-separate to
    /// spread users across several, round-robin.
    #[arg(
        long = "host",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    pub hosts: Vec<String>,
    /// The targets' admin token (for set-up: creating the run's event).
    #[arg(long, env = "ADMIN_TOKEN")]
    pub admin_token: String,
    #[arg(long, value_enum, default_value = "flash-sale")]
    pub scenario: Kind,
    /// Open model: iterations started per second, whatever the target does.
    /// Without it, the closed model (users loop as fast as answers come).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Concurrent goose users [default: open model rate/10 (16..=2000),
    /// closed model 32].
    #[arg(long)]
    pub users: Option<usize>,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// How waiting buyers learn they are admitted.
    #[arg(long, value_enum, default_value = "sse")]
    pub wait: Wait,
    /// The run's event's activeCapacity.
    #[arg(long, default_value_t = 5000)]
    pub active_capacity: u32,
    /// Stock of the run's event [default: enough for every planned
    /// purchase, 10,000,000 in the closed model].
    #[arg(long)]
    pub stock: Option<u64>,
    /// Seconds of unrecorded purchases (one at a time, every host) before
    /// the measurement: a freshly started fleet settles its partition
    /// leases and connections.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Directory for the summary, the interval log and goose's reports.
    #[arg(long, default_value = "loadgen-out")]
    pub out: PathBuf,
    /// Names the run (and its event, `lg-<run-id>`) [default: time-based].
    #[arg(long)]
    pub run_id: Option<String>,
    /// Skip goose's own HTML/JSON report.
    #[arg(long)]
    pub no_goose_report: bool,
    /// Also print goose's console metrics: goose's own closed-loop
    /// accounting (every request goose timed, over goose's run time), not
    /// loadgen's measured window; off by default. Requests then go through
    /// goose's client (so goose counts them), not the users' own
    /// connections.
    #[arg(long)]
    pub goose_metrics: bool,
    #[command(flatten)]
    pub gates: ThresholdArgs,
    /// Runs shard I of N (0-based; a Kubernetes Indexed Job's
    /// `JOB_COMPLETION_INDEX`): 1/N of `--rate` and of `--users`, users
    /// of its own, the same run id, event and stock as the other shards.
    /// `loadgen merge` adds the shards' logs into the run's.
    #[arg(long)]
    pub shard: Option<crate::shard::Shard>,
    /// Starts the measured load at this moment (RFC 3339 or Unix seconds),
    /// after the set-up, so shards on several machines begin together.
    #[arg(long, value_parser = crate::shard::parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,
    /// `hold_and_pay` only: this share (0 to 1) of iterations first try
    /// one of the 10 hot seats (seats 1-10 of the first schedule), chosen at
    /// random whatever the seat map shows, so holds race for the same
    /// seats; after a SEAT_TAKEN they fall back to random AVAILABLE seats.
    /// 0 (the default): every hold picks a random AVAILABLE seat.
    #[arg(long, default_value_t = 0.0)]
    pub hot_seat_share: f64,
    /// Serve a live page of the run on this address (e.g. 127.0.0.1:9900):
    /// successes per second, errors and P50/P95/P99 raw and corrected,
    /// each second, then links to the run's reports. Port 0 picks a free
    /// one (the address is printed).
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<std::net::SocketAddr>,
    /// With --dashboard: seconds to keep serving after the run ended, so
    /// its report links can be followed.
    #[arg(long, default_value_t = 0.0, requires = "dashboard")]
    pub dashboard_linger: f64,
    /// Less output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Further goose options, after `--` (e.g. `-- --running-metrics 5`).
    #[arg(last = true)]
    pub goose: Vec<String>,
}

/// `RunArgs` as the command line defines them.
#[derive(Parser)]
struct RunCli {
    #[command(flatten)]
    args: RunArgs,
}

impl RunArgs {
    /// The command line's defaults for a run against `hosts` (quiet); set
    /// the other fields as needed.
    pub fn new(hosts: Vec<String>, admin_token: &str, scenario: Kind, out: PathBuf) -> Self {
        let mut args = RunCli::parse_from(["loadgen", "--admin-token", admin_token]).args;
        args.hosts = hosts;
        args.scenario = scenario;
        args.out = out;
        args.quiet = true;
        args
    }

    /// Refuses bad options before anything is sent or written.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.hosts.is_empty(), "at least one --host is needed");
        for host in &self.hosts {
            crate::scenarios::check_host(host)?;
        }
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate > 0.0 && rate.is_finite(),
                "--rate must be a positive number"
            );
        }
        anyhow::ensure!(
            self.duration > 0.0 && self.duration.is_finite(),
            "--duration must be a positive number of seconds"
        );
        anyhow::ensure!(
            self.warmup >= 0.0 && self.warmup.is_finite(),
            "--warmup must be zero or a positive number of seconds"
        );
        anyhow::ensure!(self.users != Some(0), "--users must be at least 1");
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.hot_seat_share),
            "--hot-seat-share must be between 0 and 1"
        );
        anyhow::ensure!(
            self.hot_seat_share == 0.0 || self.scenario == Kind::HoldAndPay,
            "--hot-seat-share applies to --scenario hold-and-pay only"
        );
        anyhow::ensure!(
            self.active_capacity >= 1,
            "--active-capacity must be at least 1"
        );
        self.thresholds()?;
        Ok(())
    }

    /// The run's threshold gates, parsed and checked against the scenario.
    pub fn thresholds(&self) -> anyhow::Result<Vec<Threshold>> {
        self.gates.parse(&Scope {
            command: "run",
            scenarios: vec![self.scenario],
            scale: false,
        })
    }

    /// This process's users: the run's, or this shard's share of them.
    pub fn users(&self) -> usize {
        let total = self.users.unwrap_or(match self.rate {
            Some(rate) => ((rate / 10.0).ceil() as usize).clamp(16, 2000),
            None => 32,
        });
        self.shard.map_or(total, |s| s.users(total))
    }

    /// The rate this process offers: the run's, or this shard's share.
    fn own_rate(&self) -> Option<f64> {
        self.rate.map(|r| self.shard.map_or(r, |s| s.rate(r)))
    }

    fn model(&self) -> Model {
        match self.own_rate() {
            Some(rate) => Model::Open { rate },
            None => Model::Closed,
        }
    }
}

/// goose's own command line, for the options after `--`.
#[derive(Parser)]
#[command(name = "goose", no_binary_name = false)]
struct GooseCli {
    #[command(flatten)]
    config: GooseConfiguration,
}

pub fn default_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    format!(
        "{}-{}",
        now.format(&format).unwrap_or_else(|_| "run".into()),
        std::process::id()
    )
}

fn rfc3339(t: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Runs one load run and writes its files under `args.out`.
pub async fn run(args: &RunArgs) -> anyhow::Result<RunSummary> {
    // goose's attack is a large future: keep it on the heap.
    Box::pin(run_boxed(args, None)).await
}

/// A load run during which `nemesis` injects its faults, each `start`
/// after the load begins; the summary's `faults` are their windows and
/// what the requests met in each.
pub async fn run_faulted(args: &RunArgs, nemesis: Arc<Nemesis>) -> anyhow::Result<RunSummary> {
    Box::pin(run_boxed(args, Some(nemesis))).await
}

async fn run_boxed(args: &RunArgs, nemesis: Option<Arc<Nemesis>>) -> anyhow::Result<RunSummary> {
    args.validate()?;
    let gates = args.thresholds()?;
    let hosts: Vec<String> = args
        .hosts
        .iter()
        .map(|h| h.trim_end_matches('/').to_owned())
        .collect();
    let run_id = args.run_id.clone().unwrap_or_else(default_run_id);
    // Shards share the run id (and so the event); their users must not.
    let users_tag = match args.shard {
        Some(s) => format!("{run_id}-s{}", s.index),
        None => run_id.clone(),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let duration = Duration::from_secs_f64(args.duration);
    let users = args.users();

    let admin = Admin::new(&args.admin_token)?;
    let purchases = match args.rate {
        Some(rate) => {
            (rate * args.duration * args.scenario.purchase_share() * 1.2).ceil() as u64 + 100
        }
        None => 10_000_000,
    };
    let warmup_stock = if args.warmup > 0.0 { 20_000 } else { 0 };
    let mut prepared = setup::prepare(
        &admin,
        &hosts,
        (&run_id, &users_tag),
        args.stock.unwrap_or(purchases) + warmup_stock,
        args.active_capacity,
        matches!(args.scenario, Kind::Browse | Kind::Mixed),
        (args.scenario == Kind::HoldAndPay).then_some(purchases.min(100_000)),
    )
    .await?;
    if let Some(plan) = prepared.concert.as_mut() {
        plan.hot_share = args.hot_seat_share;
    }
    if args.warmup > 0.0 {
        let until = std::time::Instant::now() + Duration::from_secs_f64(args.warmup);
        let mut i = 0u64;
        while std::time::Instant::now() < until && i < warmup_stock {
            let host = &hosts[i as usize % hosts.len()];
            admin
                .purchase(host, &prepared.event_id, &format!("warm-{users_tag}-{i}"))
                .await
                .context("warm-up purchase")?;
            i += 1;
        }
    }

    let mut goose_args = vec!["goose".to_owned()];
    goose_args.extend(args.goose.iter().cloned());
    let mut config = GooseCli::try_parse_from(goose_args)
        .context("options after -- are goose's")?
        .config;
    config.host = Some(hosts[0].clone());
    config.users = Some(users);
    // Start every user within about 100 ms.
    config.increase_rate = Some(format!("{}", (users * 10).max(100)));
    config.increase_time = None;
    // The measured window is `duration` from the first iteration; goose
    // gets one more second so iterations in flight at its end complete
    // (they are counted as backlog, not throughput).
    config.run_time = Some(format!("{}", duration.as_secs_f64().ceil() as u64 + 1));
    config.no_telnet = true;
    // Our own API answers uncompressed; skip the gzip layer.
    config.no_gzip = true;
    // goose's console tables count every request goose timed over its own
    // run time (closed-loop), which contradicts the measured window: they
    // are shown only on request, labelled.
    if args.quiet || !args.goose_metrics {
        config.no_print_metrics = true;
        config.no_error_summary = true;
    }
    // goose's INFO log (a line per user launched) drowns the summary: its
    // warnings only, unless goose's own output was asked for.
    if args.quiet || !args.goose_metrics {
        config.quiet = config.quiet.max(1);
    }
    if !args.quiet && args.goose_metrics {
        eprintln!(
            "loadgen: goose's console metrics follow (--goose-metrics): goose's own closed-loop \
             accounting of every request over its run time; loadgen's figures are its table at the end"
        );
    }
    if !args.no_goose_report {
        config.report_file = vec![
            args.out.join("goose-report.html").display().to_string(),
            args.out.join("goose-report.json").display().to_string(),
        ];
    }

    if let Some(at) = args.start_at {
        crate::shard::wait_until(at, !args.quiet).await?;
    }
    let model = args.model();
    let pacer = args.own_rate().map(|rate| Pacer::new(rate, duration));
    let recorder = Arc::new(Recorder::with_window(
        duration,
        pacer.as_ref().map(Pacer::planned),
    ));
    let meta = LogMeta {
        run_id: run_id.clone(),
        scenario: args.scenario.name().into(),
        headline: args.scenario.name().into(),
        model: model.clone(),
        users,
        hosts: hosts.clone(),
        started_at: rfc3339(recorder.started_wall()),
        shard: args.shard,
        offered_total: args.rate,
    };
    let log_path = args.out.join("latency.hlog");
    let cpu_before = crate::machine::cpu_seconds();
    let log = recorder.start_log(&log_path, &serde_json::to_string(&meta)?)?;
    let timeline = nemesis
        .is_some()
        .then(|| Arc::new(Timeline::new(std::time::Instant::now())));
    let ctx = Arc::new(Ctx {
        kind: args.scenario,
        hosts: hosts.clone(),
        prepared,
        recorder: Arc::clone(&recorder),
        pacer,
        wait: args.wait,
        user_prefix: format!("lg-{users_tag}"),
        next_user: Default::default(),
        timeline: timeline.clone(),
        via_goose: args.goose_metrics,
    });
    let attack = GooseAttack::initialize_with_config(config)?
        .register_scenario(scenarios::scenario(Arc::clone(&ctx)));
    // Its own dashboard (`run --dashboard`), or the command's it runs for.
    let dashboard = match args.dashboard {
        Some(addr) => Some(crate::dashboard::Dashboard::start(addr, args.out.clone()).await?),
        None => None,
    };
    let live = dashboard
        .as_ref()
        .map(|d| d.live.clone())
        .or_else(crate::dashboard::current);
    if let Some(live) = &live {
        live.stage(
            crate::dashboard::stage_label(&run_id, args, hosts.len()),
            Arc::clone(&recorder),
            args.scenario.name(),
        );
    }
    let progress = (!args.quiet).then(|| {
        crate::console::Progress::start(Arc::clone(&recorder), args.scenario.name(), duration)
    });
    let injection = match (nemesis, &timeline) {
        (Some(nemesis), Some(timeline)) => {
            let recorder = Arc::clone(&recorder);
            let opened = move || recorder.window_log().is_some();
            Some(faults::Injection::start(nemesis, timeline.origin(), opened))
        }
        _ => None,
    };
    let outcome = Box::pin(attack.execute()).await;
    drop(progress);
    let measured = recorder.elapsed().min(duration + Duration::from_secs(1));
    log.finish()?;
    // Every fault is undone before anything else, even after a failed run.
    let notes = match injection {
        Some(injection) => injection.finish().await?,
        None => Vec::new(),
    };
    outcome.context("goose run")?;
    let cpu = crate::machine::cpu_seconds() - cpu_before;

    let (transactions, series) = recorder.snapshot();
    let schedule = ctx.pacer.as_ref().map(|p| {
        let (busy, wakeup, max_lag_us) = p.lateness();
        Schedule {
            planned: p.planned(),
            late: busy + wakeup,
            max_lag_us,
        }
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let overslept = ctx.pacer.as_ref().is_some_and(|p| {
        let (_, wakeup, _) = p.lateness();
        wakeup * 100 > p.planned()
    });
    let limited_by = if overslept || cpu / measured.as_secs_f64() > 0.9 * cores {
        "generator"
    } else {
        "target"
    };
    let samples = recorder.process_samples();
    let mut files = std::collections::BTreeMap::new();
    files.insert("hdrLog".into(), "latency.hlog".into());
    if !args.no_goose_report {
        files.insert("gooseHtml".into(), "goose-report.html".into());
        files.insert("gooseJson".into(), "goose-report.json".into());
    }
    let mut summary = RunSummary {
        run_id,
        scenario: args.scenario.name().into(),
        headline: args.scenario.name().into(),
        model,
        users,
        hosts,
        started_at: meta.started_at,
        duration_secs: duration.as_secs_f64(),
        transactions,
        series,
        schedule,
        generator: Some(Generator {
            cpu_seconds: cpu,
            max_rss_kib: crate::machine::rss_kib().1,
            limited_by: limited_by.into(),
            samples,
        }),
        files,
        processes: 1,
        tps: None,
        offered: None,
        achieved: None,
        window: None,
        backlog: None,
        thresholds: Vec::new(),
        faults: Vec::new(),
    };
    if let Some(window) = recorder.window_log() {
        summary.apply_window(&window);
    }
    if let Some(timeline) = &timeline {
        // The window opened with the first iteration, after the origin.
        let (opened, _) = recorder.open_window();
        let shift = opened
            .saturating_duration_since(timeline.origin())
            .as_secs_f64();
        summary.faults =
            faults::timeline::table(&notes, &timeline.bins(), (shift, args.duration), args.rate);
    }
    if !gates.is_empty() {
        summary.thresholds = gates
            .iter()
            .map(|t| thresholds::judge(t, &[&summary], None))
            .collect();
        thresholds::write_junit(
            &summary.thresholds,
            "thresholds",
            &args.out.join("junit.xml"),
        )?;
        summary.files.insert("junit".into(), "junit.xml".into());
    }
    summary.write(&args.out.join("summary.json"))?;
    if let Some(board) = dashboard {
        board
            .finish_run(&summary, &args.out, args.dashboard_linger)
            .await;
    }
    Ok(summary)
}
