use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "ticketbench's load generator",
    after_help = EXIT_STATUS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXIT_STATUS: &str =
    "Exit status (run, scale, job; the other commands: 0 done, 1 failed, 2 bad command line):
  0  the run completed and every --threshold passed
  1  the run could not be carried out (target unreachable, set-up refused, ...)
  2  bad command line: unknown option, malformed threshold, a metric the
     command does not measure (nothing was sent)
  3  the run completed and at least one --threshold failed (see junit.xml)";

#[derive(Subcommand)]
enum Command {
    /// One load run against any server that speaks the contract.
    #[command(after_help = EXIT_STATUS)]
    Run(loadgen::run::RunArgs),
    /// The scaling run: 1, 2, 4 instances on the shared real stack under
    /// equal CPU quotas; TPS, P95 and efficiency per instance count.
    #[command(after_help = EXIT_STATUS)]
    Scale(loadgen::scale::ScaleArgs),
    /// The main job: verify, a load run and the scaling run against the
    /// reference server, reported in reports/<run-id>/ (and reports/latest).
    #[command(after_help = EXIT_STATUS)]
    Job(loadgen::job::JobArgs),
    /// Builds the report (plots, HTML, Markdown, JSON) from the outputs of
    /// `run`, `scale` and verify.
    Report {
        /// Re-render an earlier report.json (the other inputs but
        /// --seat-comparison and --baseline are ignored).
        #[arg(long)]
        from: Option<PathBuf>,
        /// Adds the seat-hold comparison: the TSV of
        /// scripts/bench-seat-lock.sh (what `scripts/run.sh
        /// --seat-comparison` does after the job).
        #[arg(long)]
        seat_comparison: Option<PathBuf>,
        /// The hold P95 (ms) a rate must stay within in every round to
        /// count as met in the seat comparison.
        #[arg(long, default_value_t = 100.0, value_parser = positive_ms)]
        seat_bound_ms: f64,
        /// Directories of `loadgen run` (or `merge`) outputs (summary.json).
        #[arg(long = "load")]
        loads: Vec<PathBuf>,
        /// Directory of a `loadgen scale` output (scale.json).
        #[arg(long)]
        scale: Option<PathBuf>,
        /// Directory of a verify output (verdict.json).
        #[arg(long)]
        verify: Option<PathBuf>,
        /// An earlier report.json to compare with.
        #[arg(long)]
        baseline: Option<PathBuf>,
        #[arg(long, default_value = "real")]
        backend: String,
        #[arg(long, default_value = "report")]
        out: PathBuf,
    },
    /// Merges interval logs of several loadgen processes into one log and
    /// one summary, exactly.
    Merge {
        /// The `latency.hlog` files to merge.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        #[arg(long, default_value = "loadgen-merged")]
        out: PathBuf,
    },
}

/// A bound in milliseconds: a finite number above zero.
fn positive_ms(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of milliseconds above 0")),
    }
}

/// Writes the report into `out`, compared with `baseline` if given.
fn write_report(
    report: &loadgen::report::Report,
    baseline: Option<&std::path::Path>,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let baseline = baseline.map(loadgen::report::Report::read).transpose()?;
    loadgen::report::write(report, out, baseline.as_ref())?;
    println!("{}", out.join("report.html").display());
    Ok(())
}

use loadgen::thresholds::exit;

