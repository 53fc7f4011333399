//! The seat-hold strategies of the real backend (`--seat-lock`): each one
//! lets exactly one of many racing users hold a seat, confirms it on
//! payment and lets a lapsed hold be taken; a slow holder under the
//! redis-lock keeps its lock (the watchdog); and the unsafe lock (no
//! watchdog, a write that trusts the lock) lets two users hold one seat.
//!
//! The whole seat-map suite also runs under any strategy:
//! `SEAT_LOCK=row-lock cargo test -p ticket-server --test seatmap`.

mod common;

use std::time::Duration;

use clap::Parser;
use common::{balance, charge, concert, hold_seat, pay, seat_status, PRICE};
use reqwest::StatusCode;
use serde_json::json;
use testkit::{eventually, start, Backend, TestServer};

const STRATEGIES: [&str; 3] = ["conditional", "row-lock", "redis-lock"];

/// `users` users race for seat 1 of `c1`; returns how many got 201, and
/// asserts every other answer was SEAT_TAKEN.
async fn race_for_one_seat(s: &TestServer, users: usize) -> usize {
    let tokens = s.tokens("c1", users).await;
    let tries = tokens.iter().map(|t| hold_seat(s, t, "c1", 1));
    let results = futures_util::future::join_all(tries).await;
    for (status, v) in &results {
        assert!(
            *status == StatusCode::CREATED || v["error"] == "SEAT_TAKEN",
            "{status} {v}"
        );
    }
    results
        .iter()
        .filter(|(st, _)| *st == StatusCode::CREATED)
        .count()
}

/// The server on the real stack with `--seat-lock strategy` and `extra`.
async fn on_real(strategy: &str, extra: &[&str]) -> Option<TestServer> {
    let real = Backend::real()?;
    let mut args = vec!["--seat-lock", strategy];
    args.extend(extra);
    Some(start(&real, &args).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_strategy_holds_pays_and_lets_a_lapsed_hold_go() {
    for strategy in STRATEGIES {
        let Some(s) = on_real(strategy, &["--hold-ttl", "300ms"]).await else {
            return;
        };
        concert(&s, "c1", 100).await;
        assert_eq!(race_for_one_seat(&s, 20).await, 1, "{strategy}: one winner");

        // A hold that is paid is CONFIRMED and stays the payer's.
        let a = s.token("c1", "alice").await;
        charge(&s, "alice", json!(PRICE)).await;
        let (status, held) = hold_seat(&s, &a, "c1", 2).await;
        assert_eq!(status, StatusCode::CREATED, "{strategy}: {held}");
        let (status, paid) = pay(&s, &a, &held["reservationId"], Some("k")).await;
        assert_eq!(status, StatusCode::OK, "{strategy}: {paid}");
        assert_eq!(seat_status(&s, "c1", 2).await, "CONFIRMED");
        assert_eq!(balance(&s, "alice").await, 0);
        let b = s.token("c1", "bob").await;
        let taken = hold_seat(&s, &b, "c1", 2).await;
        assert_eq!(taken.1["error"], "SEAT_TAKEN", "{strategy}: {}", taken.1);

        // An unpaid hold lapses and the seat can be held again.
        let c = s.token("c1", "carol").await;
        let (status, _) = hold_seat(&s, &c, "c1", 3).await;
        assert_eq!(status, StatusCode::CREATED, "{strategy}");
        let d = s.token("c1", "dave").await;
        assert_eq!(
            hold_seat(&s, &d, "c1", 3).await.1["error"],
            "SEAT_TAKEN",
            "{strategy}: still carol's"
        );
        eventually(Duration::from_secs(5), "carol's hold to lapse", || async {
            (hold_seat(&s, &d, "c1", 3).await.0 == StatusCode::CREATED).then_some(())
        })
        .await;
        s.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_lock_holder_keeps_its_lock_by_the_watchdog() {
    // The lease (60 ms) runs out three times over while each holder works
    // (200 ms): only the watchdog keeps the others out. The unique index
    // would refuse a second hold anyway, so the lock's own evidence is
    // read too: no release found its lock gone.
    let Some(s) = on_real(
        "redis-lock",
        &[
            "--debug-seat-lock-lease-ms",
            "60",
            "--debug-seat-lock-slow-ms",
            "200",
        ],
    )
    .await
    else {
        return;
    };
    concert(&s, "c1", 100).await;
    assert_eq!(race_for_one_seat(&s, 8).await, 1);
    let metrics = s.metrics().await;
    assert!(
        counter(&metrics, "seat_lock_extensions_total") > 0,
        "{metrics}"
    );
    assert!(
        counter(&metrics, "seat_lock_retries_total") > 0,
        "{metrics}"
    );
    assert_eq!(counter(&metrics, "seat_lock_lost_total"), 0, "{metrics}");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unsafe_seat_lock_lets_two_users_hold_one_seat() {
    let Some(s) = on_real("redis-lock", &["--unsafe-seat-lock"]).await else {
        return;
    };
    concert(&s, "c1", 100).await;
    let won = race_for_one_seat(&s, 8).await;
    assert!(won > 1, "the negative control must double-hold, {won} won");
    let metrics = s.metrics().await;
    assert!(counter(&metrics, "seat_lock_lost_total") > 0, "{metrics}");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unsafe_seat_lock_is_refused_where_it_means_nothing() {
    let e = refused(&["--unsafe-seat-lock"]).await;
    assert!(e.contains("only on the real backend"), "{e}");
    let e = refused(&["--backend", "real", "--unsafe-seat-lock"]).await;
    assert!(e.contains("needs --seat-lock redis-lock"), "{e}");
    // Control: the same start with the strategy it needs is not refused
    // by that rule (it goes on to reach for a stack that is not there).
    let e = refused(&[
        "--backend",
        "real",
        "--seat-lock",
        "redis-lock",
        "--unsafe-seat-lock",
        "--redis-url",
        "redis://127.0.0.1:1",
    ])
    .await;
    assert!(e.contains("Redis at"), "{e}");
}

/// The error a start with `args` stops with, before it serves anything.
async fn refused(args: &[&str]) -> String {
    let mut all = vec!["ticket-server", "--listen", "127.0.0.1:0"];
    all.extend(["--admin-token", "a", "--token-secret", "s"]);
    all.extend(args);
    let config = ticket_server::Config::try_parse_from(&all).unwrap();
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let run = ticket_server::run(config, listener, std::future::pending());
    let ended = tokio::time::timeout(Duration::from_secs(20), run).await;
    ended.expect("the start ends").unwrap_err().to_string()
}

/// A counter's value in a metrics text (0 when absent).
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |n| n.trim().parse().unwrap())
}
