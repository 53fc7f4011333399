//! `loadgen scale --quick` on the real stack (started by
//! scripts/services.sh), then `loadgen report` over its output.

use std::path::{Path, PathBuf};
use std::process::Command;

use loadgen::scale::ScaleReport;
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

#[test]
fn quick_scale_run_measures_every_fleet_and_reports_it() {
    if real_stack().is_none() {
        return;
    }
    let out = TempDir::new("loadgen-scale");
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        // The test builds the server in the dev profile, several times
        // slower than release under the same quota: the bound is loosened
        // so every fleet finds a passing rate. This test checks the
        // mechanics; the committed report has the release numbers.
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
    let one = report.points[0]
        .best
        .as_ref()
        .expect("a passing rate for 1 instance")
        .tps;
    for point in &report.points {
        assert!(
            point.verify_pass,
            "{} instances: {}",
            point.instances, point.verify_headline
        );
        let best = point
            .best
            .as_ref()
            .unwrap_or_else(|| panic!("no passing rate at {} instances", point.instances));
        // The best step's TPS is what its own load run measured...
        let measured = RunSummary::read(&Path::new(&best.dir).join("summary.json")).unwrap();
        assert!((measured.tps() - best.tps).abs() < 1e-9);
        assert!(best.p95_ms <= report.p95_bound_ms && best.error_rate <= report.max_error_rate);
        // ...and efficiency is computed from those measurements.
        let expected = best.tps / (point.instances as f64 * one);
        let efficiency = point.efficiency.expect("efficiency");
        assert!(
            (efficiency - expected).abs() < 1e-9,
            "efficiency {efficiency} vs {expected}"
        );
    }

    let html_dir = out.join("report");
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("report")
        .arg("--scale")
        .arg(out.path())
        .arg("--load")
        .arg(&report.points[0].best.as_ref().unwrap().dir)
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
        non_empty(&html_dir.join(f));
    }
    let html = std::fs::read_to_string(html_dir.join("report.html")).unwrap();
    assert!(
        html.contains("plots/scaling.svg"),
        "the page embeds the scaling plot"
    );
    let four = report.points[2].efficiency.unwrap();
    assert!(
        html.contains(&format!("{:.0}%", four * 100.0)),
        "the page shows the measured efficiency at 4 instances"
    );
}
