//! The headline property: N concurrent buyers for S items, released at once.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::{eventually, split, start, Backend, TestServer};

/// Outcome of one buyer in a race.
struct Outcome {
    user: String,
    status: StatusCode,
    body: Value,
}

/// `buyers` users enter (all admitted: the event's capacity must allow it),
/// then all reserve `quantity` at once, released by a barrier.
async fn race(server: &TestServer, event: &str, buyers: usize, quantity: u32) -> Vec<Outcome> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(buyers));
    let mut tasks = Vec::new();
    for i in 0..buyers {
        let client = server.client.clone();
        let base = server.base.clone();
        let barrier = barrier.clone();
        let event = event.to_owned();
        tasks.push(tokio::spawn(async move {
            let user = format!("buyer-{i}");
            let r = client
                .post(format!("{base}/api/v1/queue/enter"))
                .json(&json!({"eventId": event, "userId": user}))
                .send()
                .await
                .unwrap();
            let (status, entered) = split(r).await;
            // Everyone reaches the barrier before anyone's assertion can
            // fail: a buyer that panicked first would leave the others
            // waiting at it forever.
            barrier.wait().await;
            assert_eq!(status, StatusCode::OK, "{entered}");
            assert_eq!(
                entered["status"], "ACTIVE",
                "all buyers must be admitted: {entered}"
            );
            let token = entered["token"].as_str().unwrap().to_owned();
            let r = client
                .post(format!("{base}/api/v1/tickets/reserve"))
                .header("X-Queue-Token", token)
                .json(&json!({"eventId": event, "quantity": quantity}))
                .send()
                .await
                .unwrap();
            let (status, body) = split(r).await;
            Outcome { user, status, body }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn tally(outcomes: &[Outcome]) -> (usize, usize, Vec<String>) {
    let ok: Vec<String> = outcomes
        .iter()
        .filter(|o| o.status == StatusCode::OK)
        .map(|o| o.body["reservationId"].as_str().unwrap().to_owned())
        .collect();
    let sold_out = outcomes
        .iter()
        .filter(|o| o.status == StatusCode::CONFLICT && o.body["error"] == "SOLD_OUT")
        .count();
    let other: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status != StatusCode::OK && o.body["error"] != "SOLD_OUT")
        .map(|o| format!("{} {} {}", o.user, o.status, o.body))
        .collect();
    assert!(other.is_empty(), "unexpected outcomes: {other:?}");
    (ok.len(), sold_out, ok)
}

async fn exact_sale(backend: Option<Backend>, buyers: usize, stock: u64, quantity: u32) {
    let Some(backend) = backend else {
        return;
    };
    let server = start(&backend, &[]).await;
    server
        .event(
            "sale",
            stock,
            json!({"perUserLimit": quantity, "activeCapacity": buyers}),
        )
        .await;
    let outcomes = race(&server, "sale", buyers, quantity).await;
    let (ok, sold_out, ids) = tally(&outcomes);
    let expected_ok = (stock / u64::from(quantity)) as usize;
    assert_eq!(ok, expected_ok, "successful buyers");
    assert_eq!(sold_out, buyers - expected_ok, "sold-out buyers");
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "reservation ids are unique");

    let state = server.event_state("sale").await;
    let sold = expected_ok as u64 * u64::from(quantity);
    assert_eq!(state["sold"], sold, "{state}");
    assert_eq!(state["remaining"], stock - sold, "{state}");

    // Every reservation is readable, belongs to a buyer, and gets CONFIRMED.
    let buyers_ok: HashSet<_> = outcomes
        .iter()
        .filter(|o| o.status == StatusCode::OK)
        .map(|o| o.user.clone())
        .collect();
    for id in &ids {
        let r = eventually(std::time::Duration::from_secs(10), "CONFIRMED", || async {
            let (status, r) = server.get(&format!("/api/v1/tickets/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{r}");
            (r["status"] == "CONFIRMED").then_some(r)
        })
        .await;
        assert_eq!(r["quantity"], quantity);
        assert_eq!(r["eventId"], "sale");
        assert!(buyers_ok.contains(r["userId"].as_str().unwrap()), "{r}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_buyers_one_hundred_items_memory() {
    exact_sale(Some(Backend::Memory), 200, 100, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_buyers_one_hundred_items_real() {
    exact_sale(Backend::real(), 200, 100, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quantity_two_and_a_stock_that_does_not_divide_memory() {
    // 99 items, 2 each: 49 buyers succeed, 1 item stays unsold.
    exact_sale(Some(Backend::Memory), 200, 99, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quantity_two_and_a_stock_that_does_not_divide_real() {
    exact_sale(Backend::real(), 200, 99, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_unsafe_mode_really_over_sells() {
    let server = start(&Backend::Memory, &["--unsafe-race"]).await;
    server
        .event("sale", 100, json!({"activeCapacity": 200}))
        .await;
    let outcomes = race(&server, "sale", 200, 1).await;
    let (ok, _, _) = tally(&outcomes);
    assert!(
        ok > 100,
        "unsafe mode sold only {ok} of 100: the negative control is broken"
    );
    let state = server.event_state("sale").await;
    assert!(state["sold"].as_u64().unwrap() > 100, "{state}");
    server.stop().await.unwrap();
}
