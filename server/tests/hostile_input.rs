//! Conformance findings of the API tester (issue: hostile input): ids the
//! schema allows reach the handler however the client encodes them, every
//! 405 names the allowed method, a repeated scheduleId is refused and
//! changes nothing. Abuse limits are in `abuse_limits.rs` and
//! `abuse_connections.rs`.

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{assert_error, on_both_stacks, split};

on_both_stacks!(percent_encoded_ids_are_decoded, [], |s| {
    let (status, _) = s.create_event(json!({"eventId": "e:1", "stock": 3})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, event) = s.get("/api/v1/events/e%3A1").await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["eventId"], "e:1");
    // Lower-case hex too, and an unencoded ':' still works.
    assert_eq!(s.get("/api/v1/events/e%3a1").await.0, StatusCode::OK);
    assert_eq!(s.get("/api/v1/events/e:1").await.0, StatusCode::OK);

    let (status, body) = s
        .admin_post(
            "/api/v1/admin/concerts",
            json!({"concertId": "c:1", "schedules": [
                {"scheduleId": "s:1", "date": "2026-12-24", "price": 10}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, schedules) = s.get("/api/v1/concerts/c%3A1/schedules").await;
    assert_eq!(status, StatusCode::OK, "{schedules}");
    assert_eq!(schedules[0]["scheduleId"], "s:1");
    let (status, seats) = s.get("/api/v1/concerts/c%3A1/schedules/s%3A1/seats").await;
    assert_eq!(status, StatusCode::OK, "{seats}");
    assert_eq!(seats.as_array().map(Vec::len), Some(50));

    // A well-formed id that names nothing is 404, not 400.
    assert_error(&s.get("/api/v1/tickets/r%3Anone").await, 404, "NOT_FOUND");
    // Negative controls: what decodes to a character ids never have is 400.
    assert_error(&s.get("/api/v1/events/e%2F1").await, 400, "BAD_REQUEST");
    assert_error(&s.get("/api/v1/events/e%201").await, 400, "BAD_REQUEST");
    assert_error(&s.get("/api/v1/events/%FF").await, 400, "BAD_REQUEST");
    s.stop().await.unwrap();
});

on_both_stacks!(
    a_repeated_schedule_id_is_refused_and_creates_nothing,
    [],
    |s| {
        let (status, body) = s
            .admin_post(
                "/api/v1/admin/concerts",
                json!({"concertId": "dup", "schedules": [
                {"scheduleId": "d1", "date": "2026-12-24", "price": 10},
                {"scheduleId": "d1", "date": "2026-12-25", "price": 20}]}),
            )
            .await;
        assert_error(&(status, body), 400, "BAD_REQUEST");
        assert_error(
            &s.get("/api/v1/concerts/dup/schedules").await,
            404,
            "NOT_FOUND",
        );
        s.stop().await.unwrap();
    }
);

#[tokio::test]
async fn every_405_names_the_allowed_method() {
    let s = testkit::start(&testkit::Backend::Memory, &[]).await;
    let routes = [
        ("/api/v1/admin/events", "POST"),
        ("/api/v1/events/e1", "GET"),
        ("/api/v1/queue/enter", "POST"),
        ("/api/v1/queue/token", "POST"),
        ("/api/v1/queue/status", "GET"),
        ("/api/v1/queue/stream", "GET"),
        ("/api/v1/tickets/reserve", "POST"),
        ("/api/v1/tickets/r1", "GET"),
        ("/api/v1/admin/concerts", "POST"),
        ("/api/v1/concerts/c1/schedules", "GET"),
        ("/api/v1/concerts/c1/schedules/s1/seats", "GET"),
        ("/api/v1/concerts/c1/reservations", "POST"),
        ("/api/v1/payments", "POST"),
        ("/api/v1/points", "GET"),
        ("/api/v1/points/charge", "POST"),
        ("/actuator/health", "GET"),
        ("/metrics", "GET"),
        ("/openapi.yaml", "GET"),
    ];
    for (path, allowed) in routes {
        for wrong in [Method::PUT, Method::DELETE, Method::PATCH, Method::TRACE] {
            let r = s
                .client
                .request(wrong.clone(), s.url(path))
                .send()
                .await
                .unwrap();
            let allow = r
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_error(&split(r).await, 405, "METHOD_NOT_ALLOWED");
            assert_eq!(allow.as_deref(), Some(allowed), "{wrong} {path}");
        }
    }
    // Control: the allowed method is not refused (and carries no Allow).
    let r = s
        .client
        .get(s.url("/actuator/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("allow").is_none());
    s.stop().await.unwrap();
}

#[tokio::test]
async fn the_spec_is_served_as_yaml() {
    let s = testkit::start(&testkit::Backend::Memory, &[]).await;
    let r = s.client.get(s.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/yaml");
    let text = r.text().await.unwrap();
    assert_eq!(text, include_str!("../../docs/openapi.yaml"));
    s.stop().await.unwrap();
}

on_both_stacks!(a_nul_in_a_name_is_400_and_creates_nothing, [], |s| {
    // PostgreSQL text cannot hold NUL: it reached the real stack as 503.
    let got = s
        .create_event(json!({"eventId": "n1", "name": "a\u{0}b", "stock": 1}))
        .await;
    assert_error(&got, 400, "BAD_REQUEST");
    assert_error(&s.get("/api/v1/events/n1").await, 404, "NOT_FOUND");
    let got = s
        .admin_post(
            "/api/v1/admin/concerts",
            json!({"concertId": "n2", "name": "\u{0}", "schedules": [
                {"scheduleId": "d1", "date": "2026-12-24", "price": 10}]}),
        )
        .await;
    assert_error(&got, 400, "BAD_REQUEST");
    assert_error(
        &s.get("/api/v1/concerts/n2/schedules").await,
        404,
        "NOT_FOUND",
    );
    // Control: other unusual characters are a valid name.
    let (status, _) = s
        .create_event(json!({"eventId": "n3", "name": "é\u{1}✓", "stock": 1}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    s.stop().await.unwrap();
});

on_both_stacks!(percent_encoded_query_values_are_decoded, [], |s| {
    let (status, body) = s
        .post(
            "/api/v1/points/charge",
            json!({"userId": "u:1", "amount": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s.get("/api/v1/points?userId=u%3A1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["balance"], 7);
    assert_eq!(body["userId"], "u:1");
    // Control: a value that decodes to a non-id character is still 400.
    assert_error(
        &s.get("/api/v1/points?userId=u%201").await,
        400,
        "BAD_REQUEST",
    );
    s.stop().await.unwrap();
});
