//! `loadgen scale --quick` on the real stack (started by
//! scripts/services.sh), then `loadgen report` over its output. The run's
//! structure is checked, not its speed: whether a fleet finds a passing
//! rate is the report's to say. Each check is a function that a
//! deliberately broken input below makes fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use loadgen::scale::{Point, ScaleReport, Step};
use loadgen::summary::RunSummary;
use testkit::{real_stack, TempDir};

/// The ticket-server binary the scaling run starts (next to loadgen).
fn server_bin() -> PathBuf {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let bin = loadgen.with_file_name("ticket-server");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "ticket-server", "--bin", "ticket-server"])
            .status()
            .unwrap();
        assert!(status.success(), "building ticket-server failed");
    }
    bin
}

fn non_empty(path: &Path) {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    assert!(len > 0, "{} missing or empty", path.display());
}

/// TPS as a step's own summary counted it: successes completed inside
/// the window over its length (not the scaling report's `tps` field).
fn counted_tps(s: &RunSummary) -> Result<f64, String> {
    let w = s.window.ok_or("the step's summary has no window counts")?;
    Ok(w.completed as f64 / w.secs)
}

/// Every offered step's summary is a measurement: its window's
/// completions and its backlog add up to the planned iterations, and a
/// passing step met every bound.
fn check_steps(
    report: &ScaleReport,
    summary_of: &dyn Fn(&Step) -> Result<RunSummary, String>,
) -> Result<(), String> {
    for p in &report.points {
        if p.steps.first().is_none_or(|s| s.rate.is_some()) {
            return Err(format!(
                "{} instances: no capacity probe first",
                p.instances
            ));
        }
        if !p.steps.iter().any(|s| s.rate.is_some()) {
            return Err(format!("{} instances: no offered rate tried", p.instances));
        }
        for step in p.steps.iter().filter(|s| s.rate.is_some()) {
            let s = summary_of(step)?;
            let (w, b) = s.window.zip(s.backlog).ok_or("no window counts")?;
            let planned = s.schedule.as_ref().ok_or("no schedule")?.planned;
            if w.completed + w.failed + b.total() != planned {
                return Err(format!(
                    "{}: {} + {} completed in the window and {} backlog are not the {planned} planned",
                    step.dir,
                    w.completed,
                    w.failed,
                    b.total()
                ));
            }
            let achieved = step.achieved.ok_or("the step has no achieved share")?;
            let min = report
                .min_achieved
                .ok_or("the report has no achieved bound")?;
            if step.pass
                && (achieved < min
                    || step.p95_ms > report.p95_bound_ms
                    || step.error_rate > report.max_error_rate)
            {
                return Err(format!("{} passed out of bounds: {step:?}", step.dir));
            }
        }
    }
    Ok(())
}

/// Efficiency(N), recomputed from the best steps' own summaries, is the
/// report's, flagged exactly when more than 5% above 100%; a fleet with no
/// passing rate has none.
fn check_efficiency(
    report: &ScaleReport,
    summary_of: &dyn Fn(&Step) -> Result<RunSummary, String>,
) -> Result<(), String> {
    let first = &report.points[0];
    let base = match &first.best {
        Some(b) => Some(counted_tps(&summary_of(b)?)? / first.instances as f64),
        None => None,
    };
    for p in &report.points {
        let expected = match (&p.best, base) {
            (Some(b), Some(base)) if p.verify_pass => {
                Some(counted_tps(&summary_of(b)?)? / (p.instances as f64 * base))
            }
            _ => None,
        };
        let close = match (p.efficiency, expected) {
            (Some(e), Some(x)) => (e - x).abs() <= 1e-9 * x.max(1.0),
            (None, None) => true,
            _ => false,
        };
        if !close || p.efficiency_flagged != expected.is_some_and(|x| x > 1.05) {
            return Err(format!(
                "{} instances: efficiency {:?} (flagged {}), counted from the steps {expected:?}",
                p.instances, p.efficiency, p.efficiency_flagged
            ));
        }
    }
    Ok(())
}

/// The pages show each fleet's efficiency in its own cell (flagged when
/// it is), and name the fleets where no rate met the bounds.
fn check_pages(report: &ScaleReport, html: &str, md: &str) -> Result<(), String> {
    for p in &report.points {
        let cell = match p.efficiency {
            Some(e) if p.efficiency_flagged => {
                format!("<td class=\"efficiency flagged\">{:.0}% &#9888;", e * 100.0)
            }
            Some(e) => format!("<td class=\"efficiency\">{:.0}%</td>", e * 100.0),
            None => "<td class=\"efficiency\">&ndash;</td>".to_owned(),
        };
        if !html.contains(&cell) {
            return Err(format!("{} instances: no {cell} in the page", p.instances));
        }
        let unmet = format!(
            "{} instance(s): no offered rate met the bounds",
            p.instances
        );
        if p.best.is_none() != md.contains(&unmet) {
            return Err(format!(
                "{} instances: best {:?}, yet report.md {} \"{unmet}\"",
                p.instances,
                p.best.as_ref().map(|b| b.tps),
                if p.best.is_none() { "lacks" } else { "has" }
            ));
        }
    }
    Ok(())
}

