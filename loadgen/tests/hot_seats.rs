//! `--hot-seat-share`: the share of `hold_and_pay` iterations whose first
//! hold goes to one of the 10 hot seats, whatever the seat map shows, so
//! holds race for the same seats (the seat-hold strategies' comparison
//! measures them under this contention).

use loadgen::run::{run, RunArgs};
use loadgen::scenarios::Kind;
use loadgen::setup::sum_metric;
use testkit::{start, Backend, TempDir, TestServer};

/// A 4 s `hold_and_pay` run at 40/s with `share`; returns the iterations
/// run and the holds the server refused SEAT_TAKEN.
async fn seat_taken_with(target: &TestServer, share: f64) -> (u64, f64) {
    let out = TempDir::new("loadgen-test-hot");
    let mut a = RunArgs::new(
        vec![target.base.clone()],
        &target.admin_token,
        Kind::HoldAndPay,
        out.to_path_buf(),
    );
    a.rate = Some(40.0);
    a.duration = 4.0;
    a.hot_seat_share = share;
    let before = taken(target).await;
    let summary = run(&a).await.unwrap();
    let iterations = summary.transactions["hold_and_pay"].count;
    (iterations, taken(target).await - before)
}

async fn taken(target: &TestServer) -> f64 {
    let text = target.metrics().await;
    sum_metric(&text, "seat_hold_total", &["result=\"SEAT_TAKEN\""])
}

/// goose keeps process-wide state: the two runs go one after the other in
/// one test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_seat_share_makes_holds_race_for_the_hot_seats() {
    let ttl = format!("{}ms", verify::DEFAULT_HOLD_TTL_MS);
    let target = start(&Backend::Memory, &["--hold-ttl", &ttl]).await;
    // Every first hold on 10 seats: once they are held, nearly every
    // iteration meets SEAT_TAKEN before falling back.
    let (iterations, refused) = seat_taken_with(&target, 1.0).await;
    assert!(iterations >= 100, "too few iterations: {iterations}");
    assert!(
        refused >= iterations as f64 / 2.0,
        "share 1: {refused} SEAT_TAKEN in {iterations} iterations"
    );
    // The control: random AVAILABLE seats of 200-seat schedules rarely
    // collide.
    let (iterations, refused) = seat_taken_with(&target, 0.0).await;
    assert!(
        refused <= iterations as f64 / 10.0,
        "share 0: {refused} SEAT_TAKEN in {iterations} iterations"
    );
    target.stop().await.unwrap();
}

#[test]
fn a_share_outside_0_to_1_or_off_hold_and_pay_is_refused() {
    let mut a = RunArgs::new(
        vec!["http://127.0.0.1:1".into()],
        "t",
        Kind::HoldAndPay,
        "out".into(),
    );
    a.hot_seat_share = 1.5;
    let e = a.validate().unwrap_err().to_string();
    assert!(e.contains("between 0 and 1"), "{e}");
    a.hot_seat_share = 0.5;
    a.validate().unwrap();
    a.scenario = Kind::FlashSale;
    let e = a.validate().unwrap_err().to_string();
    assert!(e.contains("hold-and-pay only"), "{e}");
}
