//! Each branch of checks 4 (display), 5 (tokens) and 6 (seat map) fails
//! against a reference server with exactly that defect (a negative-control
//! flag), and says which branch it was. The defects are deterministic, so
//! one run each suffices.

mod common;

use common::{embedded, options};
use verify::{run_against, CheckName, CheckReport, Options};

/// Runs `check` alone against the server started with `flags`, and returns
/// its report after asserting the run failed on it.
async fn failed(flags: &[&str], check: CheckName, tune: impl Fn(&mut Options)) -> CheckReport {
    let (server, target) = embedded(flags).await;
    let mut opts = options(&[check]);
    tune(&mut opts);
    let verdict = run_against(&target, &opts).await.unwrap().verdict;
    server.stop().await.unwrap();
    assert!(!verdict.pass, "{flags:?} not caught:\n{}", verdict.human());
    assert_eq!(verdict.exit_code(), 1);
    verdict.checks.into_iter().next().unwrap()
}

fn witness_has(report: &CheckReport, needle: &str) {
    assert!(
        report.witness.iter().any(|w| w.contains(needle)),
        "no witness with {needle:?}: {:?}",
        report.witness
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_catches_a_used_token_that_buys_again() {
    let report = failed(&["--unsafe-token-reuse"], CheckName::Tokens, |_| {}).await;
    witness_has(&report, "used");
    // Exactly the used-token case failed; the other five were refused.
    let cases = report.details["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6, "{}", report.details);
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let pass = case["pass"].as_bool().unwrap();
        assert_eq!(pass, name != "used token", "{case}");
    }
    assert!(
        report.summary.starts_with("5 of 6 bad tokens refused"),
        "{}",
        report.summary
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_catches_more_than_active_capacity() {
    let report = failed(&["--unsafe-capacity"], CheckName::Display, |_| {}).await;
    assert!(
        report.summary.contains("more than activeCapacity"),
        "{}",
        report.summary
    );
    witness_has(&report, "activeCapacity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_catches_a_purchase_before_active() {
    let report = failed(&["--unsafe-early-buy"], CheckName::Display, |_| {}).await;
    assert!(
        report.summary.contains("purchases before ACTIVE was shown"),
        "{}",
        report.summary
    );
    witness_has(&report, "before being shown ACTIVE");
}

/// Check 6 against a defect, with a short TTL so the run is quick.
async fn seat_map_with(flag: &str) -> CheckReport {
    failed(
        &[flag, "--hold-ttl", "1000ms"],
        CheckName::Seatmap,
        |opts| {
            opts.hold_ttl_ms = 1000;
            opts.expiry_tolerance_ms = 500;
        },
    )
    .await
}

fn violations(report: &CheckReport, kind: &str) -> u64 {
    report.details["violations"][kind].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_map_catches_a_hold_released_early() {
    let report = seat_map_with("--unsafe-early-release").await;
    assert_ne!(
        violations(&report, "shownAvailableWhileHeld"),
        0,
        "{}",
        report.details
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_map_catches_a_retry_charged_twice() {
    let report = seat_map_with("--unsafe-double-charge").await;
    assert_ne!(violations(&report, "chargedTwice"), 0, "{}", report.details);
    witness_has(&report, "payments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_map_catches_a_wrong_balance() {
    let report = seat_map_with("--unsafe-balance").await;
    assert_ne!(violations(&report, "balances"), 0, "{}", report.details);
    // The payments themselves look right: only the balances give it away.
    assert_eq!(violations(&report, "chargedTwice"), 0, "{}", report.details);
    witness_has(&report, "expected");
}
