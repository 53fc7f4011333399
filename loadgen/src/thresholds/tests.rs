use super::*;
use crate::summary::TxSummary;

fn parse(expr: &str) -> Threshold {
    Threshold::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn run_scope(kind: Kind) -> Scope {
    Scope {
        command: "run",
        scenarios: vec![kind],
        scale: false,
    }
}

#[test]
fn parses_latency_errors_rates_and_scale_metrics() {
    let t = parse("flash_sale.p95 < 50ms");
    assert_eq!(
        t.metric,
        Metric::Latency {
            tx: Some("flash_sale".into()),
            stat: Stat::P95,
            corrected: false
        }
    );
    assert_eq!((t.op, t.bound), (Op::Lt, 50.0));
    let t = parse("reserve.p99_corrected<=1.5s");
    assert_eq!(
        t.metric,
        Metric::Latency {
            tx: Some("reserve".into()),
            stat: Stat::P99,
            corrected: true
        }
    );
    assert_eq!((t.op, t.bound), (Op::Le, 1500.0));
    assert_eq!(parse("p50 < 800us").bound, 0.8);
    assert_eq!(parse("p50 < 800µs").bound, 0.8);
    // Bare numbers are ms, as in k6.
    assert_eq!(parse("p95 < 20").bound, 20.0);
    let t = parse("errors < 0.1%");
    assert_eq!(t.metric, Metric::Errors { tx: None });
    assert!((t.bound - 0.001).abs() < 1e-12);
    assert_eq!(parse("enter.errors <= 0.02").bound, 0.02);
    let t = parse("tps >= 180");
    assert_eq!((t.metric, t.op, t.bound), (Metric::Tps, Op::Ge, 180.0));
    assert_eq!(parse("tps > 180/s").bound, 180.0);
    assert_eq!(parse("achieved >= 95%").metric, Metric::Achieved);
    let t = parse("efficiency@4 >= 0.9");
    assert_eq!((t.metric, t.bound), (Metric::Efficiency(4), 0.9));
    assert_eq!(parse("tps@2 > 300").metric, Metric::ScaleTps(2));
    assert_eq!(parse("p95@1 < 40ms").metric, Metric::ScaleP95(1));
}

#[test]
fn malformed_expressions_are_refused_with_a_reason() {
    for (expr, why) in [
        ("p95 50ms", "OP"),
        ("p95 <", "no value"),
        ("< 50ms", "no metric"),
        ("p95 = 50ms", "operator"),
        ("p95 == 50ms", "operator"),
        ("p95 =< 50ms", "operator"),
        ("p95 < 5 < 6", "one operator"),
        ("p95 < fast", "not a non-negative number"),
        ("p95 < -5ms", "not a non-negative number"),
        ("p95 < 5 minutes", "not a non-negative number"),
        ("errors < 150%", "above 100%"),
        ("errors < 2", "above 100%"),
        ("tps >= NaN", "not a non-negative number"),
        ("p96 < 5ms", "unknown metric"),
        ("flash_sale.latency < 5ms", "unknown metric"),
        (".p95 < 5ms", "unknown metric"),
        ("efficiency@x >= 0.9", "instance count"),
        ("efficiency@0 >= 0.9", "instance count"),
        ("speed@4 >= 0.9", "unknown metric"),
    ] {
        let err = Threshold::parse(expr).expect_err(expr);
        assert!(err.contains(why), "{expr}: {err}");
    }
}

#[test]
fn the_command_must_measure_the_metric() {
    let args = |exprs: &[&str]| ThresholdArgs {
        threshold: exprs.iter().map(|s| s.to_string()).collect(),
        thresholds_file: None,
    };
    let run = run_scope(Kind::FlashSale);
    assert_eq!(
        args(&["flash_sale.p95 < 50ms", "reserve.errors < 1%", "tps >= 1"])
            .parse(&run)
            .unwrap()
            .len(),
        3
    );
    let err = args(&["browse.p95 < 5ms"]).parse(&run).unwrap_err();
    assert!(
        format!("{err}").contains("unknown transaction 'browse'"),
        "{err}"
    );
    let err = args(&["efficiency@4 >= 0.9"]).parse(&run).unwrap_err();
    assert!(format!("{err}").contains("does not scale"), "{err}");
    let scale = Scope {
        command: "scale",
        scenarios: vec![],
        scale: true,
    };
    assert!(args(&["efficiency@4 >= 0.9"]).parse(&scale).is_ok());
    let err = args(&["p95 < 5ms"]).parse(&scale).unwrap_err();
    assert!(format!("{err}").contains("efficiency@N"), "{err}");
}

#[test]
fn a_file_holds_one_threshold_a_line_with_comments() {
    let dir = std::env::temp_dir().join(format!("lg-thresholds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gates.txt");
    std::fs::write(
        &file,
        "# the sale's gates\nflash_sale.p95 < 50ms  # purchase latency\n\n  errors < 0.1%\n",
    )
    .unwrap();
    let args = ThresholdArgs {
        threshold: vec!["tps >= 180".into()],
        thresholds_file: Some(file.clone()),
    };
    let parsed = args.parse(&run_scope(Kind::FlashSale)).unwrap();
    let exprs: Vec<&str> = parsed.iter().map(|t| t.expr.as_str()).collect();
    assert_eq!(
        exprs,
        ["tps >= 180", "flash_sale.p95 < 50ms", "errors < 0.1%"]
    );
    // A bad line names the file and line.
    std::fs::write(&file, "p95 < 5ms\np95 <\n").unwrap();
    let err = format!("{:#}", args.parse(&run_scope(Kind::FlashSale)).unwrap_err());
    assert!(err.contains("gates.txt:2"), "{err}");
    let missing = ThresholdArgs {
        threshold: vec![],
        thresholds_file: Some(dir.join("nope.txt")),
    };
    assert!(missing.parse(&run_scope(Kind::FlashSale)).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn summary(p95_us: u64, errors: u64) -> RunSummary {
    let mut s: RunSummary = serde_json::from_value(serde_json::json!({
        "runId": "t", "scenario": "flash_sale", "headline": "flash_sale",
        "model": {"kind": "open", "rate": 200.0}, "users": 16, "hosts": [],
        "startedAt": "", "durationSecs": 10.0, "transactions": {}, "series": {},
        "tps": 190.0, "offered": 200.0, "achieved": 0.95,
    }))
    .unwrap();
    let mut tx = TxSummary {
        count: 1000,
        errors,
        raw: Default::default(),
        corrected: Default::default(),
        ladder: vec![],
    };
    tx.raw.p95 = p95_us;
    tx.corrected.p95 = p95_us * 2;
    s.transactions.insert("flash_sale".into(), tx);
    s
}

#[test]
fn judged_on_the_runs_figures_either_side_of_the_bound() {
    let s = summary(40_000, 2);
    let j = |e: &str| judge(&parse(e), &[&s], None);
    assert!(j("flash_sale.p95 < 50ms").pass);
    assert!(!j("flash_sale.p95 < 40ms").pass, "40 ms is not under 40 ms");
    assert!(j("flash_sale.p95 <= 40ms").pass);
    assert!(!j("p95_corrected < 50ms").pass, "corrected is 80 ms");
    assert_eq!(j("p95_corrected < 50ms").observed, Some(80.0));
    assert!(j("errors < 0.3%").pass);
    assert!(!j("errors < 0.2%").pass, "2 in 1000 is 0.2%");
    assert!(j("tps >= 190").pass);
    assert!(!j("tps > 190").pass);
    assert!(!j("achieved >= 96%").pass);
    // Nothing recorded, nothing passes.
    let missing = j("reserve.p95 < 1s");
    assert!(!missing.pass && missing.observed.is_none(), "{missing:?}");
    assert!(missing.detail.contains("no 'reserve'"), "{missing:?}");
    let no_scale = j("efficiency@4 >= 0.9");
    assert!(!no_scale.pass, "{no_scale:?}");
}

#[test]
fn junit_names_the_failed_threshold() {
    let s = summary(40_000, 0);
    let judged: Vec<Judged> = ["flash_sale.p95 < 50ms", "flash_sale.p95 < 10ms"]
        .iter()
        .map(|e| judge(&parse(e), &[&s], None))
        .collect();
    let dir = std::env::temp_dir().join(format!("lg-junit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("junit.xml");
    write_junit(&judged, "thresholds", &path).unwrap();
    let xml = std::fs::read_to_string(&path).unwrap();
    assert!(
        xml.contains(r#"tests="2""#) && xml.contains(r#"failures="1""#),
        "{xml}"
    );
    assert!(
        xml.contains("threshold &apos;flash_sale.p95 &lt; 10ms&apos; failed: observed 40.000 ms")
            || xml.contains("threshold 'flash_sale.p95 &lt; 10ms' failed: observed 40.000 ms"),
        "{xml}"
    );
    let text = human(&judged);
    assert!(text.contains("1 passed, 1 failed"), "{text}");
    assert!(text.contains("FAIL flash_sale.p95 < 10ms"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scale_thresholds_read_the_points_at_their_instance_count() {
    let mut report = ScaleReport::skipped("s", "test".into());
    let mut four = crate::scale::Point::new(4);
    four.efficiency = Some(0.85);
    four.tps = Some(400.0);
    four.p95_ms = Some(30.0);
    report.points.push(four);
    let j = |e: &str| judge(&parse(e), &[], Some(&report));
    assert!(!j("efficiency@4 >= 0.9").pass, "85% is under 90%");
    assert!(j("efficiency@4 >= 80%").pass);
    assert!(j("tps@4 > 399").pass && !j("tps@4 > 400").pass);
    assert!(j("p95@4 < 31ms").pass && !j("p95@4 < 30ms").pass);
    assert!(
        j("efficiency@4 >= 80%").detail.contains("observed 85.000%"),
        "{:?}",
        j("efficiency@4 >= 80%")
    );
    let missing = j("efficiency@8 >= 0.5");
    assert!(
        !missing.pass && missing.detail.contains("did not measure 8"),
        "{missing:?}"
    );
}

#[test]
fn in_a_job_a_transaction_is_judged_on_the_run_that_records_it() {
    let job = Scope {
        command: "job",
        scenarios: vec![Kind::FlashSale, Kind::HoldAndPay],
        scale: true,
    };
    let args = |e: &str| ThresholdArgs {
        threshold: vec![e.into()],
        thresholds_file: None,
    };
    assert!(args("pay.p95 < 1s").parse(&job).is_ok());
    assert!(args("efficiency@2 >= 0.9").parse(&job).is_ok());
    assert!(
        args("event.p95 < 1s").parse(&job).is_err(),
        "no browse in a job"
    );
    let sale = summary(40_000, 0);
    let mut seats = summary(90_000, 0);
    seats.headline = "hold_and_pay".into();
    let pay = seats.transactions.remove("flash_sale").unwrap();
    seats.transactions.insert("pay".into(), pay);
    // Unprefixed: the main (first) run; `pay`: the seat-map run's.
    assert_eq!(
        judge(&parse("p95 < 1s"), &[&sale, &seats], None).observed,
        Some(40.0)
    );
    assert_eq!(
        judge(&parse("pay.p95 < 1s"), &[&sale, &seats], None).observed,
        Some(90.0)
    );
}

#[test]
fn a_flagged_efficiency_passes_no_threshold() {
    let mut report = ScaleReport::skipped("s", "test".into());
    let mut two = crate::scale::Point::new(2);
    two.efficiency = Some(1.25);
    two.efficiency_interval = Some(crate::scale::stats::Interval { lo: 1.2, hi: 1.3 });
    two.verdict = Some(crate::scale::stats::Verdict::Pass);
    report.points.push(two);
    let j = |r: &ScaleReport, e: &str| judge(&parse(e), &[], Some(r));
    // Unflagged, the median is judged and the interval shown.
    let plain = j(&report, "efficiency@2 >= 0.9");
    assert!(plain.pass, "{plain:?}");
    assert!(
        plain
            .detail
            .contains("interval 120.000%-130.000%; against the 90% target: pass"),
        "{plain:?}"
    );
    // Above 100% beyond its interval: a measurement problem, in either
    // direction of the bound.
    report.points[0].efficiency_flagged = true;
    for e in ["efficiency@2 >= 0.9", "efficiency@2 <= 2"] {
        let flagged = j(&report, e);
        assert!(!flagged.pass, "{flagged:?}");
        assert_eq!(flagged.observed, Some(1.25));
        assert!(flagged.detail.contains("not judged"), "{flagged:?}");
    }
    // Measured at two speeds of the machine: the same.
    report.points[0].efficiency_flagged = false;
    report.points[0].speed_flagged = true;
    let speed = j(&report, "efficiency@2 >= 0.9");
    assert!(!speed.pass, "{speed:?}");
    assert!(
        speed.detail.contains(crate::scale::speed::SHORT_TEXT),
        "{speed:?}"
    );
}