#[test]
fn quick_scale_run_measures_every_fleet_and_reports_it() {
    if real_stack().is_none() {
        return;
    }
    let out = TempDir::new("loadgen-scale");
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        // The test builds the server in the dev profile, several times
        // slower than release under the same quota: the bound is loosened
        // so fleets usually find a passing rate and efficiency is checked.
        // Whether they do is the report's business, not this test's.
        .args([
            "scale",
            "--quick",
            "--quiet",
            "--max-secs",
            "300",
            "--p95-bound-ms",
            "250",
        ])
        .arg("--server-bin")
        .arg(server_bin())
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "loadgen scale --quick failed");

    let report = ScaleReport::read(&out.join("scale.json")).unwrap();
    assert!(report.skipped.is_none(), "skipped: {:?}", report.skipped);
    assert_eq!(
        report
            .points
            .iter()
            .map(|p| p.instances)
            .collect::<Vec<_>>(),
        [1, 2, 4]
    );
    assert_ne!(
        report.quota,
        loadgen::cgroup::Flavour::None,
        "the quota was not applied"
    );
    for point in &report.points {
        assert!(
            point.verify_pass,
            "{} instances: {}",
            point.instances, point.verify_headline
        );
    }
    let summary_of = |step: &Step| {
        RunSummary::read(&Path::new(&step.dir).join("summary.json")).map_err(|e| format!("{e:#}"))
    };
    check_steps(&report, &summary_of).unwrap();
    check_efficiency(&report, &summary_of).unwrap();

    let html_dir = out.join("report");
    let load = report.points[0].steps.last().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("report")
        .arg("--scale")
        .arg(out.path())
        .arg("--load")
        .arg(&load.dir)
        .arg("--out")
        .arg(&html_dir)
        .status()
        .unwrap();
    assert!(status.success(), "loadgen report failed");
    for f in [
        "report.html",
        "report.md",
        "report.json",
        "plots/scaling.png",
        "plots/scaling.svg",
        "plots/tps.png",
        "plots/latency.svg",
        "plots/hdr.png",
    ] {
        if f.contains("scaling") && report.points.iter().all(|p| p.best.is_none()) {
            continue;
        }
        non_empty(&html_dir.join(f));
    }
    let html = std::fs::read_to_string(html_dir.join("report.html")).unwrap();
    let md = std::fs::read_to_string(html_dir.join("report.md")).unwrap();
    check_pages(&report, &html, &md).unwrap();
}

// Broken inputs: each check above fails on one.

/// A one-process summary of an open-model step at `rate`/s for 10 s that
/// completed `completed` successes inside its window, the rest of the
/// schedule as backlog.
fn step_summary(rate: f64, completed: u64) -> RunSummary {
    let planned = (rate * 10.0) as u64;
    serde_json::from_value(serde_json::json!({
        "runId": "s", "scenario": "flash_sale", "headline": "flash_sale",
        "model": {"kind": "open", "rate": rate}, "users": 16, "hosts": [],
        "startedAt": "", "durationSecs": 10.0, "transactions": {}, "series": {},
        "schedule": {"planned": planned, "late": 0, "maxLagUs": 0},
        "tps": completed as f64 / 10.0, "offered": rate,
        "achieved": completed as f64 / 10.0 / rate,
        "window": {"secs": 10.0, "completed": completed, "failed": 0, "requests": 0},
        "backlog": {"completedAfter": planned - completed, "outstanding": 0, "unstarted": 0},
    }))
    .unwrap()
}

