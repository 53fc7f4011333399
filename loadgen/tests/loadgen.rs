//! loadgen against in-process servers: its counts against the server's own
//! metrics, TPS against a server that serves fewer reads than offered,
//! coordinated omission against a server that stalls once, and exact
//! merging of interval logs.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loadgen::record::{histogram, Recorder};
use loadgen::run::{run, RunArgs};
use loadgen::scenarios::Kind;
use loadgen::setup::sum_metric;
use loadgen::summary::RunSummary;
use rand::Rng;
use testkit::fake::{self, StatusCode};
use testkit::{start, Backend, TempDir, TestServer};

/// goose keeps process-wide state (its stop switch): one attack at a time.
static GOOSE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn args(
    host: &str,
    admin: &str,
    scenario: Kind,
    rate: Option<f64>,
    duration: f64,
    out: &Path,
) -> RunArgs {
    let mut a = RunArgs::new(vec![host.to_owned()], admin, scenario, out.to_owned());
    a.rate = rate;
    a.duration = duration;
    a
}

/// The reference server in process, holding seats for verify's default
/// hold TTL (abandoned holds lapse within a run).
async fn reference() -> TestServer {
    let ttl = format!("{}ms", verify::DEFAULT_HOLD_TTL_MS);
    start(&Backend::Memory, &["--hold-ttl", &ttl]).await
}

/// A 4 s open-model run of `scenario` at `rate` per second against
/// `target`, written to `out`.
async fn run_4s(target: &TestServer, scenario: Kind, rate: f64, out: &Path) -> RunSummary {
    let a = args(
        &target.base,
        &target.admin_token,
        scenario,
        Some(rate),
        4.0,
        out,
    );
    run(&a).await.unwrap()
}

fn within(a: f64, b: f64, share: f64) -> bool {
    (a - b).abs() <= share * b.max(1.0)
}

/// The open model kept its rate: TPS, counted inside the measured window,
/// at least 95% of the offered rate (the scaling run's bar). A server
/// slower than the offered rate fails it (see
/// `tps_is_what_a_throttled_server_served_not_what_was_offered`).
fn kept_up(s: &RunSummary) -> Result<(), String> {
    let (offered, achieved) = s.offered.zip(s.achieved).ok_or("no offered rate")?;
    if achieved < 0.95 {
        return Err(format!(
            "open model at {offered}/s achieved {:.1}/s ({:.0}%)",
            s.tps(),
            achieved * 100.0
        ));
    }
    Ok(())
}

/// In the open model, what completed inside the window and the backlog
/// are every planned iteration.
fn planned_add_up(s: &RunSummary) {
    let (w, b) = s.window.zip(s.backlog).expect("window counts");
    let planned = s.schedule.as_ref().expect("a schedule").planned;
    assert_eq!(
        w.completed + w.failed + b.total(),
        planned,
        "window {w:?}, backlog {b:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_tps_match_the_servers_metrics() {
    counts_and_tps_match(false).await;
}

/// The same through goose's client (`--goose-metrics`), which sends what
/// the users' own connections send otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_tps_match_through_gooses_client_too() {
    counts_and_tps_match(true).await;
}

