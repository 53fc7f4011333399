//! `loadgen scale --quick` on the real stack (started by
//! scripts/services.sh), then `loadgen report` over its output, and the
//! same run through `--fleet-cmd` driving a script that starts and stops
//! local instances. The runs' structure and arithmetic are checked, not
//! their speed: whether a fleet scales is the report's to say. Each check
//! is a function that a deliberately broken input below makes fail.

use std::path::Path;
use std::process::Command;

use loadgen::scale::stats::{self, Verdict};
use loadgen::scale::{Point, Repeat, ScaleReport, Step};
use loadgen::summary::RunSummary;
use testkit::{real_stack, TempDir};

mod common;
use common::server_bin;

fn non_empty(path: &Path) {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    assert!(len > 0, "{} missing or empty", path.display());
}

#[path = "scale/checks.rs"]
mod checks;
use checks::{check_repeats, check_statistics, not_run};

/// The pages show each fleet size's efficiency and verdict in cells of
/// their own.
fn check_pages(report: &ScaleReport, html: &str) -> Result<(), String> {
    for p in &report.points {
        let eff = match p.efficiency {
            Some(e) => format!("\">{:.0}% [", e * 100.0),
            None => "<td class=\"efficiency\">&ndash;</td>".to_owned(),
        };
        let verdict = match p.verdict {
            Some(v) => format!(">{}</td>", v.word()),
            None => String::new(),
        };
        let row = html
            .split("<tr>")
            .find(|r| r.starts_with(&format!("<td>{}</td>", p.instances)))
            .ok_or(format!("{} instances: no row", p.instances))?;
        if !row.contains(&eff) || !row.contains(&verdict) {
            return Err(format!(
                "{} instances: no {eff} or {verdict} in {row}",
                p.instances
            ));
        }
    }
    Ok(())
}

/// `loadgen scale --quick` with `extra` arguments and `env` into `out`;
/// its report.
fn quick_scale(out: &TempDir, extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> ScaleReport {
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .envs(env.iter().copied())
        // The test builds the server in the dev profile, several times
        // slower than release under the same quota: the bound is loosened
        // so fleets usually find a passing rate and efficiency is checked.
        // Whether they do is the report's business, not this test's.
        .args([
            "scale",
            "--quick",
            "--quiet",
            "--max-secs",
            "400",
            "--p95-bound-ms",
            "250",
        ])
        .args(extra)
        .arg("--server-bin")
        .arg(server_bin())
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "loadgen scale --quick failed");
    ScaleReport::read(&out.join("scale.json")).unwrap()
}

fn summary_of(step: &Step) -> Result<RunSummary, String> {
    RunSummary::read(&Path::new(&step.dir).join("summary.json")).map_err(|e| format!("{e:#}"))
}

