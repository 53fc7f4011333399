//! How a run is carried out and reported: polling, repeats, unknown
//! outcomes, set-up failures, the history file.

mod common;

use common::{embedded, faulty_proxy, options, Fault};
use testkit::TempDir;
use verify::{run_against, CheckName, RunError, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_instead_of_sse_passes_too() {
    let (server, target) = embedded(&[]).await;
    let mut opts = options(&[
        CheckName::Oversell,
        CheckName::Fifo,
        CheckName::Display,
        CheckName::Tokens,
    ]);
    opts.poll = true;
    opts.no_variants = true;
    let polled = run_against(&target, &opts).await.unwrap();
    assert!(polled.verdict.pass, "{}", polled.verdict.human());
    // --poll really polled: no stream was opened, and status was asked.
    assert_eq!(ops_named(&polled.history, &["stream", "sse"]), 0);
    assert!(ops_named(&polled.history, &["status"]) > 0);
    // The same count sees the streams of a run without --poll, so the
    // assertion above would fail if --poll were ignored.
    opts.poll = false;
    let streamed = run_against(&target, &opts).await.unwrap();
    server.stop().await.unwrap();
    assert!(ops_named(&streamed.history, &["stream", "sse"]) > 0);
}

/// Operations of the history whose function is one of `names`.
fn ops_named(history: &verify::History, names: &[&str]) -> usize {
    history
        .ops()
        .iter()
        .filter(|op| names.contains(&op.f.as_str()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_reports_every_run_and_one_failure_fails_all() {
    let (server, target) = embedded(&[]).await;
    let mut opts = options(&[CheckName::Oversell]);
    opts.repeat = 3;
    opts.no_variants = true;
    let verdict = run_against(&target, &opts).await.unwrap().verdict;
    server.stop().await.unwrap();
    let names: Vec<_> = verdict.checks.iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        names,
        ["(run 1)", "(run 2)", "(run 3)"].map(|r| format!("200 buyers / 100 items x1 {r}"))
    );
    assert!(verdict.pass);

    let mut failing = verdict.clone();
    failing.checks[1].pass = false;
    let rejudged = verify::Verdict::new(failing.target, failing.checks, 1, 1);
    assert!(!rejudged.pass, "flaky over-selling is over-selling");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_are_info_and_resolved_from_the_targets_state() {
    let (server, target) = embedded(&[]).await;
    let mut opts = options(&[CheckName::Oversell]);
    opts.no_variants = true;

    // Applied, but the buyer saw a 503: resolved as happened.
    let proxy = faulty_proxy(target.base.clone(), Fault::AnswerLost, 10).await;
    let via = Target::external(&proxy, Some(&target.admin_token)).unwrap();
    let outcome = run_against(&via, &opts).await.unwrap();
    let check = &outcome.verdict.checks[0];
    assert!(check.pass, "{}", outcome.verdict.human());
    let d = &check.details;
    assert_eq!(d["unresolved"], 0);
    assert!(d["recoveredOk"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(
        d["ok"].as_u64().unwrap() + d["recoveredOk"].as_u64().unwrap(),
        100,
        "{d}"
    );
    assert!(check.summary.contains("recovered"), "{}", check.summary);
    let infos = outcome
        .history
        .ops()
        .iter()
        .filter(|op| op.f == "reserve" && op.kind == verify::history::OpKind::Info)
        .count();
    assert_eq!(infos, 20, "every 10th of 200 reserves is an info");

    // Never applied: resolved as did-not-happen, and the numbers still add up.
    let proxy = faulty_proxy(target.base.clone(), Fault::Dropped, 10).await;
    let via = Target::external(&proxy, Some(&target.admin_token)).unwrap();
    let verdict = run_against(&via, &opts).await.unwrap().verdict;
    let d = &verdict.checks[0].details;
    assert!(verdict.pass, "{}", verdict.human());
    assert_eq!(
        (d["recoveredFail"].as_u64(), d["ok"].as_u64()),
        (Some(20), Some(100)),
        "{d}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_target_is_a_run_error() {
    let target = Target::external("http://127.0.0.1:1", Some("T")).unwrap();
    match run_against(&target, &options(&[CheckName::Oversell])).await {
        Err(RunError::Unreachable(msg)) => assert!(msg.contains("127.0.0.1:1"), "{msg}"),
        Err(other) => panic!("expected Unreachable, got {other}"),
        Ok(_) => panic!("a run against nothing cannot succeed"),
    }
}

#[tokio::test]
async fn a_refused_set_up_is_a_run_error() {
    let (server, _) = embedded(&[]).await;
    let wrong = Target::external(&server.base, Some("not-the-admin-token")).unwrap();
    let result = run_against(&wrong, &options(&[CheckName::Oversell])).await;
    server.stop().await.unwrap();
    match result {
        Err(RunError::SetupRefused(msg)) => assert!(msg.contains("401"), "{msg}"),
        Err(other) => panic!("expected SetupRefused, got {other}"),
        Ok(_) => panic!("the admin API refused, the run cannot pass"),
    }
}

/// A server with a deployment's request rate limits (10 a second per IP
/// and per user, the reference server's defaults) throttles the race's 200
/// buyers from 127.0.0.1: the run is refused, naming the limits, not judged
/// as a contract failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_run_is_refused_not_judged() {
    let deployed = ["--rate-limit-rps", "10", "--user-rate-limit-rps", "10"];
    let limited = testkit::start(&testkit::Backend::Memory, &deployed).await;
    let target = Target::external(&limited.base, Some(&limited.admin_token)).unwrap();
    let mut opts = options(&[CheckName::Oversell]);
    opts.no_variants = true;
    let result = run_against(&target, &opts).await;
    limited.stop().await.unwrap();
    match result {
        Err(RunError::Other(msg)) => {
            assert!(msg.contains("refused with 429"), "{msg}");
            assert!(msg.contains("--rate-limit-rps 0"), "{msg}");
        }
        Err(other) => panic!("expected the rate-limit refusal, got {other}"),
        Ok(o) => panic!("a throttled run was judged: {}", o.verdict.human()),
    }
    // Control: the same run against the same server with the limits off
    // is judged, and passes.
    let (server, target) = embedded(&[]).await;
    let judged = run_against(&target, &opts).await.unwrap();
    server.stop().await.unwrap();
    assert!(judged.verdict.pass, "{}", judged.verdict.human());
}

#[tokio::test]
async fn external_targets_need_an_admin_token() {
    assert!(matches!(
        Target::external("http://127.0.0.1:9", None),
        Err(RunError::Usage(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_is_a_complete_jepsen_style_log() {
    let (server, target) = embedded(&[]).await;
    let mut opts = options(&[CheckName::Oversell, CheckName::Tokens]);
    opts.no_variants = true;
    let outcome = run_against(&target, &opts).await.unwrap();
    server.stop().await.unwrap();
    let dir = TempDir::new("verify-history");
    outcome.verdict.write(&dir, &outcome.history).unwrap();

    let text = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let ops: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ops.len(), outcome.verdict.history_ops);
    let mut open: std::collections::HashMap<(String, String), usize> = Default::default();
    let mut last_time = 0;
    let mut notes = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(op["index"], i);
        let time = op["time"].as_u64().unwrap();
        assert!(time >= last_time, "monotonic times");
        last_time = time;
        let key = (
            op["process"].as_str().unwrap().to_owned(),
            op["f"].as_str().unwrap().to_owned(),
        );
        match op["type"].as_str().unwrap() {
            "invoke" => *open.entry(key).or_default() += 1,
            "ok" | "fail" | "info" if key.1 == "sse" => {}
            // The verifier's own steps: single notes, no invoke.
            "info" if key.0 == verify::history::VERIFY => notes.push(key.1),
            "ok" | "fail" | "info" => {
                let n = open.get_mut(&key).expect("a completion follows an invoke");
                *n -= 1;
            }
            other => panic!("unknown type {other}"),
        }
    }
    assert!(open.values().all(|n| *n == 0), "every invoke completed");
    assert_eq!(
        notes,
        ["run", "scenario", "release", "scenario"],
        "race, then tokens"
    );
    let reserves_ok = ops
        .iter()
        .filter(|o| o["f"] == "reserve" && o["type"] == "ok")
        .count();
    assert_eq!(
        reserves_ok, 101,
        "100 in the race, 1 legit purchase in the token check"
    );

    let verdict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("verdict.json")).unwrap()).unwrap();
    assert_eq!(verdict["pass"], true);
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<testsuite name=\"oversell\"")
            && junit.contains("<testsuite name=\"tokens\""),
        "{junit}"
    );
}
