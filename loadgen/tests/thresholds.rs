//! loadgen's gates and honesty against a stand-in whose reads take a known
//! time D (50 ms): a threshold under D fails and one well over it passes, with the
//! exit status, junit.xml and the summary saying which; a bad threshold is
//! refused before anything is sent; and the figures loadgen reports match
//! what the stand-in is known to do (P50 near D, the offered rate kept).

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loadgen::run::{run, RunArgs};
use loadgen::scenarios::Kind;
use loadgen::summary::RunSummary;
use loadgen::thresholds::exit;
use testkit::{fake, TempDir};

/// The stand-in's added delay on every read.
const D: Duration = Duration::from_millis(50);

/// The runs one at a time: they share this machine's 2 cores with the
/// stand-in, and the honesty check measures its timing.
static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `loadgen run` as a user runs it: browse at 100/s for 4 s against
/// `host`, with `extra` options.
async fn loadgen_run(host: &str, out: &Path, extra: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.args([
        "run",
        "--host",
        host,
        "--admin-token",
        "x",
        "--scenario",
        "browse",
        "--rate",
        "100",
        "--duration",
        "4",
        "--no-goose-report",
        "--out",
    ])
    .arg(out)
    .args(extra)
    .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("loadgen ran over a minute")
        .expect("loadgen started")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_delay_fails_the_tighter_threshold_and_passes_the_looser() {
    let _one = ONE.lock().await;
    let host = fake::delayed(D).await;
    let dir = TempDir::new("loadgen-test-gates");
    let out = dir.join("gated");
    let run = loadgen_run(
        &host,
        &out,
        &[
            "--threshold",
            "browse.p95 < 10ms",
            "--threshold",
            "browse.p95 < 500ms",
            "--threshold",
            "errors < 1%",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(
        run.status.code(),
        Some(exit::THRESHOLD_FAILED.into()),
        "{stdout}\n{stderr}"
    );
    // The human summary: loadgen's own table and verdicts, no JSON.
    assert!(!stdout.trim_start().starts_with(['{', '[']), "{stdout}");
    assert!(stdout.contains("transaction"), "{stdout}");
    assert!(
        stdout.contains("thresholds: 2 passed, 1 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL browse.p95 < 10ms"), "{stdout}");
    assert!(stdout.contains("PASS browse.p95 < 500ms"), "{stdout}");
    assert!(
        stdout.contains(&out.join("junit.xml").display().to_string()),
        "{stdout}"
    );
    // goose's console tables are off by default; the progress line is on.
    assert!(!stdout.contains("PER REQUEST METRICS"), "{stdout}");
    assert!(!stderr.contains("[INFO]"), "goose's log: {stderr}");
    assert!(stderr.contains("loadgen: "), "no progress line: {stderr}");
    // summary.json holds every verdict with what was observed.
    let summary = RunSummary::read(&out.join("summary.json")).unwrap();
    let verdicts: Vec<(&str, bool)> = summary
        .thresholds
        .iter()
        .map(|j| (j.expression.as_str(), j.pass))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("browse.p95 < 10ms", false),
            ("browse.p95 < 500ms", true),
            ("errors < 1%", true)
        ]
    );
    let p95 = summary.thresholds[0].observed.unwrap();
    assert!(p95 >= 50.0, "P95 {p95} ms under the known 50 ms delay");
    // junit.xml names the failed threshold and only it.
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        xml.contains(r#"tests="3""#) && xml.contains(r#"failures="1""#),
        "{xml}"
    );
    let failure = xml
        .split("<failure")
        .nth(1)
        .expect("a <failure> element")
        .split("</testcase>")
        .next()
        .unwrap();
    assert!(failure.contains("browse.p95 &lt; 10ms"), "{xml}");
    assert!(!failure.contains("500ms"), "{xml}");

    // Only the looser threshold: the run passes.
    let passing = loadgen_run(
        &host,
        &dir.join("passing"),
        &["--threshold", "browse.p95 < 500ms"],
    )
    .await;
    assert_eq!(
        passing.status.code(),
        Some(exit::OK.into()),
        "{}\n{}",
        text(&passing.stdout),
        text(&passing.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_threshold_is_refused_before_anything_is_sent() {
    let _one = ONE.lock().await;
    let requests = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&requests);
    let host = fake::serve(move |req| {
        let seen = Arc::clone(&seen);
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            fake::contract_reply(req.uri().path())
        }
    })
    .await;
    let dir = TempDir::new("loadgen-test-bad-gates");
    for (expr, why) in [
        ("browse.p95 <", "no value after the operator"),
        ("browse.p95 50ms", "OP"),
        ("browse.p96 < 5ms", "unknown metric"),
        ("flash_sale.p95 < 5ms", "unknown transaction 'flash_sale'"),
        ("efficiency@4 >= 0.9", "does not scale"),
        ("errors < 150%", "above 100%"),
    ] {
        let out = dir.join("never");
        let run = loadgen_run(&host, &out, &["--threshold", expr]).await;
        let stderr = text(&run.stderr);
        assert_eq!(
            run.status.code(),
            Some(exit::USAGE.into()),
            "{expr}: {stderr}"
        );
        assert!(stderr.contains(why), "{expr}: {stderr}");
        assert!(stderr.contains(expr), "{expr}: {stderr}");
        assert!(!out.exists(), "{expr}: the run wrote {}", out.display());
    }
    // A thresholds file's bad line too, named by file and line.
    let file = dir.join("gates.txt");
    std::fs::write(
        &file,
        "# gates\nbrowse.p95 < 50ms\nbrowse.p95 < 5 parsecs\n",
    )
    .unwrap();
    let run = loadgen_run(
        &host,
        &dir.join("never"),
        &["--thresholds", file.to_str().unwrap()],
    )
    .await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(exit::USAGE.into()), "{stderr}");
    assert!(stderr.contains("gates.txt:3"), "{stderr}");
    // A host loadgen's connections cannot reach, refused the same way.
    let https = host.replacen("http://", "https://", 1);
    let run = loadgen_run(&https, &dir.join("never"), &[]).await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(exit::USAGE.into()), "{stderr}");
    assert!(stderr.contains("plain http:// only"), "{stderr}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        0,
        "a refused run sent requests"
    );
    // The negative control: a good threshold does reach the target (and a
    // failed run is not a failed threshold: nothing listens on port 9).
    let dead = loadgen_run(
        "http://127.0.0.1:9",
        &dir.join("dead"),
        &["--threshold", "browse.p95 < 50ms"],
    )
    .await;
    assert_eq!(
        dead.status.code(),
        Some(exit::RUN_FAILED.into()),
        "{}",
        text(&dead.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_reports_the_known_delay_and_keeps_the_offered_rate() {
    let _one = ONE.lock().await;
    const RATE: f64 = 100.0;
    let host = fake::delayed(D).await;
    let dir = TempDir::new("loadgen-test-honest");
    let mut args = RunArgs::new(vec![host], "x", Kind::Browse, dir.to_path_buf());
    args.rate = Some(RATE);
    args.duration = 4.0;
    args.no_goose_report = true;
    let summary = run(&args).await.unwrap();
    let d = D.as_secs_f64() * 1000.0;
    for tx in ["browse", "event"] {
        let t = &summary.transactions[tx];
        let p50 = t.raw.p50 as f64 / 1000.0;
        // Never faster than the delay; at most 20% over it on a shared,
        // busy 2-core machine (loopback and the stand-in's timer add about
        // 1 ms when it is idle).
        assert!(
            p50 >= d && p50 <= 1.2 * d,
            "{tx}: P50 {p50} ms against a known {d} ms"
        );
        assert_eq!(t.errors, 0, "{tx}");
    }
    let tps = summary.tps();
    assert!(
        (tps - RATE).abs() <= 0.1 * RATE,
        "achieved {tps}/s of {RATE}/s offered"
    );
}