async fn counts_and_tps_match(goose_client: bool) {
    let _one = GOOSE.lock().await;
    let target = reference().await;
    let out = TempDir::new("loadgen-test-counts");
    let mut a = args(
        &target.base,
        &target.admin_token,
        Kind::FlashSale,
        Some(150.0),
        4.0,
        &out,
    );
    a.goose_metrics = goose_client;
    a.quiet = true;
    let summary = run(&a).await.unwrap();
    let metrics = target.metrics().await;
    let served = |route: &str| {
        sum_metric(
            &metrics,
            "http_requests_total",
            &[&format!("route=\"{route}\"")],
        )
    };
    let enters = served("POST /api/v1/queue/enter");
    let reserves = served("POST /api/v1/tickets/reserve");
    let sold = sum_metric(&metrics, "ticket_reservation_total", &["result=\"ok\""]);
    let tx = |name: &str| summary.transactions[name].count as f64;
    assert!(
        tx("enter") > 500.0,
        "too few iterations to compare: {}",
        tx("enter")
    );
    assert!(
        within(tx("enter"), enters, 0.01),
        "enter: loadgen {} vs server {enters}",
        tx("enter")
    );
    assert!(
        within(tx("reserve"), reserves, 0.01),
        "reserve: loadgen {} vs server {reserves}",
        tx("reserve")
    );
    // Every successful purchase loadgen saw, inside the window or after
    // it, is one the server sold.
    let bought = summary.transactions["flash_sale"].ok() as f64;
    assert!(within(bought, sold, 0.01), "bought {bought} vs sold {sold}");
    // TPS counts only the window's successes, each one the server sold,
    // and the server kept up with 150/s.
    let window = summary.window.expect("window counts");
    assert!(
        summary.tps() * window.secs <= sold + 0.5,
        "TPS {} over {} s vs sold {sold}",
        summary.tps(),
        window.secs
    );
    kept_up(&summary).unwrap();
    planned_add_up(&summary);
    // Control for the rate-limited count below: a server without limits
    // refused nothing.
    assert_eq!(summary.rate_limited(), 0);
    // The run's files: summary, interval log, goose's own report.
    for f in [
        "summary.json",
        "latency.hlog",
        "goose-report.html",
        "goose-report.json",
    ] {
        let len = std::fs::metadata(out.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{f} missing or empty");
    }
    target.stop().await.unwrap();
}

/// A target whose per-IP rate limit is on refuses most of a run from one
/// address with 429: the summary counts them apart (they are errors too)
/// and the human table says the run measured the limiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_with_429_are_counted_as_rate_limited() {
    let _one = GOOSE.lock().await;
    // 20 a second: the set-up's few requests fit its burst, the run's
    // 150 requests a second do not.
    let target = start(&Backend::Memory, &["--rate-limit-rps", "20"]).await;
    let out = TempDir::new("loadgen-test-rate-limited");
    let summary = run_4s(&target, Kind::FlashSale, 50.0, &out).await;
    let metrics = target.metrics().await;
    target.stop().await.unwrap();
    let refused = sum_metric(&metrics, "http_requests_total", &["status=\"429\""]);
    assert!(
        summary.rate_limited() > 100,
        "{} rate-limited",
        summary.rate_limited()
    );
    // Each one a 429 the server sent (SSE streams refused included), and
    // each one an error of its transaction.
    assert_eq!(summary.rate_limited() as f64, refused);
    let errors: u64 = summary
        .transactions
        .iter()
        .filter(|(tx, _)| *tx != "flash_sale")
        .map(|(_, t)| t.errors)
        .sum();
    assert!(summary.rate_limited() <= errors, "{errors} errors");
    let table = loadgen::console::table(&summary, &out);
    assert!(table.contains("rate-limited:"), "{table}");
    assert!(table.contains("--rate-limit-rps 0"), "{table}");
    let written = RunSummary::read(&out.join("summary.json")).unwrap();
    assert_eq!(written.rate_limited(), summary.rate_limited());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_pay_counts_match_the_servers_seat_events() {
    let _one = GOOSE.lock().await;
    let target = reference().await;
    let out = TempDir::new("loadgen-test-seats");
    let summary = run_4s(&target, Kind::HoldAndPay, 60.0, &out).await;
    let tx = |name: &str| summary.transactions.get(name).map_or(0, |t| t.count);
    let ok = |name: &str| {
        summary
            .transactions
            .get(name)
            .map_or(0, |t| t.count - t.errors)
    };
    assert!(
        tx("hold_and_pay") >= 200,
        "too few iterations: {}",
        tx("hold_and_pay")
    );
    // Every hold and every payment the generator saw succeed is one event.
    let text = target.metrics().await;
    let events = |topic: &str| {
        sum_metric(
            &text,
            "seat_events_published_total",
            &[&format!("topic=\"{topic}\"")],
        ) as u64
    };
    assert_eq!(ok("hold"), events("reservation.created"));
    assert_eq!(ok("pay"), events("payment.completed"));
    // Some users abandon: fewer payments than holds, and they lapsed.
    assert!(
        ok("pay") < ok("hold"),
        "pay {} hold {}",
        ok("pay"),
        ok("hold")
    );
    assert!(events("reservation.expired") > 0, "no hold lapsed: {text}");
    assert_eq!(summary.transactions["pay"].errors, 0);
    target.stop().await.unwrap();
}

/// A server that answers every contract call at once, except its reads
/// (an event, a ticket): at most `per_sec` of them a second, each waiting
/// for its turn (delayed, never refused), like a server at its capacity.
async fn throttled_server(per_sec: f64) -> String {
    let next = Arc::new(Mutex::new(Instant::now()));
    let gap = Duration::from_secs_f64(1.0 / per_sec);
    fake::serve(move |req| {
        let next = Arc::clone(&next);
        async move {
            let path = req.uri().path();
            let read = req.method() == "GET"
                && (path.starts_with("/api/v1/events/") || path.starts_with("/api/v1/tickets/"));
            if read {
                let turn = {
                    let mut next = next.lock().unwrap();
                    let turn = (*next).max(Instant::now());
                    *next = turn + gap;
                    turn
                };
                tokio::time::sleep_until(turn.into()).await;
            }
            contract_reply(path)
        }
    })
    .await
}

/// What the stand-in servers answer: enough of the contract for the
/// browse scenario's set-up and reads.
fn contract_reply(path: &str) -> fake::Response<fake::Bytes> {
    let status = if path == "/api/v1/admin/events" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    fake::json(
        status,
        r#"{"token":"t","status":"ACTIVE","reservationId":"r1","eventId":"e","stock":1}"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tps_is_what_a_throttled_server_served_not_what_was_offered() {
    let _one = GOOSE.lock().await;
    // Reads offered at twice what the server serves, for 3 s.
    const R: f64 = 100.0;
    let host = throttled_server(R).await;
    let out = TempDir::new("loadgen-test-throttled");
    let mut a = args(&host, "x", Kind::Browse, Some(2.0 * R), 3.0, &out);
    a.no_goose_report = true;
    let summary = run(&a).await.unwrap();
    let tps = summary.tps();
    assert!(
        within(tps, R, 0.15),
        "TPS {tps} from a server serving {R}/s"
    );
    assert!(tps < 1.5 * R, "TPS {tps} of {}/s offered", 2.0 * R);
    let achieved = summary.achieved.unwrap();
    assert!(achieved < 0.6, "achieved {achieved}");
    // The check the reference server passes fails here.
    let behind = kept_up(&summary).unwrap_err();
    assert!(behind.contains("achieved"), "{behind}");
    // The rest of the schedule is backlog, not throughput: what the old
    // definition (every success over the nominal duration) counted too.
    planned_add_up(&summary);
    let backlog = summary.backlog.unwrap();
    assert!(backlog.total() as f64 > 0.3 * 2.0 * R * 3.0, "{backlog:?}");
    let old = summary.transactions["browse"].ok() as f64 / summary.duration_secs;
    assert!(old > tps, "successes / duration {old} vs TPS {tps}");
    // The per-second series inside the window add up to its count.
    let in_window: u64 = summary.series["browse"]
        .iter()
        .filter(|p| p.t <= summary.duration_secs + 1e-9)
        .map(|p| p.count - p.errors)
        .sum();
    assert_eq!(in_window, summary.window.unwrap().completed);
}

/// A server that answers every contract call at once, except that all
/// requests arriving in one second (starting with the `stall_at`-th) wait
/// until that second is over: a one-off 1 s pause, like a GC or failover.
async fn stalling_server(stall_at: u64) -> String {
    let count = Arc::new(AtomicU64::new(0));
    let stall_until: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    fake::serve(move |req| {
        let count = Arc::clone(&count);
        let stall_until = Arc::clone(&stall_until);
        async move {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let until = {
                let mut s = stall_until.lock().unwrap();
                if n == stall_at {
                    *s = Some(Instant::now() + Duration::from_secs(1));
                }
                *s
            };
            if let Some(until) = until {
                if Instant::now() < until {
                    tokio::time::sleep_until(until.into()).await;
                }
            }
            contract_reply(req.uri().path())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrected_p99_shows_a_one_second_stall_that_raw_hides() {
    let _one = GOOSE.lock().await;
    // 200 reads/s for 5 s by 4 users; the stall begins about 1.5 s in.
    let host = stalling_server(300 + loadgen::setup::SAMPLE_RESERVATIONS * 3).await;
    let out = TempDir::new("loadgen-test-stall");
    let mut a = args(&host, "x", Kind::Browse, Some(200.0), 5.0, &out);
    a.users = Some(4);
    a.no_goose_report = true;
    let summary = run(&a).await.unwrap();
    let t = &summary.transactions["browse"];
    let (raw, corrected) = (t.raw.p99 as f64 / 1000.0, t.corrected.p99 as f64 / 1000.0);
    assert_eq!(t.count, 1000, "every planned iteration ran");
    // At most the 4 requests in flight saw the pause (0.4% of samples), so
    // the raw P99 stays below half the stall whatever this machine's speed.
    assert!(raw < 500.0, "raw P99 {raw} ms should hide the stall");
    // About 200 iterations were due during the pause; measured from their
    // slots, over 1% of them waited more than half a second.
    assert!(
        corrected > 500.0,
        "corrected P99 {corrected} ms should show the stall"
    );
    assert!(
        t.corrected.max >= 900_000,
        "corrected max {} µs",
        t.corrected.max
    );
    let schedule = summary.schedule.unwrap();
    assert!(
        schedule.late > 50,
        "iterations late because every user was busy: {}",
        schedule.late
    );
}

#[test]
fn merged_logs_equal_one_histogram_of_both_sample_sets() {
    let out = TempDir::new("loadgen-test-merge");
    let mut rng = rand::rng();
    let mut all = (histogram(), histogram(), histogram());
    let mut logs = Vec::new();
    for process in 0..2 {
        // Every sample inside a long window, so the window's counts are
        // the samples' too.
        let recorder = Arc::new(Recorder::with_window(Duration::from_secs(60), Some(20_000)));
        let path = out.join(format!("p{process}.hlog"));
        let meta = format!(
            r#"{{"runId":"m{process}","scenario":"browse","headline":"browse","model":{{"kind":"open","rate":100.0}},"users":4,"hosts":["http://h{process}"],"startedAt":"x"}}"#
        );
        let log = recorder.start_log(&path, &meta).unwrap();
        recorder.open_window();
        for _ in 0..20_000 {
            recorder.iteration_started();
            let raw = Duration::from_micros(rng.random_range(50..200_000));
            let corrected = raw + Duration::from_micros(rng.random_range(0..5_000));
            let ok = rng.random_bool(0.98);
            recorder.record("browse", raw, corrected, ok);
            all.0.record(raw.as_micros() as u64).unwrap();
            all.1.record(corrected.as_micros() as u64).unwrap();
            if !ok {
                all.2.record(raw.as_micros() as u64).unwrap();
            }
        }
        log.finish().unwrap();
        logs.push(path);
    }
    let merged_dir = out.join("merged");
    let summary = loadgen::merge::run(&logs, &merged_dir).unwrap();
    let merged = loadgen::merge::read_log(&merged_dir.join("latency.hlog")).unwrap();
    let totals = &merged.totals()["browse"];
    assert_eq!(totals.raw, all.0, "raw histograms differ");
    assert_eq!(totals.corrected, all.1, "corrected histograms differ");
    assert_eq!(totals.errors, all.2, "error histograms differ");
    let t = &summary.transactions["browse"];
    assert_eq!(t.count, 40_000);
    assert_eq!(t.errors, all.2.len());
    assert_eq!(t.raw.p99, all.0.value_at_quantile(0.99));
    assert_eq!(summary.processes, 2);
    assert_eq!(summary.users, 8, "users add up across processes");
    assert_eq!(summary.hosts.len(), 2);
    // The processes' window counts add up too.
    let window = summary.window.unwrap();
    assert_eq!(window.completed + window.failed, 40_000);
    assert_eq!(window.failed, all.2.len());
    assert_eq!(summary.backlog.unwrap().total(), 0);
    assert_eq!(summary.tps(), window.completed as f64 / 60.0);
}

/// `report --seat-comparison`: a bound that is not a positive number of
/// milliseconds, or a table that is not bench-seat-lock.sh's, is refused
/// and nothing is written.
#[test]
fn report_refuses_a_bad_seat_comparison_and_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("loadgen-seat-bad-{}", std::process::id()));
    let out = dir.join("out");
    std::fs::create_dir_all(&dir).unwrap();
    let tsv = dir.join("bad.tsv");
    std::fs::write(&tsv, "round\tconfig\n1\tconditional\n").unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .arg("report")
            .args(args)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    for bound in [
        "--seat-bound-ms=0",
        "--seat-bound-ms=-5",
        "--seat-bound-ms=nan",
    ] {
        let o = run(&[bound]);
        let said = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bound}: {said}");
        assert!(said.contains("above 0"), "{bound}: {said}");
    }
    let o = run(&["--seat-comparison", tsv.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{said}");
    assert!(said.contains("no `hot` column"), "{said}");
    assert!(!out.join("report.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
