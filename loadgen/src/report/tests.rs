//! What the pages and `report.json` say about the scaling run's
//! intervals, verdicts and flags, the old TPS definition, fleets without
//! a passing rate and reports made before repeats: each shown on an input
//! that has it and one that has not.

use std::path::PathBuf;

use super::{write, Report};
use crate::cgroup::Flavour;
use crate::machine::Machine;
use crate::scale::{Point, Repeat, ScaleReport, Step};

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
        usage: None,
    }
}

/// A scaling run whose repeats per fleet size reached `tps` (an empty
/// list: no rate passed).
fn scale(tps: &[(usize, &[f64])], measured: bool) -> ScaleReport {
    let mut s = ScaleReport::skipped("t", String::new());
    s.skipped = None;
    s.quota = Flavour::V2;
    s.cpus_per_instance = 0.15;
    s.cfs_period_us = Some(10_000);
    s.p95_bound_ms = 50.0;
    s.max_error_rate = 0.001;
    s.min_achieved = Some(0.95);
    s.step_secs = 10.0;
    s.repeats = 3;
    s.resolution = 0.05;
    s.points = tps
        .iter()
        .map(|&(n, ts)| {
            let mut p = Point::new(n);
            p.verify_pass = true;
            p.verify_headline = "PASS".into();
            p.repeats = if ts.is_empty() {
                vec![Repeat {
                    order: 0,
                    steps: vec![Step {
                        pass: false,
                        reason: Some("P95 80.0 ms > 50 ms".into()),
                        ..step(100.0, 99.0, measured)
                    }],
                    best: None,
                    bracket: None,
                }]
            } else {
                ts.iter()
                    .enumerate()
                    .map(|(i, &t)| Repeat {
                        order: i,
                        steps: vec![step(t, t, measured)],
                        best: Some(step(t, t, measured)),
                        bracket: None,
                    })
                    .collect()
            };
            p
        })
        .collect();
    s.derive();
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
        seat_comparison: None,
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
fn intervals_verdicts_and_the_flag_are_in_every_output() {
    // One instance 98..102; two 230..240: efficiency at least 113%, above
    // ideal beyond its interval; four 380..400: 93%..102%, a pass.
    let r = report(scale(
        &[
            (1, &[98.0, 100.0, 102.0]),
            (2, &[230.0, 235.0, 240.0]),
            (4, &[380.0, 390.0, 400.0]),
        ],
        true,
    ));
    let (md, html, json) = render(&r);
    assert!(
        md.contains("| 2 | 235 [230–240] | 20.0 [20.0–20.0] | 118% [113%–122%] ⚠ above 100% beyond its interval"),
        "{md}"
    );
    assert!(
        md.contains("| 4 | 390 [380–400] | 20.0 [20.0–20.0] | 98% [93%–102%] | pass |"),
        "{md}"
    );
    assert!(
        md.contains("| scale: efficiency(2) | 117.5 % ⚠ above 100%"),
        "{md}"
    );
    assert!(
        html.contains("<td class=\"efficiency flagged\">118% [113%–122%] &#9888;"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"verdict pass\">pass</td>"),
        "{html}"
    );
    let points = json["scale"]["points"].as_array().unwrap();
    let flags: Vec<bool> = points
        .iter()
        .map(|p| p["efficiencyFlagged"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, [false, true, false]);
    assert_eq!(points[2]["verdict"], "pass");
    assert_eq!(points[2]["repeats"].as_array().unwrap().len(), 3);
    assert_eq!(points[2]["tpsInterval"]["lo"], 380.0);
    assert!(json["scale"]["model"]["predicted"].is_array(), "{json}");
    assert!(md.contains("Predicted, not measured: TPS(8)"), "{md}");

    // A report.json read back is derived again, whatever it said.
    let mut read_back: Report = serde_json::from_value(json).unwrap();
    for p in &mut read_back.scale.as_mut().unwrap().points {
        p.efficiency_flagged = false;
        p.verdict = None;
    }
    let (md, ..) = render(&read_back);
    assert!(md.contains("122%] ⚠"), "{md}");
    assert!(md.contains("| pass |"), "{md}");

    // An interval that straddles 90% is inconclusive, one below it fails,
    // and nothing is flagged where the interval reaches 100%.
    let r = report(scale(
        &[
            (1, &[95.0, 100.0, 105.0]),
            (2, &[170.0, 190.0, 200.0]),
            (4, &[300.0, 310.0, 320.0]),
        ],
        true,
    ));
    let (md, html, json) = render(&r);
    assert_eq!(json["scale"]["points"][1]["verdict"], "inconclusive");
    assert_eq!(json["scale"]["points"][2]["verdict"], "fail");
    assert!(!md.contains('⚠'), "{md}");
    assert!(!html.contains("efficiency flagged"), "{html}");
    assert!(
        html.contains("<td class=\"verdict fail\">fail</td>"),
        "{html}"
    );
}

#[test]
fn a_report_without_window_counts_says_its_tps_is_of_the_old_definition() {
    let (md, html, json) = render(&report(scale(&[(1, &[100.0])], false)));
    assert_eq!(json["tpsMeasure"], "nominalDuration");
    assert!(md.contains(super::OLD_TPS_NOTE), "{md}");
    assert!(html.contains("class=\"note old-tps\""), "{html}");

    let (md, html, json) = render(&report(scale(&[(1, &[100.0])], true)));
    assert_eq!(json["tpsMeasure"], "window");
    assert!(!md.contains("old definition"), "{md}");
    assert!(!html.contains("old-tps"), "{html}");
}

#[test]
fn a_fleet_without_a_passing_rate_is_reported_as_not_met() {
    let (md, ..) = render(&report(scale(&[(1, &[100.0]), (2, &[])], true)));
    assert!(
        md.contains("2 instance(s): no offered rate met the bounds (100/s: P95 80.0 ms > 50 ms)"),
        "{md}"
    );
    assert!(md.contains("| 2 | – | – | – | – | none passed |"), "{md}");
    let (md, ..) = render(&report(scale(&[(1, &[100.0]), (2, &[190.0])], true)));
    assert!(!md.contains("Not met"), "{md}");
}

#[test]
fn a_report_made_before_repeats_reads_as_one_repeat_per_fleet() {
    let mut old = serde_json::to_value(scale(&[(1, &[100.0]), (2, &[150.0])], true)).unwrap();
    for p in old["points"].as_array_mut().unwrap() {
        let r = p["repeats"][0].clone();
        p["steps"] = r["steps"].clone();
        p["best"] = r["best"].clone();
        p.as_object_mut().unwrap().remove("repeats");
        p.as_object_mut().unwrap().remove("verdict");
    }
    let mut read: ScaleReport = serde_json::from_value(old).unwrap();
    read.upgrade();
    assert_eq!(read.points[1].repeats.len(), 1);
    assert_eq!(read.points[1].tps, Some(150.0));
    assert_eq!(read.points[1].efficiency, Some(0.75));
    assert_eq!(read.points[1].verdict.map(|v| v.word()), Some("fail"));
    assert!(read.points[1].steps.is_empty() && read.points[1].best.is_none());
}

#[test]
fn a_repeat_without_a_passing_rate_leaves_the_verdict_inconclusive() {
    // Complete, two instances at 95%..105% would pass; one repeat of one
    // instance that found no rate makes it undecided, and says why.
    let complete = scale(
        &[(1, &[100.0, 100.0, 100.0]), (2, &[195.0, 200.0, 205.0])],
        true,
    );
    assert_eq!(complete.points[1].verdict.map(|v| v.word()), Some("pass"));
    let mut s = complete.clone();
    let failed = scale(&[(1, &[])], true).points[0].repeats[0].clone();
    s.points[0].repeats.push(failed);
    s.derive();
    assert_eq!(s.points[1].verdict.map(|v| v.word()), Some("inconclusive"));
    let (md, ..) = render(&report(s));
    assert!(
        md.contains("At 1 instance(s) a repeat found no passing rate"),
        "{md}"
    );
    let (md, ..) = render(&report(complete));
    assert!(!md.contains("found no passing rate"), "{md}");
}

#[test]
fn an_inconclusive_verdict_says_which_spreads_made_its_interval_wide() {
    // One instance 90..110 (20% of its median), four 360..400: efficiency
    // 82%..111%, 29 points wide, inconclusive.
    let wide = scale(
        &[(1, &[90.0, 100.0, 110.0]), (4, &[360.0, 380.0, 400.0])],
        true,
    );
    let note = super::scaling::precision_note(&wide).expect("a note");
    assert!(
        note.contains("at 4 the interval is 29 points wide")
            && note.contains("TPS(4) ranged 360-400/s over its repeats (11% of its median)")
            && note.contains("TPS(1) 90-110/s (20%)"),
        "{note}"
    );
    let (md, html, _) = render(&report(wide.clone()));
    assert!(
        md.contains("What kept the verdict inconclusive")
            && html.contains("What kept the verdict inconclusive")
    );
    assert!(
        !note.contains("CPU per purchase"),
        "no usage, no costs: {note}"
    );
    // With what the instance used at each repeat's best rate: all of its
    // quota each time, so each purchase cost it different CPU time.
    let mut measured = wide.clone();
    for (i, r) in measured.points[0].repeats.iter_mut().enumerate() {
        let best = r.best.as_mut().expect("a best step");
        best.usage = Some(crate::scale::limits::Usage {
            secs: 5.0,
            generator_cpu: 0.0,
            generator_late: 0.0,
            instances: vec![crate::scale::limits::InstanceUsage {
                cpu: 0.1,
                quota: Some(0.11),
                throttled: None,
            }],
            shared: Vec::new(),
            machine_busy: None,
            // The first repeat's window without the pressure figure.
            cpu_waiting: (i > 0).then_some(0.6 - 0.2 * i as f64),
        });
    }
    let note = super::scaling::precision_note(&measured).expect("a note");
    assert!(
        note.contains("the repeats of 1 instance(s) served 90/s at 1.11 ms (91% of quota), 100/s at 1.00 ms (91% of quota; a task waiting for a CPU 40% of the time), 110/s at 0.91 ms (91% of quota; a task waiting for a CPU 20% of the time)")
            && note.contains("differed by 22%")
            && note.contains("they used 91-91% of it"),
        "{note}"
    );
    // Tight repeats give a conclusive verdict and no such note.
    let tight = scale(
        &[(1, &[99.0, 100.0, 101.0]), (4, &[396.0, 398.0, 400.0])],
        true,
    );
    assert_eq!(super::scaling::precision_note(&tight), None);
}

#[test]
fn judged_thresholds_are_on_both_pages() {
    let mut s = scale(&[(1, &[100.0]), (2, &[190.0])], true);
    let gate = |expression: &str, pass: bool| crate::thresholds::Judged {
        expression: expression.into(),
        observed: Some(0.95),
        unit: "share".into(),
        pass,
        detail: "observed 95%".into(),
    };
    s.thresholds.push(gate("efficiency@2 >= 0.99", false));
    let (md, html, json) = render(&report(s));
    assert!(
        md.contains("| `efficiency@2 >= 0.99` | **FAIL** | observed 95% |"),
        "{md}"
    );
    assert!(
        html.contains("<code>efficiency@2 &gt;= 0.99</code></td><td class=\"fail\">FAIL"),
        "{html}"
    );
    assert_eq!(json["scale"]["thresholds"][0]["pass"], false);
    // No gates, no section.
    let (md, html, _) = render(&report(scale(&[(1, &[100.0])], true)));
    assert!(!md.contains("## Thresholds") && !html.contains("<h2>Thresholds"));
}

#[test]
fn the_seat_comparison_is_a_section_of_both_pages_and_survives_a_rerender() {
    let tsv = "round\tconfig\thot\trate\tachieved\thold_mean_ms\thold_p95_ms\thold_p99_ms\tflow_p95_ms\tflows_per_s\thold_refused\tlock_retries\tlock_timeouts\tcheck6\tcheck6_worst_lapse_ms\n\
               1\trow-lock\t0.5\t150\t1.00\t23.3\t44.4\t55.2\t253.1\t148.2\t583\t0\t0\tPASS\t211\n\
               1\tredis-lock\t0.5\t150\t1.00\t22.6\t46.4\t57.1\t157.4\t147.5\t571\t26\t0\tFAIL\t1900\n";
    let mut r = report(scale(&[(1, &[100.0])], true));
    r.seat_comparison = Some(super::SeatComparison::parse(tsv, 100.0).unwrap());
    let (md, html, json) = render(&r);
    assert!(md.contains("## Seat-hold strategies"), "{md}");
    assert!(
        md.contains("| row-lock | 0.5 | 150 | 148.2 | 23.3 | 44.4 |"),
        "{md}"
    );
    assert!(md.contains("| Redis distributed lock only | 45 ms | 80 ms | 12,000 |"));
    assert!(
        html.contains("<td class=\"fail\">0/1 pass (FAIL)</td>"),
        "{html}"
    );
    assert!(html.contains("<td class=\"pass\">1/1 pass</td>"));
    // report.json keeps it, so `report --from` renders it again.
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back.seat_comparison, r.seat_comparison);
    // Without it, neither page has the section.
    r.seat_comparison = None;
    let (md, html, _) = render(&r);
    assert!(!md.contains("Seat-hold strategies") && !html.contains("seat-comparison"));
}

#[test]
fn cpu_contention_is_compared_between_passing_and_failing_steps() {
    let mut s = scale(&[(1, &[100.0, 110.0]), (2, &[200.0])], true);
    assert_eq!(
        super::scaling::contention_note(&s),
        None,
        "no pressure figures, no note"
    );
    let waited = |pass: bool, waiting: f64| Step {
        pass,
        usage: Some(crate::scale::limits::Usage {
            cpu_waiting: Some(waiting),
            ..Default::default()
        }),
        ..step(120.0, 100.0, true)
    };
    s.points[0].repeats[0].steps = vec![waited(true, 0.3)];
    s.points[0].repeats[1].steps = vec![waited(true, 0.5)];
    // A closed-model probe is not a step at a rate: it does not count.
    let mut probe = waited(false, 0.99);
    probe.rate = None;
    s.points[1].repeats[0].steps = vec![waited(true, 0.4), probe];
    assert_eq!(
        super::scaling::contention_note(&s),
        None,
        "no failing step with the figure, nothing to compare"
    );
    s.points[0].repeats[0].steps.push(waited(false, 0.7));
    s.points[0].repeats[1].steps.push(waited(false, 0.6));
    s.points[1].repeats[0].steps.push(waited(false, 0.9));
    let note = super::scaling::contention_note(&s).expect("a note");
    assert!(
        note.contains("3 passing steps 40% at the median (30-50%); 3 failing steps 70% at the median (60-90%)"),
        "{note}"
    );
    let (md, html, _) = render(&report(s));
    assert!(md.contains("Waiting for a CPU") && html.contains("Waiting for a CPU"));
}
