//! The concert seat map over HTTP, on both backends: set-up and reads,
//! holds, payments with points, and expiry. Concurrency is in
//! `seatmap_races.rs`.

mod common;

use std::time::Duration;

use common::{balance, charge, concert, create_concert, hold, hold_seat, pay, seat_status, PRICE};
use reqwest::StatusCode;
use serde_json::json;
use testkit::{assert_error, eventually, on_both_stacks, split};

on_both_stacks!(concert_set_up_and_reads, [], |s| {
    concert(&s, "c1", 100).await;
    let (status, schedules) = s.get("/api/v1/concerts/c1/schedules").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        schedules,
        json!([
            {"scheduleId": "s1", "date": "2026-12-24", "availableSeats": 10},
            {"scheduleId": "s2", "date": "2026-12-25", "availableSeats": 50}
        ])
    );
    let (status, seats) = s.get("/api/v1/concerts/c1/schedules/s2/seats").await;
    assert_eq!(status, StatusCode::OK);
    let seats = seats.as_array().unwrap();
    assert_eq!(seats.len(), 50);
    assert_eq!(
        seats[0],
        json!({"seatNumber": 1, "status": "AVAILABLE", "price": 2 * PRICE})
    );
    assert_eq!(seats[49]["seatNumber"], 50);

    // Refusals change nothing.
    assert_error(
        &create_concert(
            &s,
            json!({"concertId": "c1", "schedules": [
        {"scheduleId": "x", "date": "2026-01-01", "price": 1}]}),
        )
        .await,
        409,
        "ALREADY_EXISTS",
    );
    s.event("ev-1", 5, json!({})).await;
    assert_error(
        &create_concert(
            &s,
            json!({"concertId": "ev-1", "schedules": [
        {"scheduleId": "x", "date": "2026-01-01", "price": 1}]}),
        )
        .await,
        409,
        "ALREADY_EXISTS",
    );
    for bad in [
        json!({"concertId": "c2", "schedules": []}),
        json!({"concertId": "c2", "schedules": [{"scheduleId": "x", "date": "2026-02-30", "price": 1}]}),
        json!({"concertId": "c2", "schedules": [{"scheduleId": "x", "date": "2026-01-01", "price": 1, "seatCount": 0}]}),
        json!({"concertId": "c2", "schedules": [{"scheduleId": "x", "date": "2026-01-01", "price": -1}]}),
        json!({"concertId": "c2", "schedules": [{"scheduleId": "x", "date": "2026-01-01", "price": 1},
                                                {"scheduleId": "x", "date": "2026-01-02", "price": 1}]}),
        json!({"concertId": "bad id", "schedules": [{"scheduleId": "x", "date": "2026-01-01", "price": 1}]}),
        json!({"concertId": "c2", "schedules": [{"scheduleId": "x", "date": "2026-01-01"}]}),
    ] {
        assert_error(&create_concert(&s, bad.clone()).await, 400, "BAD_REQUEST");
    }
    let r = s
        .client
        .post(s.url("/api/v1/admin/concerts"))
        .json(&json!({"concertId": "c2", "schedules": [{"scheduleId": "x", "date": "2026-01-01", "price": 1}]}))
        .send()
        .await
        .unwrap();
    assert_error(&split(r).await, 401, "UNAUTHORIZED");
    assert_error(
        &s.get("/api/v1/concerts/c2/schedules").await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &s.get("/api/v1/concerts/c1/schedules/s9/seats").await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &s.get("/api/v1/concerts/c2/schedules/s1/seats").await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &s.get("/api/v1/concerts/bad%20id/schedules").await,
        400,
        "BAD_REQUEST",
    );
    s.stop().await.unwrap();
});

