//! What `loadgen run` shows a person: one short table of its own figures
//! (the summary's, never goose's), the paths of its files, and a progress
//! line while it runs.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::record::Recorder;
use crate::summary::{Model, Percentiles, RunSummary};

/// Runs shorter than this get no progress line (it would only flicker).
pub const PROGRESS_AFTER: Duration = Duration::from_secs(3);

fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn three(p: &Percentiles) -> String {
    format!("{:>7} {:>7} {:>7}", ms(p.p50), ms(p.p95), ms(p.p99))
}

/// Successes of `tx` per second of the measured window (its per-second
/// series up to the window's end), the headline's from the window counts.
fn tx_tps(s: &RunSummary, tx: &str) -> f64 {
    if tx == s.headline {
        return s.tps();
    }
    let secs = s.window.map_or(s.duration_secs, |w| w.secs);
    if secs <= 0.0 {
        return 0.0;
    }
    let ok: u64 = s
        .series
        .get(tx)
        .map(|points| {
            points
                .iter()
                .filter(|p| p.t <= secs + 1e-9)
                .map(|p| p.count - p.errors)
                .sum()
        })
        .unwrap_or(0);
    ok as f64 / secs
}

/// The human summary of a run: model, the per-transaction table (raw and
/// corrected percentiles in ms), the window's accounting and `files` (in
/// `out`).
pub fn table(s: &RunSummary, out: &Path) -> String {
    let mut text = String::new();
    let model = match s.model {
        Model::Open { rate } => format!("open model, {rate}/s offered"),
        Model::Closed => "closed model (users loop; corrected = raw)".into(),
    };
    let _ = writeln!(
        text,
        "loadgen {}: {}, {model}, {} s, {} users, {}",
        s.run_id,
        s.scenario,
        s.duration_secs,
        s.users,
        s.hosts.join(", ")
    );
    let _ = writeln!(
        text,
        "{:<14} {:>8} {:>7} {:>9} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7}",
        "transaction", "count", "errors", "TPS", "P50", "P95", "P99", "P50", "P95", "P99"
    );
    let _ = writeln!(
        text,
        "{:<14} {:>8} {:>7} {:>9} | {:>23} | {:>23}",
        "", "", "", "(window)", "raw, ms", "corrected, ms"
    );
    // The headline first, then the requests it is made of.
    let mut names: Vec<&String> = s.transactions.keys().collect();
    names.sort_by_key(|n| (**n != s.headline, (*n).clone()));
    for name in names {
        let t = &s.transactions[name];
        let _ = writeln!(
            text,
            "{:<14} {:>8} {:>7} {:>9.1} | {} | {}",
            name,
            t.count,
            t.errors,
            tx_tps(s, name),
            three(&t.raw),
            three(&t.corrected)
        );
    }
    if let (Some(offered), Some(achieved)) = (s.offered, s.achieved) {
        let _ = writeln!(
            text,
            "achieved {:.1}/s of {offered}/s offered ({:.1}%); backlog {} (drained after the window, not throughput)",
            s.tps(),
            achieved * 100.0,
            s.backlog.map_or(0, |b| b.total())
        );
    }
    if s.rate_limited() > 0 {
        let _ = writeln!(text, "{}", rate_limited_warning(s.rate_limited()));
    }
    if let Some(g) = &s.generator {
        let _ = writeln!(
            text,
            "generator: {:.1} CPU-s, limited by the {}",
            g.cpu_seconds, g.limited_by
        );
    }
    text.push_str(&crate::thresholds::human(&s.thresholds));
    let _ = writeln!(text, "files:");
    let _ = writeln!(text, "  {}", out.join("summary.json").display());
    for file in s.files.values() {
        let _ = writeln!(text, "  {}", out.join(file).display());
    }
    text
}

/// What a run some of whose requests were answered 429 measured.
pub fn rate_limited_warning(n: u64) -> String {
    format!(
        "rate-limited: {n} requests answered 429 (counted in errors): the target's rate limit \
         refused them, so this run measured the limiter, not the server; raise the limit or \
         turn it off (ticket-server: --rate-limit-rps 0 --user-rate-limit-rps 0)"
    )
}

/// Prints a progress line on stderr about once a second until dropped:
/// overwritten in place on a terminal, a plain line every 2 s otherwise
/// (CI logs).
pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    terminal: bool,
}

impl Progress {
    pub fn start(recorder: Arc<Recorder>, headline: &'static str, duration: Duration) -> Self {
        let terminal = std::io::stderr().is_terminal();
        if duration < PROGRESS_AFTER {
            return Progress {
                task: None,
                terminal,
            };
        }
        let every = if terminal { 1 } else { 2 };
        let task = tokio::spawn(async move {
            let begun = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(every));
            tick.tick().await;
            loop {
                tick.tick().await;
                let (started, done) = recorder.progress(headline);
                let elapsed = begun.elapsed().as_secs_f64();
                let line = format!(
                    "loadgen: {:.0}/{:.0} s, {started} started, {} {headline} ok ({:.0}/s), {} failed",
                    elapsed.min(duration.as_secs_f64()),
                    duration.as_secs_f64(),
                    done.ok,
                    done.ok as f64 / elapsed.max(1e-3),
                    done.failed
                );
                let mut err = std::io::stderr().lock();
                let _ = if terminal {
                    write!(err, "\r\x1b[2K{line}")
                } else {
                    writeln!(err, "{line}")
                };
                let _ = err.flush();
            }
        });
        Progress {
            task: Some(task),
            terminal,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            if self.terminal {
                eprint!("\r\x1b[2K");
            }
        }
    }
}

/// The scaling run's human summary: one line per fleet size, the
/// thresholds and where `scale.json` is.
pub fn scale_table(r: &crate::scale::ScaleReport, out: &Path) -> String {
    let mut text = String::new();
    if let Some(why) = &r.skipped {
        let _ = writeln!(text, "scaling run incomplete: {why}");
    }
    let _ = writeln!(
        text,
        "{:>9} {:>9} {:>9} {:>11}  verdict",
        "instances", "TPS", "P95 ms", "efficiency"
    );
    let or_dash = |v: Option<f64>, scale: f64, digits: usize| {
        v.map_or("-".into(), |v| format!("{:.*}", digits, v * scale))
    };
    for p in &r.points {
        let _ = writeln!(
            text,
            "{:>9} {:>9} {:>9} {:>10}%  {}{}",
            p.instances,
            or_dash(p.tps, 1.0, 0),
            or_dash(p.p95_ms, 1.0, 1),
            or_dash(p.efficiency, 100.0, 0),
            p.verdict.map_or("-", |v| v.word()),
            p.flags()
                .iter()
                .map(|f| format!("; {f}"))
                .collect::<String>()
        );
    }
    for w in &r.warnings {
        let _ = writeln!(text, "warning: {w}");
    }
    text.push_str(&crate::thresholds::human(&r.thresholds));
    let _ = writeln!(text, "files:\n  {}", out.join("scale.json").display());
    if !r.thresholds.is_empty() {
        let _ = writeln!(text, "  {}", out.join("junit.xml").display());
    }
    text
}
