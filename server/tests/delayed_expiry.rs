//! Expiry by delayed message (`--expiry delayed`) on the real stack: a
//! lapsed hold keeps its seat until the `reservation.created` consumer
//! releases it, the release comes at the deadline, and a hold whose
//! instance stopped before its deadline is released by the instance that
//! takes the consumer's partitions over (from the offsets in PostgreSQL).
//! Check 6 under this mode, and its late-firing negative control, are in
//! `verify/tests/seat_strategies.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{concert, hold_seat, seat_status};
use reqwest::StatusCode;
use testkit::{eventually, start, Backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_hold_is_released_by_its_delayed_message() {
    let Some(real) = Backend::real() else {
        return;
    };
    let s = start(&real, &["--expiry", "delayed", "--hold-ttl", "1s"]).await;
    concert(&s, "c1", 100).await;
    let a = s.token("c1", "alice").await;
    let held_at = Instant::now();
    let (status, held) = hold_seat(&s, &a, "c1", 1).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    assert_eq!(seat_status(&s, "c1", 1).await, "HELD");
    let freed = eventually(
        Duration::from_secs(10),
        "the seat to be released",
        || async { (seat_status(&s, "c1", 1).await == "AVAILABLE").then(|| held_at.elapsed()) },
    )
    .await;
    // Not before the deadline (the seat map shows nothing lapsed early);
    // no sweeper runs in this mode, so the consumer released it.
    assert!(
        freed >= Duration::from_millis(950),
        "released after {freed:?}"
    );
    let b = s.token("c1", "bob").await;
    assert_eq!(hold_seat(&s, &b, "c1", 1).await.0, StatusCode::CREATED);
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_outlives_its_instance_and_a_survivor_releases_it() {
    let Some(real) = Backend::real() else {
        return;
    };
    let first = start(&real, &["--expiry", "delayed", "--hold-ttl", "2s"]).await;
    concert(&first, "c1", 100).await;
    let a = first.token("c1", "alice").await;
    let held_at = Instant::now();
    let (status, held) = hold_seat(&first, &a, "c1", 1).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    // Its timer dies with it; only the offsets in PostgreSQL remain. The
    // survivor fires 10 s late (the negative control's defect), so a
    // release at the deadline could only be the stopped instance's.
    first.stop().await.unwrap();
    let flags = ["--expiry", "delayed", "--unsafe-expiry", "--hold-ttl", "2s"];
    let second = start(&real, &flags).await;
    let released_at = eventually(
        Duration::from_secs(30),
        "the survivor to release the seat",
        || async {
            (seat_status(&second, "c1", 1).await == "AVAILABLE").then(|| held_at.elapsed())
        },
    )
    .await;
    assert!(
        released_at >= Duration::from_secs(12),
        "released {released_at:?} after the hold: not by the survivor"
    );
    second.stop().await.unwrap();
}
