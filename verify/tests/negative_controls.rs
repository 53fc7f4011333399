//! The verifier must be able to fail: it catches every unsafe mode of the
//! reference server, with a witness, and never flags the safe one.

mod common;

use common::{embedded, options, purchases};
use testkit::{caught_in, Trial};
use verify::{run_against, CheckName, CheckReport, Options, Verdict};

/// Check 6 alone, told that holds last 500 ms (a server started with
/// `--hold-ttl 500ms` keeps 20 runs quick).
fn short_holds() -> Options {
    let mut opts = options(&[CheckName::Seatmap]);
    opts.hold_ttl_ms = 500;
    opts.expiry_tolerance_ms = 500;
    opts
}

/// One run of `opts` against the reference server started with `flags`.
async fn run_once(flags: &[&str], opts: &Options) -> Verdict {
    let (server, target) = embedded(flags).await;
    let verdict = run_against(&target, opts).await.unwrap().verdict;
    server.stop().await.unwrap();
    verdict
}

/// Runs `opts` 20 times against the reference server started with `flags`
/// (a negative control): at least 19 runs must be caught, each by check
/// `check` failing the run (exit status 1, its headline first) in a way
/// `judge` accepts.
async fn caught_in_19_of_20(
    flags: &[&str],
    opts: Options,
    what: &str,
    check: &str,
    judge: impl Fn(&CheckReport),
) {
    let (server, target) = embedded(flags).await;
    let (target, opts, judge) = (&target, &opts, &judge);
    caught_in(19, 20, what, |_| async move {
        let verdict = run_against(target, opts).await.unwrap().verdict;
        if verdict.pass {
            return Trial::Missed(verdict.headline);
        }
        assert_eq!(verdict.exit_code(), 1);
        assert!(
            verdict.headline.starts_with(&format!("FAIL {check}: ")),
            "{}",
            verdict.headline
        );
        judge(&verdict.checks[0]);
        Trial::Caught(verdict.checks[0].witness.clone())
    })
    .await;
    server.stop().await.unwrap();
}

/// Runs `opts` 20 times against the reference server started with `flags`
/// (a safe control): every run must pass, and `judge` accept it.
async fn never_flagged_in_20(flags: &[&str], opts: Options, judge: impl Fn(&Verdict)) {
    let (server, target) = embedded(flags).await;
    for run in 0..20 {
        let verdict = run_against(&target, &opts).await.unwrap().verdict;
        assert!(
            verdict.pass,
            "false positive in run {run}:\n{}",
            verdict.human()
        );
        judge(&verdict);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catches_the_unsafe_race_in_at_least_19_of_20_runs() {
    let mut opts = options(&[CheckName::Oversell]);
    opts.no_variants = true;
    caught_in_19_of_20(
        &["--unsafe-race"],
        opts,
        "over-selling",
        "oversell",
        |check| {
            // Over-selling, not any wrong count: more than the 100 items.
            let (n, possible) = purchases(&check.summary);
            assert_eq!(possible, 100, "{}", check.summary);
            assert!(n > 100, "{}", check.summary);
            let sold = check.details["event"]["sold"].as_u64().unwrap();
            assert!(
                sold > 100,
                "the event reports sold {sold}: {}",
                check.details
            );
            assert!(
                check.witness.iter().any(|w| w.contains(" got r")),
                "the witness names reservations: {:?}",
                check.witness
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catches_the_unsafe_seat_hold_in_at_least_19_of_20_runs() {
    // A short TTL keeps 20 runs quick; the check waits for holds to lapse.
    let flags = ["--unsafe-hold", "--hold-ttl", "500ms"];
    caught_in_19_of_20(&flags, short_holds(), "double holds", "seatmap", |check| {
        assert!(
            check.details["violations"]["doubleHolds"].as_u64().unwrap() > 0,
            "{}",
            check.summary
        );
        assert!(
            check
                .witness
                .iter()
                .any(|w| w.starts_with("seat ") && w.contains("while the first was still held")),
            "the witness names the seat and both holders: {:?}",
            check.witness
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_flags_the_safe_seat_map_in_20_runs() {
    never_flagged_in_20(&["--hold-ttl", "500ms"], short_holds(), |verdict| {
        // Every part of the check had something to judge.
        let d = &verdict.checks[0].details;
        for key in ["paid", "lapsed", "seatTaken", "balancesExact"] {
            assert!(d[key].as_u64().unwrap() > 0, "{key} was 0: {d}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_holds_never_lapse_is_caught() {
    // Started with a TTL far longer than the check is told: holds outlive
    // TTL + tolerance, late payments succeed.
    let mut opts = options(&[CheckName::Seatmap]);
    opts.hold_ttl_ms = 300;
    opts.expiry_tolerance_ms = 300;
    let verdict = run_once(&["--hold-ttl", "60s"], &opts).await;
    assert!(!verdict.pass, "{}", verdict.human());
    assert_eq!(verdict.exit_code(), 1);
    assert!(
        verdict.headline.starts_with("FAIL seatmap: "),
        "{}",
        verdict.headline
    );
    let v = &verdict.checks[0].details["violations"];
    assert!(v["lapsedTooLate"].as_u64().unwrap() > 0, "{v}");
    assert!(v["paymentsAfterExpiry"].as_u64().unwrap() > 0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_flags_the_safe_server_in_20_runs() {
    let opts = options(&[
        CheckName::Oversell,
        CheckName::Fifo,
        CheckName::Display,
        CheckName::Tokens,
    ]);
    never_flagged_in_20(&[], opts, |verdict| {
        assert_eq!(verdict.checks.len(), 6, "3 races, fifo, display, tokens");
        assert_eq!(
            verdict.headline,
            "PASS oversell: 100 ok / 100 sold-out / 0 unresolved"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_admits_out_of_order_fails_fifo() {
    let verdict = run_once(&["--unsafe-fifo"], &options(&[CheckName::Fifo])).await;
    assert!(!verdict.pass);
    let fifo = &verdict.checks[0];
    assert_eq!(fifo.check, "fifo");
    assert!(
        fifo.details["inversions"].as_u64().unwrap() > 0,
        "{}",
        fifo.details
    );
    assert!(fifo.details["kendallTau"].as_f64().unwrap() < 1.0);
    assert!(fifo.details["largestDisplacement"].as_u64().unwrap() > 0);
    assert!(
        fifo.witness
            .iter()
            .any(|w| w.contains("was admitted in round")),
        "{:?}",
        fifo.witness
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_positions_go_up_fails_display() {
    let verdict = run_once(&["--unsafe-sse"], &options(&[CheckName::Display])).await;
    assert!(!verdict.pass);
    let display = &verdict.checks[0];
    assert!(display.details["positionRises"].as_u64().unwrap() > 0);
    assert!(
        display.witness.iter().any(|w| w.contains("then")),
        "{:?}",
        display.witness
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safe_server_passes_fifo_and_display_with_exact_numbers() {
    let verdict = run_once(&[], &options(&[CheckName::Fifo, CheckName::Display])).await;
    assert!(verdict.pass, "{}", verdict.human());
    let fifo = &verdict.checks[0].details;
    assert_eq!(fifo["inversions"], 0);
    assert_eq!(fifo["kendallTau"], 1.0);
    assert_eq!(fifo["largestDisplacement"], 0);
    assert!(
        fifo["orderedPairs"].as_u64().unwrap() > 500,
        "waves order most pairs: {fifo}"
    );
    let display = &verdict.checks[1].details;
    assert_eq!(display["maxActiveSampled"], 5);
    assert!(display["positionEvents"].as_u64().unwrap() > 40);
}