on_both_stacks!(hold_and_pay_rows, [], |s| {
    concert(&s, "c1", 2).await;
    let a = s.token("c1", "alice").await;
    let b = s.token("c1", "bob").await;
    let waiting = s.enter("c1", "carol").await;
    assert_eq!(waiting["status"], "WAITING");
    let waiting = waiting["token"].as_str().unwrap().to_owned();

    // Bad input and bad tokens first: none of them holds anything.
    assert_error(
        &hold(&s, None, "c1", json!({"scheduleId": "s1", "seatNumber": 1})).await,
        401,
        "UNAUTHORIZED",
    );
    assert_error(
        &hold_seat(&s, "garbage", "c1", 1).await,
        401,
        "UNAUTHORIZED",
    );
    assert_error(&hold_seat(&s, &waiting, "c1", 1).await, 403, "NOT_ACTIVE");
    // Bodies that are wrong, or name a seat or schedule that is not there.
    for (body, status, code) in [
        (json!({"scheduleId": "s1"}), 400, "BAD_REQUEST"),
        (
            json!({"scheduleId": "s1", "seatNumber": "1"}),
            400,
            "BAD_REQUEST",
        ),
        (
            json!({"scheduleId": "s1", "seatNumber": 0}),
            400,
            "BAD_REQUEST",
        ),
        (
            json!({"scheduleId": "s1", "seatNumber": 11}),
            404,
            "NOT_FOUND",
        ),
        (
            json!({"scheduleId": "s9", "seatNumber": 1}),
            404,
            "NOT_FOUND",
        ),
    ] {
        assert_error(&hold(&s, Some(&a), "c1", body).await, status, code);
    }
    assert_error(&hold_seat(&s, &a, "c9", 1).await, 404, "NOT_FOUND");
    s.event("ev-1", 5, json!({})).await;
    let other = s.token("ev-1", "alice").await;
    assert_error(&hold_seat(&s, &other, "c1", 1).await, 403, "NOT_ACTIVE");
    assert_eq!(seat_status(&s, "c1", 1).await, "AVAILABLE");

    // The hold, and the seat taken for everyone else.
    let (status, held) = hold_seat(&s, &a, "c1", 1).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    assert_eq!(held["status"], "HELD");
    assert!(
        held["expiresAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{held}"
    );
    let rid = held["reservationId"].clone();
    assert_error(&hold_seat(&s, &b, "c1", 1).await, 409, "SEAT_TAKEN");
    assert_error(&hold_seat(&s, &a, "c1", 1).await, 409, "SEAT_TAKEN");
    assert_eq!(seat_status(&s, "c1", 1).await, "HELD");
    let (_, schedules) = s.get("/api/v1/concerts/c1/schedules").await;
    assert_eq!(schedules[0]["availableSeats"], 9);

    // Points: bad charges change nothing; a missing account is 0.
    assert_eq!(balance(&s, "alice").await, 0);
    assert_error(&charge(&s, "alice", json!(0)).await, 400, "BAD_REQUEST");
    assert_error(
        &charge(&s, "alice", json!(10_000_001)).await,
        400,
        "BAD_REQUEST",
    );
    assert_error(&charge(&s, "alice", json!(-5)).await, 400, "BAD_REQUEST");
    assert_error(&charge(&s, "bad id", json!(5)).await, 400, "BAD_REQUEST");
    assert_error(&s.get("/api/v1/points").await, 400, "BAD_REQUEST");
    assert_eq!(
        charge(&s, "alice", json!(PRICE - 1)).await.1["balance"],
        PRICE - 1
    );

    // Payment refusals: nothing debited, the seat still held.
    assert_error(&pay(&s, &a, &rid, None).await, 402, "INSUFFICIENT_POINTS");
    assert_error(&pay(&s, &b, &rid, None).await, 404, "NOT_FOUND");
    assert_error(&pay(&s, &a, &json!("r-nope"), None).await, 404, "NOT_FOUND");
    assert_error(&pay(&s, &a, &json!(5), None).await, 400, "BAD_REQUEST");
    assert_error(
        &pay(&s, &a, &rid, Some("has space")).await,
        400,
        "BAD_REQUEST",
    );
    assert_error(&pay(&s, &other, &rid, None).await, 403, "NOT_ACTIVE");
    assert_eq!(balance(&s, "alice").await, PRICE - 1);
    assert_eq!(seat_status(&s, "c1", 1).await, "HELD");

    // The payment: debited once, confirmed, token DONE.
    assert_eq!(
        charge(&s, "alice", json!(PRICE + 500)).await.1["balance"],
        2 * PRICE + 499
    );
    let (status, paid) = pay(&s, &a, &rid, Some("k-alice-1")).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["status"], "COMPLETED");
    assert_eq!(paid["reservationId"], rid);
    assert_eq!(paid["amount"], PRICE);
    assert_eq!(paid["balance"], PRICE + 499);
    assert_eq!(balance(&s, "alice").await, PRICE + 499);
    assert_eq!(seat_status(&s, "c1", 1).await, "CONFIRMED");
    assert_eq!(s.status(&a).await.1["status"], "DONE");
    // The freed slot went to the next in line.
    assert_eq!(s.status(&waiting).await.1["status"], "ACTIVE");
    // A retry returns the same payment and charges nothing.
    let (status, again) = pay(&s, &a, &rid, Some("k-alice-1")).await;
    assert_eq!((status, &again), (StatusCode::OK, &paid));
    assert_eq!(pay(&s, &a, &rid, None).await.1, paid);
    assert_eq!(balance(&s, "alice").await, PRICE + 499);
    // The used token holds nothing more; the key cannot pay for another hold.
    assert_error(&hold_seat(&s, &a, "c1", 2).await, 403, "NOT_ACTIVE");
    let (_, bob_hold) = hold_seat(&s, &b, "c1", 2).await;
    charge(&s, "bob", json!(PRICE)).await;
    assert_error(
        &pay(&s, &b, &bob_hold["reservationId"], Some("k-alice-1")).await,
        400,
        "BAD_REQUEST",
    );
    assert_eq!(balance(&s, "bob").await, PRICE);
    let (status, bob_paid) = pay(&s, &b, &bob_hold["reservationId"], Some("k-bob")).await;
    assert_eq!((status, &bob_paid["balance"]), (StatusCode::OK, &json!(0)));
    s.stop().await.unwrap();
});

