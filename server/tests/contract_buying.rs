//! Every error row of the contract that the inventory sale can produce,
//! over real HTTP, continued: entering the queue, queue tokens, reserving
//! and reading tickets.

mod common;

use std::time::Duration;

use common::active_token;
use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::{assert_error, eventually, on_both_stacks, split, start, Backend};

on_both_stacks!(enter_is_idempotent_and_has_an_alias, [], |s| {
    s.event("e1", 10, json!({"activeCapacity": 1})).await;
    let a = s.enter("e1", "alice").await;
    assert_eq!(a["status"], "ACTIVE");
    assert_eq!(a["position"], 0);
    let b = s.enter("e1", "bob").await;
    assert_eq!(
        (b["status"].clone(), b["position"].clone()),
        (json!("WAITING"), json!(1))
    );
    assert!(b["estimatedWaitSeconds"].as_u64().is_some(), "{b}");

    let (status, again) = s
        .post(
            "/api/v1/queue/token",
            json!({"eventId": "e1", "userId": "bob"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["token"], b["token"], "same token for the same user");
    assert_eq!(again["position"], 1, "same place in line");
    assert_eq!(s.event_state("e1").await["waiting"], 1, "no second entry");
    s.stop().await.unwrap();
});

on_both_stacks!(enter_errors, [], |s| {
    s.event("e1", 10, json!({})).await;
    let enter = |body: Value| s.post("/api/v1/queue/enter", body);
    assert_error(
        &enter(json!({"eventId": "nope", "userId": "u"})).await,
        404,
        "NOT_FOUND",
    );
    for bad in [
        json!({"eventId": "e1", "userId": "has space"}),
        json!({"eventId": "e1", "userId": ""}),
        json!({"eventId": "e1", "userId": 5}),
        json!({"eventId": "e1"}),
        json!({"eventId": "e1", "userId": "u", "extra": 1}),
        json!([]),
    ] {
        assert_error(&enter(bad).await, 400, "BAD_REQUEST");
    }
    let v = s.event_state("e1").await;
    assert_eq!(
        (v["waiting"].clone(), v["active"].clone()),
        (json!(0), json!(0)),
        "{v}"
    );
    s.stop().await.unwrap();
});

on_both_stacks!(queue_status_by_header_and_query, [], |s| {
    s.event(
        "e1",
        10,
        json!({"activeCapacity": 1, "activeTtlSeconds": 60}),
    )
    .await;
    let a = s.token("e1", "a").await;
    let b = s.enter("e1", "b").await;
    let token = b["token"].as_str().unwrap();
    let (status, v) = s.status(token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            v["status"].clone(),
            v["position"].clone(),
            v["activeRemainingSeconds"].clone()
        ),
        (json!("WAITING"), json!(1), json!(0))
    );
    // ACTIVE: the time left of the turn, by the server's deadline.
    let (_, active) = s.status(&a).await;
    let left = active["activeRemainingSeconds"].as_u64().unwrap();
    assert!(
        active["status"] == json!("ACTIVE") && (50..=60).contains(&left),
        "{active}"
    );
    let (status, q) = s.get(&format!("/api/v1/queue/status?token={token}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(q, v);
    s.stop().await.unwrap();
});

on_both_stacks!(token_errors_are_401, ["--token-ttl-secs", "1"], |s| {
    s.event("e1", 10, json!({})).await;
    let token = s.token("e1", "a").await;

    assert_error(&s.get("/api/v1/queue/status").await, 401, "UNAUTHORIZED");
    assert_error(&s.status("not-a-token").await, 401, "UNAUTHORIZED");
    // One changed byte, anywhere.
    for i in [0, token.len() / 2, token.len() - 1] {
        let mut bytes = token.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        assert_error(&s.status(&forged).await, 401, "UNAUTHORIZED");
    }
    // A token signed with another secret.
    let other = start(&Backend::Memory, &["--token-secret", "another-secret"]).await;
    other.event("e1", 10, json!({})).await;
    let foreign = other.token("e1", "a").await;
    assert_error(&s.status(&foreign).await, 401, "UNAUTHORIZED");
    other.stop().await.unwrap();
    // And an expired one (this server's tokens live one second).
    assert_eq!(s.status(&token).await.0, StatusCode::OK);
    let expired = eventually(Duration::from_secs(5), "token expiry", || async {
        let got = s.status(&token).await;
        (got.0 == StatusCode::UNAUTHORIZED).then_some(got)
    })
    .await;
    assert_error(&expired, 401, "UNAUTHORIZED");
    assert!(expired.1["message"].as_str().unwrap().contains("expired"));
    s.stop().await.unwrap();
});

on_both_stacks!(reserve_and_read_the_ticket, [], |s| {
    s.event("e1", 10, json!({"perUserLimit": 3})).await;
    let token = active_token(&s, "e1", "alice").await;
    let (status, r) = s.reserve(Some(&token), "e1", json!(3)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "PENDING");
    let id = r["reservationId"].as_str().unwrap();
    let ticket = eventually(Duration::from_secs(5), "CONFIRMED", || async {
        let (status, t) = s.get(&format!("/api/v1/tickets/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        (t["status"] == "CONFIRMED").then_some(t)
    })
    .await;
    assert_eq!(ticket["reservationId"], id);
    assert_eq!(ticket["eventId"], "e1");
    assert_eq!(ticket["userId"], "alice");
    assert_eq!(ticket["quantity"], 3);
    assert!(
        ticket["createdAt"].as_str().unwrap().ends_with('Z'),
        "{ticket}"
    );
    let v = s.event_state("e1").await;
    assert_eq!(
        (
            v["remaining"].clone(),
            v["sold"].clone(),
            v["active"].clone()
        ),
        (json!(7), json!(3), json!(0))
    );
    assert_eq!(s.status(&token).await.1["status"], "DONE");

    assert_error(&s.get("/api/v1/tickets/r-unknown").await, 404, "NOT_FOUND");
    assert_error(&s.get("/api/v1/tickets/bad!id").await, 400, "BAD_REQUEST");
    s.stop().await.unwrap();
});

on_both_stacks!(reserve_errors_leave_stock_unchanged, [], |s| {
    s.event("e1", 3, json!({"perUserLimit": 2, "activeCapacity": 2}))
        .await;
    s.event("e2", 3, json!({})).await;
    let alice = active_token(&s, "e1", "alice").await;
    let bob = active_token(&s, "e1", "bob").await;
    let carol = s.enter("e1", "carol").await;
    assert_eq!(carol["status"], "WAITING");
    let carol = carol["token"].as_str().unwrap();
    let other_event = active_token(&s, "e2", "dave").await;

    assert_error(&s.reserve(None, "e1", json!(1)).await, 401, "UNAUTHORIZED");
    assert_error(
        &s.reserve(Some("forged.token"), "e1", json!(1)).await,
        401,
        "UNAUTHORIZED",
    );
    assert_error(
        &s.reserve(Some(carol), "e1", json!(1)).await,
        403,
        "NOT_ACTIVE",
    );
    assert_error(
        &s.reserve(Some(&other_event), "e1", json!(1)).await,
        403,
        "NOT_ACTIVE",
    );
    assert_error(
        &s.reserve(Some(&alice), "nope", json!(1)).await,
        404,
        "NOT_FOUND",
    );
    for q in [
        json!(0),
        json!(3),
        json!(-1),
        json!("1"),
        json!(1.5),
        Value::Null,
    ] {
        assert_error(&s.reserve(Some(&alice), "e1", q).await, 400, "BAD_REQUEST");
    }
    let r = s
        .client
        .post(s.url("/api/v1/tickets/reserve"))
        .header("X-Queue-Token", &alice)
        .body("{\"eventId\":\"e1\",\"quantity\":1,\"more\":1}")
        .send()
        .await
        .unwrap();
    assert_error(&split(r).await, 400, "BAD_REQUEST");
    let untouched = s.event_state("e1").await;
    assert_eq!(
        (untouched["remaining"].clone(), untouched["sold"].clone()),
        (json!(3), json!(0))
    );

    assert_eq!(
        s.reserve(Some(&alice), "e1", json!(2)).await.0,
        StatusCode::OK
    );
    assert_error(
        &s.reserve(Some(&alice), "e1", json!(1)).await,
        403,
        "NOT_ACTIVE",
    );
    assert_error(
        &s.reserve(Some(&bob), "e1", json!(2)).await,
        409,
        "SOLD_OUT",
    );
    let v = s.event_state("e1").await;
    assert_eq!(
        (v["remaining"].clone(), v["sold"].clone()),
        (json!(1), json!(2)),
        "{v}"
    );
    // SOLD_OUT changed nothing: bob is still ACTIVE and can buy what is left.
    assert_eq!(
        s.reserve(Some(&bob), "e1", json!(1)).await.0,
        StatusCode::OK
    );
    assert_eq!(s.event_state("e1").await["remaining"], 0);
    s.stop().await.unwrap();
});

on_both_stacks!(active_time_runs_out_and_frees_the_slot, [], |s| {
    s.event(
        "e1",
        10,
        json!({"activeCapacity": 1, "activeTtlSeconds": 1}),
    )
    .await;
    let a = active_token(&s, "e1", "a").await;
    let b = s.token("e1", "b").await;
    eventually(
        Duration::from_secs(5),
        "b admitted after a's TTL",
        || async { (s.status(&b).await.1["status"] == "ACTIVE").then_some(()) },
    )
    .await;
    assert_eq!(s.status(&a).await.1["status"], "EXPIRED");
    assert_error(
        &s.reserve(Some(&a), "e1", json!(1)).await,
        403,
        "NOT_ACTIVE",
    );
    assert_eq!(s.reserve(Some(&b), "e1", json!(1)).await.0, StatusCode::OK);
    s.stop().await.unwrap();
});