/// The scaling run; with `--dashboard`, followed live, step by step, and
/// reported in `<out>/report/report.html`, which the page links.
async fn scale(args: &loadgen::scale::ScaleArgs) -> anyhow::Result<loadgen::scale::ScaleReport> {
    use loadgen::dashboard::{self, Dashboard};
    let board = match args.dashboard {
        Some(addr) => Some(Dashboard::start(addr, args.out.clone()).await?),
        None => None,
    };
    let quiet = args.quiet;
    let progress = |msg: &str| {
        if !quiet {
            eprintln!("scale: {msg}");
        }
        dashboard::say(msg);
    };
    let live = board.as_ref().map(|b| b.live.clone());
    let outcome = dashboard::within(live, Box::pin(loadgen::scale::run(args, &progress))).await;
    let Some(board) = board else {
        return outcome;
    };
    match &outcome {
        Ok(scale) => {
            let report = loadgen::report::Report {
                scale: Some(scale.clone()),
                ..loadgen::report::Report::now(scale.run_id.clone(), "real".into())
            };
            loadgen::report::write(&report, &args.out.join("report"), None)?;
        }
        Err(e) => board.live.status(&format!("the scaling run failed: {e:#}")),
    }
    let links = dashboard::existing(
        &args.out,
        &[
            ("HTML report", "report/report.html"),
            ("scale.json", "scale.json"),
        ],
    );
    board.finish(links, args.dashboard_linger).await;
    outcome
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = refuse_bad_options(&cli.command) {
        eprintln!("error: {e:#}");
        return ExitCode::from(exit::USAGE);
    }
    match Box::pin(command(cli.command)).await {
        Ok(true) => ExitCode::from(exit::OK),
        Ok(false) => ExitCode::from(exit::THRESHOLD_FAILED),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::RUN_FAILED)
        }
    }
}

/// Options the command line could not refuse by itself (bounds,
/// thresholds): checked before anything is sent.
fn refuse_bad_options(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => args.validate(),
        Command::Scale(args) => args.validate(),
        Command::Job(args) => args.validate(),
        _ => Ok(()),
    }
}

/// Runs `command`; `Ok(false)` when a threshold failed.
async fn command(command: Command) -> anyhow::Result<bool> {
    let mut gates_passed = true;
    match command {
        Command::Run(args) => {
            let summary = loadgen::run::run(&args).await?;
            print!("{}", loadgen::console::table(&summary, &args.out));
            gates_passed = summary.thresholds.iter().all(|t| t.pass);
        }
        Command::Scale(args) => {
            let report = scale(&args).await?;
            print!("{}", loadgen::console::scale_table(&report, &args.out));
            gates_passed = report.thresholds.iter().all(|t| t.pass);
        }
        Command::Job(args) => {
            let (out, passed) = loadgen::job::run(&args).await?;
            println!("{}", out.join("report.html").display());
            gates_passed = passed;
        }
        Command::Report {
            from: Some(from),
            seat_comparison,
            seat_bound_ms,
            baseline,
            out,
            ..
        } => {
            let mut report = loadgen::report::Report::read(&from)?;
            if let Some(tsv) = seat_comparison {
                report.seat_comparison = Some(loadgen::report::SeatComparison::from_tsv(
                    &tsv,
                    seat_bound_ms,
                )?);
            }
            write_report(&report, baseline.as_deref(), &out)?;
        }
        Command::Report {
            from: None,
            seat_comparison,
            seat_bound_ms,
            loads,
            scale,
            verify,
            baseline,
            backend,
            out,
        } => {
            let run_id = out
                .file_name()
                .map_or("report".into(), |n| n.to_string_lossy().into_owned());
            let report = loadgen::report::Report {
                verify: verify
                    .map(|dir| -> anyhow::Result<_> {
                        let text = std::fs::read_to_string(dir.join("verdict.json"))?;
                        Ok(loadgen::report::VerifySummary::from_value(
                            &serde_json::from_str(&text)?,
                        ))
                    })
                    .transpose()?,
                loads: loads
                    .iter()
                    .map(|d| loadgen::summary::RunSummary::read(&d.join("summary.json")))
                    .collect::<anyhow::Result<_>>()?,
                scale: scale
                    .map(|d| loadgen::scale::ScaleReport::read(&d.join("scale.json")))
                    .transpose()?,
                seat_comparison: seat_comparison
                    .map(|tsv| loadgen::report::SeatComparison::from_tsv(&tsv, seat_bound_ms))
                    .transpose()?,
                ..loadgen::report::Report::now(run_id, backend)
            };
            write_report(&report, baseline.as_deref(), &out)?;
        }
        Command::Merge { logs, out } => {
            let summary = loadgen::merge::run(&logs, &out)?;
            println!(
                "merged {} logs into {}: {} iterations",
                logs.len(),
                out.display(),
                summary.headline().map_or(0, |t| t.count)
            );
        }
    }
    Ok(gates_passed)
}
