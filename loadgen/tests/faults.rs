//! Faults during a load run (`loadgen job --faults`, `run::run_faulted`):
//! a stand-in that answers 503 while a fault's command says it is down.
//! Its window is in the summary and report.json, counted (requests
//! unknown while it lasted, the rate back after it) and shaded in the
//! plots; a fault that does nothing, one never undone and a run without
//! faults are the controls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use loadgen::faults::Nemesis;
use loadgen::report::{self, Report};
use loadgen::run::{run, run_faulted, RunArgs};
use loadgen::scenarios::Kind;
use loadgen::summary::RunSummary;
use testkit::fake::{self, StatusCode};
use testkit::TempDir;

/// goose keeps process-wide state (its stop switch): one attack at a time.
static GOOSE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const RATE: f64 = 100.0;

/// Answers the contract, or 503 to everything while `marker` exists.
async fn stand_in(marker: PathBuf) -> String {
    fake::serve(move |req| {
        let down = marker.exists();
        async move {
            if down {
                return fake::json(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"DOWN"}"#);
            }
            fake::contract_reply(req.uri().path())
        }
    })
    .await
}

fn args(host: &str, out: &Path) -> RunArgs {
    let mut a = RunArgs::new(vec![host.to_owned()], "x", Kind::FlashSale, out.to_owned());
    a.rate = Some(RATE);
    a.duration = 4.0;
    a.no_goose_report = true;
    a
}

/// A load run with one `pause-broker@1s+1s` fault whose start and end run
/// `start` and `end` (shell).
async fn faulted(out: &Path, marker: &Path, (start, end): (&str, &str)) -> RunSummary {
    let host = stand_in(marker.to_owned()).await;
    let cmd = format!(r#"pause-broker=if [ "$1" = start ]; then {start}; else {end}; fi"#);
    let nemesis = Nemesis::new(
        vec!["pause-broker@1s+1s".parse().unwrap()],
        vec![cmd.parse().unwrap()],
        Vec::new(),
        PathBuf::from("no-services-script"),
        out.join("logs"),
    )
    .unwrap();
    run_faulted(&args(&host, out), Arc::new(nemesis))
        .await
        .unwrap()
}

/// The report of `load`, written to `out`: report.json, the tps plot's
/// SVG and report.html.
fn reported(load: RunSummary, out: &Path) -> (serde_json::Value, String, String) {
    let r = Report {
        run_id: "faults".into(),
        created_at: String::new(),
        machine: loadgen::machine::Machine::detect(),
        backend: "memory".into(),
        notes: Vec::new(),
        verify: None,
        loads: vec![load],
        scale: None,
        tps_measure: Default::default(),
        seat_comparison: None,
    };
    report::write(&r, out, None).unwrap();
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    (
        serde_json::from_str(&read("report.json")).unwrap(),
        read("plots/tps.svg").to_lowercase(),
        read("report.html"),
    )
}

/// The fault windows' fill in the SVG plots (plots::marks::FAULT_FILL).
const FAULT_FILL: &str = "#ffb000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_window_is_counted_reported_and_shaded() {
    let _one = GOOSE.lock().await;
    let out = TempDir::new("loadgen-faults");
    let marker = out.path().join("down");
    let m = marker.display();
    let summary = faulted(
        out.path(),
        &marker,
        (&format!("touch {m}"), &format!("rm -f {m}")),
    )
    .await;
    let f = &summary.faults[0];
    let end = f.end_secs.expect("the end was recorded");
    assert!(f.actions_ok, "{f:?}");
    assert!((0.8..1.6).contains(&f.start_secs), "{f:?}");
    assert!((0.8..1.6).contains(&(end - f.start_secs)), "{f:?}");
    // Two requests an iteration (enter, reserve) at 100/s, all 503 while
    // it lasted: unknown, not refused; an edge bin may hold a few ok.
    assert!(f.unknown as f64 > 0.5 * RATE, "{f:?}");
    assert!(f.ok * 3 < f.unknown && f.fail == 0, "{f:?}");
    let before = f.rate_before.expect("a second of load before it");
    assert!((0.6 * RATE..1.4 * RATE).contains(&before), "{f:?}");
    // The stand-in answers again at once (the backlog is served then).
    assert!(f.recovery_ms.is_some_and(|ms| ms <= 500.0), "{f:?}");

    let (json, svg, html) = reported(summary, &out.path().join("report"));
    let window = &json["loads"][0]["faults"][0];
    assert_eq!(window["kind"], "pause-broker", "{window}");
    assert!(window["startSecs"].as_f64().is_some() && window["endSecs"].as_f64().is_some());
    assert!(
        svg.contains(FAULT_FILL) && svg.contains("pause-broker"),
        "no shaded window in the plot"
    );
    assert!(html.contains("<table class=\"faults\">") && html.contains("rate back in"));
    assert!(
        html.contains("<svg") && !html.contains("<img"),
        "plots inline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_that_does_nothing_meets_no_unknowns_and_one_never_undone_never_recovers() {
    let _one = GOOSE.lock().await;
    let out = TempDir::new("loadgen-faults-harmless");
    let marker = out.path().join("down");
    let harmless = faulted(out.path(), &marker, ("true", "true")).await;
    let f = &harmless.faults[0];
    assert_eq!((f.unknown, f.fail), (0, 0), "{f:?}");
    assert!(f.ok as f64 > 0.5 * RATE, "{f:?}");
    assert!(f.recovery_ms.is_some_and(|ms| ms <= 200.0), "{f:?}");

    let out = TempDir::new("loadgen-faults-never");
    let marker = out.path().join("down");
    let m = marker.display();
    let never = faulted(out.path(), &marker, (&format!("touch {m}"), "true")).await;
    let f = &never.faults[0];
    assert_eq!(f.recovery_ms, None, "{f:?}");
    assert!(f.recovery.contains("not back"), "{f:?}");
    let (_, _, html) = reported(never, &out.path().join("report"));
    assert!(html.contains("not back within the run"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_faults_has_no_window_and_no_shading() {
    let _one = GOOSE.lock().await;
    let out = TempDir::new("loadgen-nofaults");
    let host = stand_in(out.path().join("never")).await;
    let summary = run(&args(&host, out.path())).await.unwrap();
    assert!(summary.faults.is_empty());
    let (json, svg, html) = reported(summary, &out.path().join("report"));
    assert!(json["loads"][0].get("faults").is_none());
    assert!(!svg.contains(FAULT_FILL), "shading without a fault");
    assert!(!html.contains("class=\"faults\""));
}

/// What the job cannot carry out is refused before anything starts (exit
/// 2, the reason named): a schedule that names an unknown fault, a
/// kill-instance whose instance would come back elsewhere, faults over
/// several load processes, a service fault without its script.
#[test]
fn a_job_refuses_faults_it_cannot_inject_before_starting() {
    let refused = |args: &[&str], why: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .arg("job")
            .args(args)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        assert!(said.contains(why), "{args:?}: {said}");
    };
    refused(&["--faults", "kill-redis@1s"], "unknown fault 'kill-redis'");
    refused(&["--faults", "kill-instance@1s+1s"], "another port");
    refused(
        &["--faults", "pause-instance", "--load-shards", "2"],
        "--load-shards 1",
    );
    refused(
        &[
            "--faults",
            "restart-redis",
            "--services-script",
            "/nonexistent",
        ],
        "not found",
    );
}