/// A scaling run of fleets 1 and 2 whose best steps offered 100/s and
/// 200/s and completed `counted` successes per second inside their
/// windows; `tps` gives each step's `tps` field from its rate and count.
fn scaling(
    counted: [f64; 2],
    tps: impl Fn(f64, f64) -> f64,
) -> (ScaleReport, BTreeMap<String, RunSummary>) {
    let mut report = ScaleReport::skipped("t", String::new());
    report.skipped = None;
    report.p95_bound_ms = 50.0;
    report.max_error_rate = 0.001;
    report.min_achieved = Some(0.7);
    let mut summaries = BTreeMap::new();
    for (i, n) in [1usize, 2].into_iter().enumerate() {
        let rate = 100.0 * n as f64;
        let dir = format!("n{n}");
        summaries.insert(dir.clone(), step_summary(rate, (counted[i] * 10.0) as u64));
        let best = Step {
            rate: Some(rate),
            tps: tps(rate, counted[i]),
            achieved: Some(counted[i] / rate),
            backlog: Some(((rate - counted[i]) * 10.0) as u64),
            p50_ms: 10.0,
            p95_ms: 20.0,
            p99_ms: 30.0,
            p95_raw_ms: 20.0,
            error_rate: 0.0,
            pass: true,
            reason: None,
            dir,
        };
        let probe = Step {
            rate: None,
            achieved: None,
            pass: false,
            ..best.clone()
        };
        report.points.push(Point {
            instances: n,
            steps: vec![probe, best.clone()],
            best: Some(best),
            efficiency: None,
            efficiency_flagged: false,
            verify_pass: true,
            verify_headline: "PASS".into(),
            throttled_periods: None,
        });
    }
    report.set_efficiency();
    (report, summaries)
}

fn lookup(
    summaries: &BTreeMap<String, RunSummary>,
) -> impl Fn(&Step) -> Result<RunSummary, String> + '_ {
    |step| {
        summaries
            .get(&step.dir)
            .cloned()
            .ok_or_else(|| "no summary".into())
    }
}

#[test]
fn efficiency_from_offered_rates_fails_the_recount() {
    // Fleet 2 fell behind: 150/s counted of 200/s offered.
    let measured = |_rate: f64, counted: f64| counted;
    let (report, summaries) = scaling([100.0, 150.0], measured);
    check_efficiency(&report, &lookup(&summaries)).unwrap();
    check_steps(&report, &lookup(&summaries)).unwrap();

    // The old TPS, equal to the offered rate: efficiency 100% where the
    // steps' own counts say 75%.
    let offered = |rate: f64, _counted: f64| rate;
    let (report, summaries) = scaling([100.0, 150.0], offered);
    assert_eq!(report.points[1].efficiency, Some(1.0));
    let e = check_efficiency(&report, &lookup(&summaries)).unwrap_err();
    assert!(e.contains("counted from the steps Some(0.75)"), "{e}");

    // One instance kept 87/s of 100/s, two kept 200/s: 115%, which must
    // be flagged.
    let (mut report, summaries) = scaling([87.0, 200.0], measured);
    check_efficiency(&report, &lookup(&summaries)).unwrap();
    report.points[1].efficiency_flagged = false;
    assert!(check_efficiency(&report, &lookup(&summaries)).is_err());

    // A step whose counts do not add up to its schedule.
    let (report, mut summaries) = scaling([100.0, 150.0], measured);
    summaries
        .get_mut("n2")
        .unwrap()
        .backlog
        .as_mut()
        .unwrap()
        .completed_after -= 1;
    assert!(check_steps(&report, &lookup(&summaries)).is_err());
}

#[test]
fn the_efficiency_cell_is_found_where_the_css_would_not_do() {
    let measured = |_rate: f64, counted: f64| counted;
    let (report, _) = scaling([100.0, 200.0], measured);
    assert_eq!(report.points[1].efficiency, Some(1.0));
    // The old check (the percentage anywhere in the page) passed on the
    // page's CSS alone.
    let css_only = "<style>img{max-width:100%}</style>";
    assert!(css_only.contains("100%"));
    assert!(check_pages(&report, css_only, "").is_err());

    // The page as `loadgen report` writes it passes; without the flag on a
    // flagged efficiency, or with a fleet's missing rate unsaid, it fails.
    let dir = TempDir::new("loadgen-scale-pages");
    let (mut flagged, _) = scaling([87.0, 200.0], measured);
    assert!(flagged.points[1].efficiency_flagged);
    let page = |report: &ScaleReport| {
        let r = loadgen::report::Report {
            run_id: "t".into(),
            created_at: String::new(),
            machine: Default::default(),
            backend: "real".into(),
            notes: Vec::new(),
            verify: None,
            loads: Vec::new(),
            scale: Some(report.clone()),
            tps_measure: Default::default(),
        };
        loadgen::report::write(&r, dir.path(), None).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        (read("report.html"), read("report.md"))
    };
    let (html, md) = page(&flagged);
    check_pages(&flagged, &html, &md).unwrap();
    let unflagged = html.replace("efficiency flagged", "efficiency");
    assert!(check_pages(&flagged, &unflagged, &md).is_err());

    // No rate passed at two instances.
    let failed = &mut flagged.points[1];
    failed.steps[1].pass = false;
    failed.steps[1].reason = Some("P95 80.0 ms > 50 ms".into());
    failed.best = None;
    flagged.set_efficiency();
    let (html, md) = page(&flagged);
    check_pages(&flagged, &html, &md).unwrap();
    assert!(check_pages(&flagged, &html, "").is_err());
}