#[test]
fn quick_scale_run_calibrates_repeats_and_reports_it() {
    if real_stack().is_none() {
        return;
    }
    let out = TempDir::new("loadgen-scale");
    let report = quick_scale(&out, &[], &[]);
    assert!(report.skipped.is_none(), "skipped: {:?}", report.skipped);
    let sizes: Vec<usize> = report.points.iter().map(|p| p.instances).collect();
    assert_eq!(sizes, [1, 2, 4]);
    assert_ne!(report.quota, loadgen::cgroup::Flavour::None, "no quota");
    let c = report.calibration.as_ref().expect("calibrated");
    if c.ceiling > 0.0 {
        assert!((c.headroom - c.ceiling / 2.0).abs() < 1e-9);
    }
    // A loaded machine may find no passing rate (unconstrained, or one
    // instance under the trial quota): then the quota falls back, and the
    // report must say so.
    if c.sizing.is_some() {
        assert_eq!(c.quota_from, "calibrated");
    } else {
        assert!(c.quota_from.starts_with("fallback"), "{c:?}");
        assert!(!report.warnings.is_empty());
    }
    assert!(report.cfs_period_us.is_some());
    for p in &report.points {
        assert_eq!(p.repeats.len(), 3, "{} instances", p.instances);
        assert!(
            p.verify_pass,
            "{} instances: {}",
            p.instances, p.verify_headline
        );
        // Every step says what each part used.
        assert!(p
            .all_steps()
            .filter(|s| !not_run(s))
            .all(|s| s.usage.as_ref().is_some_and(|u| !u.instances.is_empty())));
    }
    check_repeats(&report, &summary_of).unwrap();
    check_statistics(&report, &summary_of).unwrap();

    let html_dir = out.join("report");
    // The last step that ran (a failed load run leaves no summary).
    let ran = report.points[0].repeats[0]
        .steps
        .iter()
        .rev()
        .find(|s| !not_run(s));
    let load = &ran.expect("a step that ran").dir;
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["report", "--scale"])
        .arg(out.path())
        .arg("--load")
        .arg(load)
        .arg("--out")
        .arg(&html_dir)
        .status()
        .unwrap();
    assert!(status.success(), "loadgen report failed");
    for f in [
        "report.html",
        "report.md",
        "report.json",
        "plots/tps.png",
        "plots/hdr.png",
    ] {
        non_empty(&html_dir.join(f));
    }
    if report.points.iter().any(|p| p.tps.is_some()) {
        non_empty(&html_dir.join("plots/scaling.svg"));
    }
    let html = std::fs::read_to_string(html_dir.join("report.html")).unwrap();
    check_pages(&report, &html).unwrap();
}

