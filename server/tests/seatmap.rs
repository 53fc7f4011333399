//! The concert seat map over HTTP, on both backends: set-up and reads,
//! holds, payments with points, expiry, idempotent payment under
//! concurrent retries, and the unsafe hold's negative control.

mod common;

use std::time::Duration;

use common::{assert_error, split, TestServer, ADMIN};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PRICE: u64 = 1000;

async fn create_concert(s: &TestServer, body: Value) -> (StatusCode, Value) {
    let r = s
        .client
        .post(s.url("/api/v1/admin/concerts"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    split(r).await
}

/// A concert with schedule `s1` (10 seats at PRICE) and `s2` (default 50).
async fn concert(s: &TestServer, id: &str, capacity: u32) {
    let got = create_concert(
        s,
        json!({"concertId": id, "name": "Winter tour", "activeCapacity": capacity,
               "schedules": [
                   {"scheduleId": "s1", "date": "2026-12-24", "seatCount": 10, "price": PRICE},
                   {"scheduleId": "s2", "date": "2026-12-25", "price": 2 * PRICE}]}),
    )
    .await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
}

async fn token(s: &TestServer, concert: &str, user: &str) -> String {
    s.enter(concert, user).await["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn hold(
    s: &TestServer,
    token: Option<&str>,
    concert: &str,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = s
        .client
        .post(s.url(&format!("/api/v1/concerts/{concert}/reservations")))
        .json(&body);
    if let Some(t) = token {
        req = req.header("X-Queue-Token", t);
    }
    split(req.send().await.unwrap()).await
}

async fn hold_seat(s: &TestServer, token: &str, concert: &str, seat: u32) -> (StatusCode, Value) {
    hold(
        s,
        Some(token),
        concert,
        json!({"scheduleId": "s1", "seatNumber": seat}),
    )
    .await
}

async fn pay(
    s: &TestServer,
    token: &str,
    reservation: &Value,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = s
        .client
        .post(s.url("/api/v1/payments"))
        .header("X-Queue-Token", token)
        .json(&json!({"reservationId": reservation}));
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    split(req.send().await.unwrap()).await
}

async fn charge(s: &TestServer, user: &str, amount: Value) -> (StatusCode, Value) {
    let r = s
        .client
        .post(s.url("/api/v1/points/charge"))
        .json(&json!({"userId": user, "amount": amount}))
        .send()
        .await
        .unwrap();
    split(r).await
}

async fn balance(s: &TestServer, user: &str) -> u64 {
    let (status, v) = s.get(&format!("/api/v1/points?userId={user}")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["userId"], user);
    v["balance"].as_u64().unwrap()
}

async fn seat_status(s: &TestServer, concert: &str, seat: u32) -> String {
    let (status, v) = s
        .get(&format!("/api/v1/concerts/{concert}/schedules/s1/seats"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v[seat as usize - 1]["status"].as_str().unwrap().to_owned()
}

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
    let a = token(&s, "c1", "alice").await;
    let b = token(&s, "c1", "bob").await;
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
    assert_error(
        &hold(&s, Some(&a), "c1", json!({"scheduleId": "s1"})).await,
        400,
        "BAD_REQUEST",
    );
    assert_error(
        &hold(
            &s,
            Some(&a),
            "c1",
            json!({"scheduleId": "s1", "seatNumber": "1"}),
        )
        .await,
        400,
        "BAD_REQUEST",
    );
    assert_error(
        &hold(
            &s,
            Some(&a),
            "c1",
            json!({"scheduleId": "s1", "seatNumber": 0}),
        )
        .await,
        400,
        "BAD_REQUEST",
    );
    assert_error(&hold_seat(&s, &a, "c1", 11).await, 404, "NOT_FOUND");
    assert_error(
        &hold(
            &s,
            Some(&a),
            "c1",
            json!({"scheduleId": "s9", "seatNumber": 1}),
        )
        .await,
        404,
        "NOT_FOUND",
    );
    assert_error(&hold_seat(&s, &a, "c9", 1).await, 404, "NOT_FOUND");
    s.event("ev-1", 5, json!({})).await;
    let other = token(&s, "ev-1", "alice").await;
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
        let a = token(&s, "c1", "alice").await;
        let b = token(&s, "c1", "bob").await;
        charge(&s, "alice", json!(PRICE)).await;
        let (status, held) = hold_seat(&s, &a, "c1", 3).await;
        assert_eq!(status, StatusCode::CREATED, "{held}");
        let started = std::time::Instant::now();
        assert_error(&hold_seat(&s, &b, "c1", 3).await, 409, "SEAT_TAKEN");
        common::eventually(Duration::from_secs(5), "the hold to lapse", || async {
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
        common::eventually(
            Duration::from_secs(5),
            "reservation.expired to be published",
            || async {
                let text = s
                    .client
                    .get(s.url("/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
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

on_both_stacks!(concurrent_retries_charge_once, [], |s| {
    concert(&s, "c1", 10).await;
    let a = token(&s, "c1", "alice").await;
    charge(&s, "alice", json!(5 * PRICE)).await;
    let (_, held) = hold_seat(&s, &a, "c1", 4).await;
    let rid = held["reservationId"].clone();
    let tries = (0..12).map(|i| {
        let (s, a, rid) = (&s, &a, &rid);
        // Half carry the key, half retry without one.
        async move { pay(s, a, rid, (i % 2 == 0).then_some("k-1")).await }
    });
    let results = futures_util::future::join_all(tries).await;
    let ids: std::collections::HashSet<_> = results
        .iter()
        .map(|(status, v)| {
            assert_eq!(*status, StatusCode::OK, "{v}");
            v["paymentId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one payment for every retry: {ids:?}");
    assert_eq!(balance(&s, "alice").await, 4 * PRICE);
    s.stop().await.unwrap();
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unsafe_hold_lets_two_users_hold_one_seat() {
    let s = common::start(&["--unsafe-hold"]).await;
    concert(&s, "c1", 100).await;
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(token(&s, "c1", &format!("u{i}")).await);
    }
    let tries = tokens.iter().map(|t| hold_seat(&s, t, "c1", 1));
    let won = futures_util::future::join_all(tries)
        .await
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert!(won > 1, "the negative control must double-hold, {won} won");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_safe_hold_race_has_one_winner() {
    let s = common::start(&[]).await;
    concert(&s, "c1", 100).await;
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(token(&s, "c1", &format!("u{i}")).await);
    }
    let tries = tokens.iter().map(|t| hold_seat(&s, t, "c1", 1));
    let results = futures_util::future::join_all(tries).await;
    let won = results
        .iter()
        .filter(|(st, _)| *st == StatusCode::CREATED)
        .count();
    let taken = results
        .iter()
        .filter(|r| r.1["error"] == "SEAT_TAKEN")
        .count();
    assert_eq!((won, taken), (1, 19));
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_stack_share_the_seat_map() {
    let ns = common::namespace();
    let Some(flags) = common::real_flags(&ns) else {
        return;
    };
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let a = common::start(&args).await;
    let b = common::start(&args).await;
    concert(&a, "c1", 100).await;
    let mut tokens = Vec::new();
    for i in 0..20 {
        let on = if i % 2 == 0 { &a } else { &b };
        tokens.push(token(on, "c1", &format!("u{i}")).await);
    }
    let tries = tokens.iter().enumerate().map(|(i, t)| {
        let on = if i % 2 == 0 { &a } else { &b };
        async move { (i, hold_seat(on, t, "c1", 7).await) }
    });
    let results = futures_util::future::join_all(tries).await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, (st, _))| *st == StatusCode::CREATED)
        .collect();
    assert_eq!(winners.len(), 1, "one winner across two instances");
    assert!(results
        .iter()
        .all(|(_, (st, v))| *st == StatusCode::CREATED || v["error"] == "SEAT_TAKEN"));
    // The winner pays through the other instance.
    let (i, (_, held)) = winners[0];
    let other = if i % 2 == 0 { &b } else { &a };
    let user = format!("u{i}");
    charge(other, &user, json!(PRICE)).await;
    let (status, paid) = pay(other, &tokens[*i], &held["reservationId"], Some("k")).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(seat_status(&a, "c1", 7).await, "CONFIRMED");
    assert_eq!(balance(&a, &user).await, 0);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
