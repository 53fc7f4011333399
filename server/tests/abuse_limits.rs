//! Abuse limits on requests (docs/CONTRACT.md, "Abuse limits"): per-user
//! and per-IP rate limits, caps on SSE streams answered with a clear error,
//! slow bodies refused. Connection-level limits (slow headers, the
//! connection cap, oversized heads, idle keep-alive, 10,000 connections)
//! are in `abuse_connections.rs`. Each limit has its control (the same
//! trial with the limit off), and each trial compares a [`Snapshot`] of the
//! state before and after: a refused request changed nothing.

mod abuse;

use std::time::{Duration, Instant};

use abuse::{addr, Observer, Snapshot};
use reqwest::StatusCode;
use serde_json::json;
use testkit::{assert_error, split, start, start_with_default_limits, Backend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request()` up to `tries` times in a row until one is refused
/// with 429; returns how many were served before it (each must be 200) and
/// the refusal checked as RATE_LIMITED with a Retry-After of 1-2 s.
async fn served_until_429(
    tries: usize,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Option<usize> {
    for served in 0..tries {
        let r = request().send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry = r.headers().get("retry-after").cloned();
            assert_error(&split(r).await, 429, "RATE_LIMITED");
            let retry: u64 = retry.unwrap().to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&retry), "Retry-After {retry}");
            return Some(served);
        }
        assert_eq!(r.status(), StatusCode::OK);
    }
    None
}

/// The negative control of every "unchanged" below: each kind of change a
/// trial could make shows in a [`Snapshot`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_sees_each_kind_of_change() {
    let s = start(&Backend::Memory, &[]).await;
    let seen = Observer::new(&s);
    s.event("e1", 5, json!({"activeCapacity": 1, "perUserLimit": 2}))
        .await;
    let before = seen.snapshot("e1", "u1").await;
    let token = s.token("e1", "u1").await;
    s.enter("e1", "u2").await;
    let (status, _) = s.reserve(Some(&token), "e1", json!(2)).await;
    assert_eq!(status, StatusCode::OK);
    s.post(
        "/api/v1/points/charge",
        json!({"userId": "u1", "amount": 7}),
    )
    .await;
    let after = seen.snapshot("e1", "u1").await;
    // u1 entered ACTIVE and bought 2 (then DONE); u2 was admitted next.
    assert_eq!(
        after,
        Snapshot {
            remaining: 3,
            sold: 2,
            reservations: 1,
            balance: 7,
            admitted: 2,
            active: 1,
            ..before
        },
        "before: {before:?}"
    );
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_user_gets_429_with_retry_after_and_others_do_not() {
    // The per-user limit is the server's default (10 a second); the per-IP
    // one is off, as every user here shares 127.0.0.1 (it has its test
    // below).
    let s = start_with_default_limits(&Backend::Memory, &["--rate-limit-rps", "0"]).await;
    let seen = Observer::new(&s);
    s.event("e1", 5, json!({})).await;
    let before = seen.snapshot("e1", "noisy").await;
    let accepted = served_until_429(40, || {
        s.client
            .post(s.url("/api/v1/points/charge"))
            .json(&json!({"userId": "noisy", "amount": 1}))
    })
    .await
    .expect("40 requests at once never hit a 10/s limit");
    // The refused charges changed nothing: the balance counts the accepted
    // ones, and nothing else moved (the observer waits out the noisy
    // user's limit on the points read).
    let charged = seen.snapshot("e1", "noisy").await;
    assert_eq!(
        charged,
        Snapshot {
            balance: accepted as u64,
            ..before
        }
    );
    // Others are unaffected, whichever route they take.
    for user in ["quiet-1", "quiet-2", "quiet-3"] {
        let entered = s.enter("e1", user).await;
        assert!(entered["token"].is_string(), "{entered}");
        let (status, _) = s.status(entered["token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
    }
    // The noisy user is refused on token-gated routes too.
    let token = testkit::eventually(Duration::from_secs(5), "the noisy user's entry", || async {
        let r = s
            .client
            .post(s.url("/api/v1/queue/enter"))
            .json(&json!({"eventId": "e1", "userId": "noisy"}))
            .send()
            .await
            .unwrap();
        if r.status() != StatusCode::OK {
            return None;
        }
        Some(split(r).await.1["token"].as_str().unwrap().to_owned())
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(s.status(&token).await.0);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS));
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS].contains(s)),
        "only 200 and 429: {statuses:?}"
    );
    // Only the four entries moved the state (each ACTIVE at once).
    let after = seen.snapshot("e1", "noisy").await;
    assert_eq!(
        after,
        Snapshot {
            admitted: charged.admitted + 4,
            active: charged.active + 4,
            ..charged
        }
    );
    s.stop().await.unwrap();
}

/// The default per-IP limit (10 a second, bursts of 10): a client above it
/// is refused with 429 and `Retry-After`, its refused charges change
/// nothing, another client is served, and the operations endpoints stay
/// reachable. The per-user limit is off so that only the per-IP one acts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_above_the_default_ip_limit_gets_429() {
    let s = start_with_default_limits(&Backend::Memory, &["--user-rate-limit-rps", "0"]).await;
    let seen = Observer::new(&s);
    let began = Instant::now();
    s.event("e1", 5, json!({})).await;
    let before = seen.snapshot("e1", "ip-noisy").await;
    let served = served_until_429(30, || {
        s.client
            .post(s.url("/api/v1/points/charge"))
            .json(&json!({"userId": "ip-noisy", "amount": 1}))
    })
    .await
    .expect("30 requests at once never hit the default limit");
    // A burst of 10 (one of them the set-up), then 10 a second: what the
    // elapsed time refilled, and no more.
    let refilled = (began.elapsed().as_secs_f64() * 10.0).ceil() as usize;
    assert!(
        (9..=9 + refilled).contains(&served),
        "{served} served before the 429, {refilled} refilled"
    );
    assert_eq!(s.get("/actuator/health").await.0, StatusCode::OK);
    // Another client (127.0.0.2, also this machine) has its own bucket.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = other.get(s.url("/api/v1/events/e1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let after = seen.snapshot("e1", "ip-noisy").await;
    assert_eq!(
        after,
        Snapshot {
            balance: served as u64,
            ..before
        }
    );
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_without_a_user_limit_no_429() {
    let s = start(&Backend::Memory, &["--user-rate-limit-rps", "0"]).await;
    for _ in 0..40 {
        let (status, _) = s
            .post(
                "/api/v1/points/charge",
                json!({"userId": "noisy", "amount": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_are_capped_per_token_and_in_total() {
    let s = start(
        &Backend::Memory,
        &["--max-sse-per-token", "2", "--max-sse-streams", "3"],
    )
    .await;
    let seen = Observer::new(&s);
    // One ACTIVE user keeps the others WAITING, so their streams stay open.
    s.event("e1", 5, json!({"activeCapacity": 1})).await;
    s.enter("e1", "first").await;
    let a = s.token("e1", "a").await;
    let b = s.token("e1", "b").await;
    let before = seen.snapshot("e1", "a").await;
    let open = |token: String| {
        let client = s.client.clone();
        let url = s.url(&format!("/api/v1/queue/stream?token={token}"));
        async move { client.get(url).send().await.unwrap() }
    };
    let a1 = open(a.clone()).await;
    let a2 = open(a.clone()).await;
    assert_eq!((a1.status(), a2.status()), (StatusCode::OK, StatusCode::OK));
    let a3 = open(a.clone()).await;
    assert_eq!(a3.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_error(&split(a3).await, 429, "RATE_LIMITED");
    let b1 = open(b.clone()).await;
    assert_eq!(b1.status(), StatusCode::OK);
    let b2 = open(b.clone()).await;
    assert_error(&split(b2).await, 503, "UNAVAILABLE");
    // A closed stream frees its place.
    drop(a1);
    let reopened = testkit::eventually(Duration::from_secs(5), "a freed stream", || {
        let open = open(b.clone());
        async move {
            let r = open.await;
            (r.status() == StatusCode::OK).then_some(r)
        }
    })
    .await;
    drop((a2, b1, reopened));
    // Streams, open or refused, moved nothing: still one ACTIVE, two WAITING.
    assert_eq!(seen.snapshot("e1", "a").await, before);
    assert_eq!((before.active, before.waiting), (1, 2));
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_not_sent_in_time_is_400_and_changes_nothing() {
    let s = start(&Backend::Memory, &["--body-read-timeout-ms", "500"]).await;
    let seen = Observer::new(&s);
    s.event("e1", 5, json!({})).await;
    let before = seen.snapshot("e1", "slow").await;
    let mut conn = TcpStream::connect(addr(&s)).await.unwrap();
    let head = format!(
        "POST /api/v1/points/charge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{}",
        r#"{"userId":"slow","#
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut answer))
        .await
        .expect("no answer to a stalled body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("not received within"), "{answer}");
    assert_eq!(seen.snapshot("e1", "slow").await, before);
    s.stop().await.unwrap();
}
