//! Every endpoint's success path and every error row of the contract that
//! the inventory sale can produce, over real HTTP: the admin API, event
//! reads and the operations endpoints. Entering, tokens and reserving are
//! in `contract_buying.rs`.

mod common;

use common::active_token;
use reqwest::StatusCode;
use serde_json::json;
use testkit::{assert_error, on_both_stacks, split, start, Backend};

on_both_stacks!(admin_create_and_read_an_event, [], |s| {
    let (status, created) = s
        .create_event(json!({"eventId": "e1", "name": "Spring concert", "stock": 10}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created, json!({"eventId": "e1", "stock": 10}));
    let v = s.event_state("e1").await;
    for (k, want) in [
        ("eventId", json!("e1")),
        ("stock", json!(10)),
        ("remaining", json!(10)),
        ("sold", json!(0)),
        ("waiting", json!(0)),
        ("active", json!(0)),
        ("perUserLimit", json!(1)),
        ("activeCapacity", json!(5000)),
        ("activeTtlSeconds", json!(300)),
    ] {
        assert_eq!(v[k], want, "{k} in {v}");
    }
    s.stop().await.unwrap();
});

on_both_stacks!(admin_errors_change_nothing, [], |s| {
    let url = s.url("/api/v1/admin/events");
    let body = json!({"eventId": "e1", "stock": 5});

    let r = s.client.post(&url).json(&body).send().await.unwrap();
    assert_error(&split(r).await, 401, "UNAUTHORIZED");
    let r = s
        .client
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(&split(r).await, 401, "UNAUTHORIZED");
    assert_error(&s.get("/api/v1/events/e1").await, 404, "NOT_FOUND");

    for bad in [
        json!({"eventId": "bad id", "stock": 5}),
        json!({"eventId": "", "stock": 5}),
        json!({"eventId": "x".repeat(65), "stock": 5}),
        json!({"eventId": "e1", "stock": 10_000_001}),
        json!({"eventId": "e1", "stock": -1}),
        json!({"eventId": "e1", "stock": "5"}),
        json!({"eventId": "e1", "stock": 5.5}),
        json!({"eventId": "e1"}),
        json!({"eventId": "e1", "stock": 5, "perUserLimit": 0}),
        json!({"eventId": "e1", "stock": 5, "activeCapacity": 0}),
        json!({"eventId": "e1", "stock": 5, "activeTtlSeconds": 0}),
        json!({"eventId": "e1", "stock": 5, "surprise": true}),
        json!({"eventId": 7, "stock": 5}),
    ] {
        assert_error(&s.create_event(bad.clone()).await, 400, "BAD_REQUEST");
    }
    let r = s
        .client
        .post(&url)
        .bearer_auth(&s.admin_token)
        .header("content-type", "application/json")
        .body("{\"eventId\": \"e1\", ")
        .send()
        .await
        .unwrap();
    assert_error(&split(r).await, 400, "BAD_REQUEST");
    assert_error(&s.get("/api/v1/events/e1").await, 404, "NOT_FOUND");

    assert_eq!(s.create_event(body.clone()).await.0, StatusCode::CREATED);
    assert_error(
        &s.create_event(json!({"eventId": "e1", "stock": 99})).await,
        409,
        "ALREADY_EXISTS",
    );
    assert_eq!(
        s.event_state("e1").await["stock"],
        5,
        "the duplicate changed nothing"
    );
    s.stop().await.unwrap();
});

#[tokio::test]
async fn bodies_over_16_kib_are_413_before_parsing() {
    let s = start(&Backend::Memory, &[]).await;
    let big = format!(
        "{{\"eventId\":\"e1\",\"stock\":5,\"name\":\"{}\"}}",
        "a".repeat(17 * 1024)
    );
    // With a Content-Length...
    let r = s
        .client
        .post(s.url("/api/v1/admin/events"))
        .bearer_auth(&s.admin_token)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_error(&split(r).await, 413, "PAYLOAD_TOO_LARGE");
    // ...and chunked, where only counting can tell.
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = s
        .client
        .post(s.url("/api/v1/queue/enter"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_error(&split(r).await, 413, "PAYLOAD_TOO_LARGE");
    assert_error(&s.get("/api/v1/events/e1").await, 404, "NOT_FOUND");
    s.stop().await.unwrap();
}

on_both_stacks!(event_lookup_errors, [], |s| {
    assert_error(&s.get("/api/v1/events/nope").await, 404, "NOT_FOUND");
    assert_error(&s.get("/api/v1/events/bad%20id").await, 400, "BAD_REQUEST");
    assert_error(
        &s.get(&format!("/api/v1/events/{}", "x".repeat(65))).await,
        400,
        "BAD_REQUEST",
    );
    s.stop().await.unwrap();
});

on_both_stacks!(health_metrics_and_openapi, [], |s| {
    let (status, h) = s.get("/actuator/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["status"], "UP");
    let backends = h["backends"].as_object().unwrap();
    assert!(
        !backends.is_empty() && backends.values().all(|v| v == "UP"),
        "{h}"
    );

    s.event("e1", 5, json!({})).await;
    let t = active_token(&s, "e1", "a").await;
    s.reserve(Some(&t), "e1", json!(1)).await;
    s.reserve(Some(&t), "e1", json!(1)).await;
    let text = s.metrics().await;
    // Whole lines: `... 1` must not be matched by `... 10` or `... 1.5`.
    for needle in [
        "queue_active_users{event=\"e1\"} 0",
        "queue_waiting_users{event=\"e1\"} 0",
        "redis_stock_remaining{event=\"e1\"} 4",
        "ticket_reservation_total{result=\"ok\"} 1",
        "ticket_reservation_total{result=\"not_active\"} 1",
        "http_request_duration_seconds_count{route=\"POST /api/v1/queue/enter\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == needle),
            "metrics lack the line {needle}:\n{text}"
        );
    }
    // A bucket's count depends on timing: the line starts with the series
    // and carries a whole number.
    let bucket =
        "http_request_duration_seconds_bucket{le=\"0.001\",route=\"POST /api/v1/tickets/reserve\"} ";
    assert!(
        text.lines().any(|l| l
            .strip_prefix(bucket)
            .is_some_and(|n| n.parse::<u64>().is_ok())),
        "metrics lack the line {bucket}N:\n{text}"
    );

    let r = s.client.get(s.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().starts_with("openapi: 3"));
    s.stop().await.unwrap();
});

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let s = start(&Backend::Memory, &[]).await;
    assert_error(&s.get("/api/v1/nothing").await, 404, "NOT_FOUND");
    let r = s
        .client
        .get(s.url("/api/v1/tickets/reserve"))
        .send()
        .await
        .unwrap();
    assert_error(&split(r).await, 405, "METHOD_NOT_ALLOWED");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn rate_limit_is_429_with_retry_after() {
    let s = start(&Backend::Memory, &["--rate-limit-rps", "5"]).await;
    s.event("e1", 5, json!({})).await;
    let mut limited = None;
    for _ in 0..50 {
        let r = s
            .client
            .get(s.url("/api/v1/events/e1"))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            limited = Some((split(r).await, retry));
            break;
        }
    }
    let (got, retry) = limited.expect("50 requests at once never hit a 5 rps limit");
    assert_error(&got, 429, "RATE_LIMITED");
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
    // Operations endpoints stay reachable.
    assert_eq!(s.get("/actuator/health").await.0, StatusCode::OK);
    s.stop().await.unwrap();
}