/// A fleet command as a user would write one: `fleet.sh N` leaves exactly
/// N ticket-server instances running on the real stack (stopping the
/// others), each printing where it listens; `fleet.sh hosts` lists them.
const FLEET_SH: &str = r#"#!/bin/sh
set -eu
dir=$(dirname "$0")
if [ "$1" = hosts ]; then cat "$dir"/*.host 2>/dev/null || true; exit 0; fi
for pidfile in "$dir"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile" "${pidfile%.pid}.host" "${pidfile%.pid}.out"
done
i=0
while [ "$i" -lt "$1" ]; do
    # Emptied here, not by the redirect below: that happens in the
    # background child, and the wait could read the last fleet's line.
    : >"$dir/$i.out"
    "$SERVER_BIN" --listen 127.0.0.1:0 --backend real --namespace "$NS"         --admin-token scale-admin --token-secret fleet-secret         --instance-id "fleet-$i" --hold-ttl 2000ms         --rate-limit-rps 0 --user-rate-limit-rps 0 >"$dir/$i.out" 2>"$dir/$i.log" &
    echo $! >"$dir/$i.pid"
    tries=0
    until grep -q "listening on" "$dir/$i.out"; do
        tries=$((tries + 1)); [ "$tries" -lt 600 ] || exit 1; sleep 0.1
    done
    sed -n 's/^listening on //p' "$dir/$i.out" >"$dir/$i.host"
    i=$((i + 1))
done
"#;

#[test]
fn fleet_cmd_scales_a_deployment_of_its_own() {
    let Some(stack) = real_stack() else { return };
    let out = TempDir::new("loadgen-fleet-cmd");
    let fleet = out.join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    let script = fleet.join("fleet.sh");
    std::fs::write(&script, FLEET_SH).unwrap();
    let sh = |arg: &str| format!("sh {} {arg}", script.display());
    let bin = server_bin();
    let report = quick_scale(
        &out,
        &[
            "--instances",
            "1,2",
            "--fleet-cmd",
            &sh("{n}"),
            "--hosts-cmd",
            &sh("hosts"),
        ],
        &[
            ("SERVER_BIN", bin.as_os_str()),
            ("NS", stack.namespace.as_ref()),
        ],
    );
    assert!(report.fleet.contains("fleet.sh"), "{}", report.fleet);
    assert!(
        report.calibration.is_none(),
        "an external fleet is not calibrated"
    );
    for p in &report.points {
        assert_eq!(p.repeats.len(), 3);
        assert!(p.verify_pass, "{}", p.verify_headline);
        // Each step ran against as many hosts as instances.
        for step in p.all_steps().filter(|s| !not_run(s)) {
            assert_eq!(
                summary_of(step).unwrap().hosts.len(),
                p.instances,
                "{}",
                step.dir
            );
        }
    }
    check_repeats(&report, &summary_of).unwrap();
    check_statistics(&report, &summary_of).unwrap();
    // Brought to 0 at the end: nothing left running.
    let left: Vec<_> = std::fs::read_dir(&fleet)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

// Broken inputs: each check above fails on one.

/// A one-process summary of an open-model step at `rate`/s for 10 s that
/// completed `completed` successes inside its window.
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

/// Fleets of 1 and 2 whose repeats counted `counted` successes a second.
fn scaling(
    counted: [[f64; 3]; 2],
) -> (ScaleReport, std::collections::BTreeMap<String, RunSummary>) {
    let mut report = ScaleReport::skipped("t", String::new());
    report.skipped = None;
    report.p95_bound_ms = 50.0;
    report.max_error_rate = 0.001;
    report.min_achieved = Some(0.7);
    let mut summaries = std::collections::BTreeMap::new();
    for (i, n) in [1usize, 2].into_iter().enumerate() {
        let mut p = Point::new(n);
        p.verify_pass = true;
        for (k, &tps) in counted[i].iter().enumerate() {
            let dir = format!("n{n}-r{k}");
            let rate = tps / 0.9;
            summaries.insert(dir.clone(), step_summary(rate, (tps * 10.0) as u64));
            let best = Step {
                rate: Some(rate),
                tps,
                achieved: Some(0.9),
                backlog: None,
                p50_ms: 10.0,
                p95_ms: 20.0,
                p99_ms: 30.0,
                p95_raw_ms: 20.0,
                error_rate: 0.0,
                pass: true,
                reason: None,
                dir,
                usage: None,
            };
            p.repeats.push(Repeat {
                order: k,
                steps: vec![best.clone()],
                best: Some(best),
                bracket: None,
            });
        }
        report.points.push(p);
    }
    report.derive();
    (report, summaries)
}

#[test]
fn statistics_that_do_not_follow_the_repeats_fail_the_recount() {
    let (report, summaries) = scaling([[90.0, 100.0, 110.0], [180.0, 190.0, 200.0]]);
    let of = |s: &Step| {
        summaries
            .get(&s.dir)
            .cloned()
            .ok_or_else(|| "none".to_string())
    };
    check_statistics(&report, &of).unwrap();
    check_repeats(&report, &of).unwrap();

    // The best repeat reported as the median.
    let mut lucky = report.clone();
    lucky.points[1].tps = Some(200.0);
    assert!(check_statistics(&lucky, &of).is_err());
    // A verdict of pass where the interval (164%..222% / 2) straddles 90%.
    let mut sure = report.clone();
    assert_eq!(sure.points[1].verdict, Some(Verdict::Inconclusive));
    sure.points[1].verdict = Some(Verdict::Pass);
    assert!(check_statistics(&sure, &of).is_err());
    // A repeat whose best is not its highest passing step.
    let mut low = report.clone();
    low.points[0].repeats[0].best.as_mut().unwrap().tps = 80.0;
    assert!(check_repeats(&low, &of).is_err());
    // A step whose counts do not add up to its schedule.
    let mut short = summaries.clone();
    short
        .get_mut("n2-r0")
        .unwrap()
        .backlog
        .as_mut()
        .unwrap()
        .completed_after -= 1;
    let of_short = |s: &Step| short.get(&s.dir).cloned().ok_or_else(|| "none".to_string());
    assert!(check_repeats(&report, &of_short).is_err());
}

#[test]
fn the_pages_cells_are_checked_by_row() {
    let (report, _) = scaling([[90.0, 100.0, 110.0], [180.0, 190.0, 200.0]]);
    let dir = TempDir::new("loadgen-scale-pages");
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
        seat_comparison: None,
    };
    loadgen::report::write(&r, dir.path(), None).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    check_pages(&report, &html).unwrap();
    // The verdict's word elsewhere in the page does not do.
    let moved = html.replace(">inconclusive</td>", ">?</td>") + "<p>inconclusive</td>";
    assert!(check_pages(&report, &moved).is_err());
}
