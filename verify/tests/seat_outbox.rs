//! Check 2 on the seat map against two reference-server instances on the
//! real stack: every committed seat event reaches its topic, through the
//! server's outbox relay when the send after the commit fails, and check 2
//! reports the events lost when no relay runs (so it can fail).

mod common;

use common::{options, reference};
use serde_json::Value;
use testkit::{real_stack, Backend};
use verify::{run_against, CheckName, Target, Verdict};

/// Checks 6 and 2 (a small seat map) against two instances started with
/// `flags` in a fresh namespace. `None`: no real stack (a skip, or a
/// failure under CI).
async fn seat_map_on_two_instances(flags: &[&str], store_deadline: u64) -> Option<Verdict> {
    let stack = real_stack()?;
    let real = Backend::Real(stack.clone());
    let a = reference(&real, flags).await;
    let b = reference(&real, flags).await;
    let both =
        Target::external_many(&[a.base.clone(), b.base.clone()], Some(&a.admin_token)).unwrap();
    let mut o = options(&[CheckName::Seatmap]);
    o.seat_users = 60;
    o.seats = 20;
    o.hot_seats = 5;
    o.redis_url = Some(stack.redis_url.clone());
    o.kafka_brokers = Some(stack.kafka_brokers.clone());
    o.postgres_url = Some(stack.postgres_url.clone());
    o.namespace = stack.namespace.clone();
    o.store_deadline = store_deadline;
    let verdict = run_against(&both, &o).await.unwrap().verdict;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    Some(verdict)
}

/// The seat-map part of check 2 (there is exactly one), and check 6's report.
fn reports(verdict: &Verdict) -> (&verify::CheckReport, &verify::CheckReport) {
    let events: Vec<_> = verdict
        .checks
        .iter()
        .filter(|c| c.check == "stores" && c.name.starts_with("seat-map events"))
        .collect();
    assert_eq!(events.len(), 1, "{}", verdict.human());
    let seatmap = verdict
        .checks
        .iter()
        .find(|c| c.check == "seatmap")
        .expect("check 6 ran");
    (events[0], seatmap)
}

fn count(details: &Value, key: &str) -> u64 {
    details[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count: {details}"))
}

fn list_len(details: &Value, key: &str) -> usize {
    details[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not a list: {details}"))
        .len()
}

/// Every kind of seat event happened, so each path was exercised.
fn assert_every_kind(d: &Value) {
    for kind in ["created", "paid", "expired"] {
        assert!(count(d, kind) > 0, "no {kind} event: {d}");
    }
    assert_eq!(
        count(d, "expected"),
        count(d, "created") + count(d, "paid") + count(d, "expired")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seat_events_reach_their_topics_after_the_commit() {
    let Some(verdict) = seat_map_on_two_instances(&[], 15).await else {
        return;
    };
    assert!(verdict.pass, "{}", verdict.human());
    let (events, _) = reports(&verdict);
    println!("{}", events.summary);
    let d = &events.details;
    assert_every_kind(d);
    assert_eq!(count(d, "onKafka"), count(d, "expected"), "{d}");
    assert_eq!(list_len(d, "lost"), 0, "{d}");
    // The send after the commit works: the relay is only a fallback.
    assert!(
        (list_len(d, "recovered") as u64) < count(d, "expected"),
        "every event came through the relay: {d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_seat_event_send_reaches_the_topic_through_the_relay() {
    let Some(verdict) = seat_map_on_two_instances(&["--debug-drop-seat-events"], 15).await else {
        return;
    };
    assert!(verdict.pass, "{}", verdict.human());
    let (events, _) = reports(&verdict);
    println!("{}", events.summary);
    let d = &events.details;
    assert_every_kind(d);
    assert_eq!(list_len(d, "lost"), 0, "{d}");
    // No send after a commit happened: every event is on its topic only
    // because the relay sent it, and check 2 says so.
    assert_eq!(list_len(d, "recovered") as u64, count(d, "expected"), "{d}");
    assert!(
        events
            .summary
            .contains(&format!("0 lost / {} recovered", count(d, "expected"))),
        "{}",
        events.summary
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_2_reports_seat_events_lost_without_the_relay() {
    let flags = ["--debug-drop-seat-events", "--debug-no-outbox-relay"];
    let Some(verdict) = seat_map_on_two_instances(&flags, 2).await else {
        return;
    };
    assert!(!verdict.pass, "{}", verdict.human());
    let (events, seatmap) = reports(&verdict);
    // The seat map itself is right; only its events are missing.
    assert!(seatmap.pass, "{}", verdict.human());
    assert!(!events.pass);
    let d = &events.details;
    assert_every_kind(d);
    assert_eq!(list_len(d, "lost") as u64, count(d, "expected"), "{d}");
    assert_eq!(list_len(d, "recovered"), 0, "{d}");
    assert_eq!(count(d, "onKafka"), 0, "{d}");
    assert!(count(d, "outboxUnsent") > 0, "{d}");
    assert!(
        events.witness.iter().any(|w| w.starts_with("lost: ")),
        "{:?}",
        events.witness
    );
    for kind in [
        "reservation.created",
        "payment.completed",
        "reservation.expired",
    ] {
        let named = format!("lost: {kind} r");
        assert!(
            d["lost"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l.as_str().is_some_and(|l| l.starts_with(&named))),
            "no {kind} among the lost: {d}"
        );
    }
}
