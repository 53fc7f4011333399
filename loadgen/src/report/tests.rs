//! What the pages and `report.json` say about efficiency above 100%, the
//! old TPS definition and fleets without a passing rate: each shown on an
//! input that has it and one that has not.

use std::path::PathBuf;

use super::{write, Report};
use crate::cgroup::Flavour;
use crate::machine::Machine;
use crate::scale::{Point, ScaleReport, Step};

fn step(rate: f64, tps: f64, measured: bool) -> Step {
    Step {
        rate: Some(rate),
        tps,
        achieved: measured.then_some(tps / rate),
        backlog: measured.then_some(3),
        p50_ms: 10.0,
        p95_ms: 20.0,
        p99_ms: 30.0,
        p95_raw_ms: 20.0,
        error_rate: 0.0,
        pass: true,
        reason: None,
        dir: String::new(),
    }
}

/// A scaling run whose best TPS per fleet size is `tps` (`None`: no rate
/// passed).
fn scale(tps: &[(usize, Option<f64>)], measured: bool) -> ScaleReport {
    let mut s = ScaleReport::skipped("t", String::new());
    s.skipped = None;
    s.quota = Flavour::V2;
    s.cpus_per_instance = 0.15;
    s.p95_bound_ms = 50.0;
    s.max_error_rate = 0.001;
    s.min_achieved = Some(0.95);
    s.step_secs = 10.0;
    s.points = tps
        .iter()
        .map(|&(n, t)| {
            let steps = match t {
                Some(t) => vec![step(t, t, measured)],
                None => vec![Step {
                    pass: false,
                    reason: Some("P95 80.0 ms > 50 ms".into()),
                    ..step(100.0, 99.0, measured)
                }],
            };
            Point {
                instances: n,
                best: steps.iter().find(|s| s.pass).cloned(),
                steps,
                efficiency: None,
                efficiency_flagged: false,
                verify_pass: true,
                verify_headline: "PASS".into(),
                throttled_periods: None,
            }
        })
        .collect();
    s.set_efficiency();
    s
}

fn report(scale: ScaleReport) -> Report {
    Report {
        run_id: "t".into(),
        created_at: String::new(),
        machine: Machine::default(),
        backend: "real".into(),
        notes: Vec::new(),
        verify: None,
        loads: Vec::new(),
        scale: Some(scale),
        tps_measure: Default::default(),
    }
}

/// Writes the report; returns (report.md, report.html, report.json).
fn render(report: &Report) -> (String, String, serde_json::Value) {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "loadgen-report-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    write(report, &dir, None).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let out = (
        read("report.md"),
        read("report.html"),
        serde_json::from_str(&read("report.json")).unwrap(),
    );
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

#[test]
fn efficiency_above_its_allowance_is_flagged_in_every_output() {
    // 212 / (2 x 100) = 106%: beyond the 5% allowance; 408 / 400 = 102%
    // and 100% are within it.
    let r = report(scale(
        &[(1, Some(100.0)), (2, Some(212.0)), (4, Some(408.0))],
        true,
    ));
    let (md, html, json) = render(&r);
    assert!(
        md.contains("| 2 | 212 | 20.0 | 106% ⚠ above 100% beyond the 5% allowance |"),
        "{md}"
    );
    assert!(md.contains("| 4 | 408 | 20.0 | 102% |"), "{md}");
    assert!(
        md.contains("| scale: efficiency(2) | 106.0 % ⚠ above 100%"),
        "{md}"
    );
    assert!(
        html.contains("<td class=\"efficiency flagged\">106% &#9888; above 100%"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"efficiency\">102%</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"efficiency\">100%</td>"),
        "{html}"
    );
    let flags: Vec<bool> = json["scale"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["efficiencyFlagged"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, [false, true, false]);

    // A report.json read back is flagged again, whatever it said.
    let mut read_back: Report = serde_json::from_value(json).unwrap();
    for p in &mut read_back.scale.as_mut().unwrap().points {
        p.efficiency_flagged = false;
    }
    let (md, ..) = render(&read_back);
    assert!(md.contains("106% ⚠"), "{md}");

    // Without a value beyond the allowance, nothing is flagged.
    let r = report(scale(&[(1, Some(100.0)), (2, Some(208.0))], true));
    let (md, html, json) = render(&r);
    assert!(!md.contains('⚠'), "{md}");
    assert!(!html.contains("efficiency flagged"), "{html}");
    assert_eq!(json["scale"]["points"][1]["efficiencyFlagged"], false);
}

#[test]
fn a_report_without_window_counts_says_its_tps_is_of_the_old_definition() {
    let (md, html, json) = render(&report(scale(&[(1, Some(100.0))], false)));
    assert_eq!(json["tpsMeasure"], "nominalDuration");
    assert!(md.contains(super::OLD_TPS_NOTE), "{md}");
    assert!(html.contains("class=\"note old-tps\""), "{html}");

    let (md, html, json) = render(&report(scale(&[(1, Some(100.0))], true)));
    assert_eq!(json["tpsMeasure"], "window");
    assert!(!md.contains("old definition"), "{md}");
    assert!(!html.contains("old-tps"), "{html}");
}

#[test]
fn a_fleet_without_a_passing_rate_is_reported_as_not_met() {
    let (md, ..) = render(&report(scale(&[(1, Some(100.0)), (2, None)], true)));
    assert!(
        md.contains("2 instance(s): no offered rate met the bounds (100/s: P95 80.0 ms > 50 ms)"),
        "{md}"
    );
    assert!(md.contains("| 2 | – | – | – |"), "{md}");
    let (md, ..) = render(&report(scale(&[(1, Some(100.0)), (2, Some(190.0))], true)));
    assert!(!md.contains("Not met"), "{md}");
}
