//! The verifier must be able to fail: it catches every unsafe mode of the
//! reference server, with a witness, and never flags the safe one.

mod common;

use common::options;
use verify::{run_against, CheckName, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catches_the_unsafe_race_in_at_least_19_of_20_runs() {
    let target = Target::embedded(&["--unsafe-race"]).await.unwrap();
    let mut opts = options(&[CheckName::Oversell]);
    opts.no_variants = true;
    let mut caught = 0;
    for _ in 0..20 {
        let verdict = run_against(&target, &opts).await.unwrap().verdict;
        if !verdict.pass {
            assert_eq!(verdict.exit_code(), 1);
            assert!(
                verdict.headline.starts_with("FAIL oversell: "),
                "{}",
                verdict.headline
            );
            let check = &verdict.checks[0];
            assert!(
                check.summary.contains("purchases succeeded, 100 possible"),
                "{}",
                check.summary
            );
            assert!(
                check.witness.iter().any(|w| w.contains(" got r")),
                "the witness names reservations: {:?}",
                check.witness
            );
            caught += 1;
        }
    }
    target.stop().await;
    assert!(
        caught >= 19,
        "over-selling caught in only {caught} of 20 runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catches_the_unsafe_seat_hold_in_at_least_19_of_20_runs() {
    // A short TTL keeps 20 runs quick; the check waits for holds to lapse.
    let target = Target::embedded(&["--unsafe-hold", "--hold-ttl", "500ms"])
        .await
        .unwrap();
    let mut opts = options(&[CheckName::Seatmap]);
    opts.hold_ttl_ms = 500;
    opts.expiry_tolerance_ms = 500;
    let mut caught = 0;
    for _ in 0..20 {
        let verdict = run_against(&target, &opts).await.unwrap().verdict;
        if !verdict.pass {
            assert_eq!(verdict.exit_code(), 1);
            assert!(
                verdict.headline.starts_with("FAIL seatmap: "),
                "{}",
                verdict.headline
            );
            let check = &verdict.checks[0];
            assert_ne!(
                check.details["violations"]["doubleHolds"], 0,
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
            caught += 1;
        }
    }
    target.stop().await;
    assert!(
        caught >= 19,
        "double holds caught in only {caught} of 20 runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_flags_the_safe_seat_map_in_20_runs() {
    let target = Target::embedded(&["--hold-ttl", "500ms"]).await.unwrap();
    let mut opts = options(&[CheckName::Seatmap]);
    opts.hold_ttl_ms = 500;
    opts.expiry_tolerance_ms = 500;
    for run in 0..20 {
        let verdict = run_against(&target, &opts).await.unwrap().verdict;
        assert!(
            verdict.pass,
            "false positive in run {run}:\n{}",
            verdict.human()
        );
        // Every part of the check had something to judge.
        let d = &verdict.checks[0].details;
        for key in ["paid", "lapsed", "seatTaken", "balancesExact"] {
            assert!(d[key].as_u64().unwrap() > 0, "{key} was 0: {d}");
        }
    }
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_holds_never_lapse_is_caught() {
    // Started with a TTL far longer than the check is told: holds outlive
    // TTL + tolerance, late payments succeed.
    let target = Target::embedded(&["--hold-ttl", "60s"]).await.unwrap();
    let mut opts = options(&[CheckName::Seatmap]);
    opts.hold_ttl_ms = 300;
    opts.expiry_tolerance_ms = 300;
    let verdict = run_against(&target, &opts).await.unwrap().verdict;
    target.stop().await;
    assert!(!verdict.pass, "{}", verdict.human());
    let v = &verdict.checks[0].details["violations"];
    assert_ne!(v["lapsedTooLate"], 0, "{v}");
    assert_ne!(v["paymentsAfterExpiry"], 0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_flags_the_safe_server_in_20_runs() {
    let target = Target::embedded(&[]).await.unwrap();
    let opts = options(&[
        CheckName::Oversell,
        CheckName::Fifo,
        CheckName::Display,
        CheckName::Tokens,
    ]);
    for run in 0..20 {
        let verdict = run_against(&target, &opts).await.unwrap().verdict;
        assert!(
            verdict.pass,
            "false positive in run {run}:\n{}",
            verdict.human()
        );
        assert_eq!(verdict.checks.len(), 6, "3 races, fifo, display, tokens");
        assert_eq!(
            verdict.headline,
            "PASS oversell: 100 ok / 100 sold-out / 0 unresolved"
        );
    }
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_admits_out_of_order_fails_fifo() {
    let target = Target::embedded(&["--unsafe-fifo"]).await.unwrap();
    let verdict = run_against(&target, &options(&[CheckName::Fifo]))
        .await
        .unwrap()
        .verdict;
    target.stop().await;
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
    let target = Target::embedded(&["--unsafe-sse"]).await.unwrap();
    let verdict = run_against(&target, &options(&[CheckName::Display]))
        .await
        .unwrap()
        .verdict;
    target.stop().await;
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
    let target = Target::embedded(&[]).await.unwrap();
    let verdict = run_against(&target, &options(&[CheckName::Fifo, CheckName::Display]))
        .await
        .unwrap()
        .verdict;
    target.stop().await;
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
