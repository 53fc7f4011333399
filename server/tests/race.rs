//! The headline property: N concurrent buyers for S items, released at once.

mod common;

use std::collections::HashSet;

use common::{eventually, race, start, start_on, Outcome, Stack};
use reqwest::StatusCode;
use serde_json::json;

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

async fn exact_sale(stack: Stack, buyers: usize, stock: u64, quantity: u32) {
    let Some(server) = start_on(stack, &[]).await else {
        return;
    };
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
    exact_sale(Stack::Memory, 200, 100, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_buyers_one_hundred_items_real() {
    exact_sale(Stack::Real, 200, 100, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quantity_two_and_a_stock_that_does_not_divide_memory() {
    // 99 items, 2 each: 49 buyers succeed, 1 item stays unsold.
    exact_sale(Stack::Memory, 200, 99, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quantity_two_and_a_stock_that_does_not_divide_real() {
    exact_sale(Stack::Real, 200, 99, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_unsafe_mode_really_over_sells() {
    let server = start(&["--unsafe-race"]).await;
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