on_both_stacks!(
    holds_expire_and_seats_become_holdable_again,
    ["--hold-ttl", "1s"],
    |s| {
        concert(&s, "c1", 10).await;
        let a = s.token("c1", "alice").await;
        let b = s.token("c1", "bob").await;
        charge(&s, "alice", json!(PRICE)).await;
        let (status, held) = hold_seat(&s, &a, "c1", 3).await;
        assert_eq!(status, StatusCode::CREATED, "{held}");
        let started = std::time::Instant::now();
        assert_error(&hold_seat(&s, &b, "c1", 3).await, 409, "SEAT_TAKEN");
        eventually(Duration::from_secs(5), "the hold to lapse", || async {
            (seat_status(&s, "c1", 3).await == "AVAILABLE").then_some(())
        })
        .await;
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "released early: {:?}",
            started.elapsed()
        );
        // Paying a lapsed hold is refused and charges nothing.
        assert_error(
            &pay(&s, &a, &held["reservationId"], Some("late")).await,
            410,
            "HOLD_EXPIRED",
        );
        assert_eq!(balance(&s, "alice").await, PRICE);
        // Someone else may hold it now; the first holder's reservation stays dead.
        let (status, again) = hold_seat(&s, &b, "c1", 3).await;
        assert_eq!(status, StatusCode::CREATED, "{again}");
        assert_error(
            &pay(&s, &a, &held["reservationId"], None).await,
            410,
            "HOLD_EXPIRED",
        );
        // reservation.expired was published (counted once it was).
        eventually(
            Duration::from_secs(5),
            "reservation.expired to be published",
            || async {
                let text = s.metrics().await;
                text.lines()
                    .any(|l| {
                        l.starts_with("seat_events_published_total{topic=\"reservation.expired\"} ")
                            && !l.ends_with(" 0")
                    })
                    .then_some(())
            },
        )
        .await;
        s.stop().await.unwrap();
    }
);
