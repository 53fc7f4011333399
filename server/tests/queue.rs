//! Queue semantics over real HTTP: FIFO admission, the SSE position stream,
//! Last-Event-ID, heartbeats, and graceful shutdown with open streams.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use testkit::{on_both_stacks, SseReader, TestServer};

const DEADLINE: Duration = Duration::from_secs(10);

async fn statuses(s: &TestServer, tokens: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for t in tokens {
        out.push(s.status(t).await.1["status"].as_str().unwrap().to_owned());
    }
    out
}

on_both_stacks!(
    admission_order_equals_entry_order_with_capacity_five,
    [],
    |s| {
        s.event("e", 1000, json!({"activeCapacity": 5})).await;
        let users = 30;
        let tokens = s.tokens("e", users).await;
        // Buyers among the ACTIVE finish in a scrambled order; whoever gets the
        // freed slot must always be the earliest entrant still waiting.
        let mut admitted: Vec<usize> = Vec::new();
        let mut done = vec![false; users];
        let mut round = 0usize;
        while admitted.len() < users || done.iter().any(|d| !d) {
            let st = statuses(&s, &tokens).await;
            for (i, status) in st.iter().enumerate() {
                if status == "ACTIVE" && !admitted.contains(&i) {
                    admitted.push(i);
                }
            }
            let active: Vec<usize> = (0..users).filter(|&i| st[i] == "ACTIVE").collect();
            assert!(
                active.len() <= 5,
                "more than activeCapacity ACTIVE: {active:?}"
            );
            if active.is_empty() {
                break;
            }
            // Scramble which ACTIVE user buys next.
            let pick = active[(round * 7 + 3) % active.len()];
            round += 1;
            let (status, body) = s.reserve(Some(&tokens[pick]), "e", json!(1)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            done[pick] = true;
        }
        assert_eq!(admitted, (0..users).collect::<Vec<_>>(), "admission order");
        assert!(done.iter().all(|d| *d));
        s.stop().await.unwrap();
    }
);

on_both_stacks!(
    concurrent_entrants_are_admitted_in_their_entry_order,
    [],
    |s| {
        s.event("e", 1000, json!({"activeCapacity": 1})).await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let client = s.client.clone();
            let url = s.url("/api/v1/queue/enter");
            tasks.push(tokio::spawn(async move {
                let r = client
                    .post(url)
                    .json(&json!({"eventId": "e", "userId": format!("u{i}")}))
                    .send()
                    .await
                    .unwrap();
                r.json::<serde_json::Value>().await.unwrap()
            }));
        }
        let mut entered = Vec::new();
        for t in tasks {
            entered.push(t.await.unwrap());
        }
        // The order the server assigned: ACTIVE first, then by position.
        entered.sort_by_key(|e| e["position"].as_u64().unwrap());
        let positions: Vec<u64> = entered
            .iter()
            .map(|e| e["position"].as_u64().unwrap())
            .collect();
        assert_eq!(
            positions,
            (0..40).collect::<Vec<_>>(),
            "places are 0 (active), 1, 2, ..."
        );
        for (i, e) in entered.iter().enumerate() {
            let token = e["token"].as_str().unwrap();
            assert_eq!(
                s.status(token).await.1["status"],
                "ACTIVE",
                "entrant #{i} admitted in order"
            );
            for later in &entered[i + 1..] {
                let st = s.status(later["token"].as_str().unwrap()).await.1;
                assert_eq!(
                    st["status"], "WAITING",
                    "nobody after #{i} is admitted before it"
                );
            }
            assert_eq!(
                s.reserve(Some(token), "e", json!(1)).await.0,
                StatusCode::OK
            );
        }
        s.stop().await.unwrap();
    }
);

on_both_stacks!(sse_positions_never_increase_and_active_arrives, [], |s| {
    s.event("e", 100, json!({"activeCapacity": 1})).await;
    let tokens = s.tokens("e", 6).await;
    let mut sse = SseReader::open(&s, &tokens[5], None).await;
    let first = sse.next(DEADLINE).await.unwrap();
    assert_eq!(first.event, "position");
    assert_eq!(first.data["position"], 5);
    assert!(first.data["estimatedWaitSeconds"].as_u64().is_some());

    let buyer = {
        let s_client = s.client.clone();
        let url = s.url("/api/v1/tickets/reserve");
        let tokens = tokens.clone();
        tokio::spawn(async move {
            for t in &tokens[..5] {
                let r = s_client
                    .post(&url)
                    .header("X-Queue-Token", t)
                    .json(&json!({"eventId": "e", "quantity": 1}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
            }
        })
    };
    let mut last_position = 5;
    let mut last_id: u64 = first.id.unwrap().parse().unwrap();
    let mut positions = vec![5];
    loop {
        let ev = sse
            .next(DEADLINE)
            .await
            .expect("stream ended before active");
        let id: u64 = ev
            .id
            .as_deref()
            .expect("every event has an id")
            .parse()
            .unwrap();
        assert!(id >= last_id, "ids go forward: {id} after {last_id}");
        last_id = id;
        if ev.event == "active" {
            assert_eq!(ev.data, json!({"status": "ACTIVE"}));
            break;
        }
        assert_eq!(ev.event, "position");
        let p = ev.data["position"].as_u64().unwrap();
        assert!(
            p <= last_position,
            "position went up: {positions:?} then {p}"
        );
        positions.push(p);
        last_position = p;
    }
    buyer.await.unwrap();
    assert!(
        sse.next(DEADLINE).await.is_none(),
        "the stream closes after active"
    );
    s.stop().await.unwrap();
});

on_both_stacks!(
    reconnecting_with_last_event_id_keeps_the_place,
    ["--sse-heartbeat-secs", "1"],
    |s| {
        s.event("e", 100, json!({"activeCapacity": 1})).await;
        let tokens = s.tokens("e", 4).await;
        let mut sse = SseReader::open(&s, &tokens[3], None).await;
        let first = sse.next(DEADLINE).await.unwrap();
        assert_eq!(first.data["position"], 3);
        drop(sse);

        // The line moves while the client is away.
        assert_eq!(
            s.reserve(Some(&tokens[0]), "e", json!(1)).await.0,
            StatusCode::OK
        );
        let mut sse = SseReader::open(&s, &tokens[3], first.id.as_deref()).await;
        let resumed = sse.next(DEADLINE).await.unwrap();
        assert_eq!(resumed.event, "position");
        assert_eq!(resumed.data["position"], 2, "same place, one step further");
        let resumed_id: u64 = resumed.id.unwrap().parse().unwrap();
        assert!(resumed_id > first.id.unwrap().parse::<u64>().unwrap());

        // Nothing moves now: heartbeats repeat the position at least every 15 s
        // (here every second).
        let beat = sse.next(DEADLINE).await.unwrap();
        assert_eq!(
            (beat.event.as_str(), beat.data["position"].as_u64()),
            ("position", Some(2))
        );
        s.stop().await.unwrap();
    }
);

on_both_stacks!(stream_refuses_bad_tokens_and_ends_for_used_ones, [], |s| {
    s.event("e", 10, json!({})).await;
    let r = s
        .client
        .get(s.url("/api/v1/queue/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s
        .client
        .get(s.url("/api/v1/queue/stream?token=x.y"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let t = s.token("e", "a").await;
    let mut sse = SseReader::open(&s, &t, None).await;
    assert_eq!(sse.next(DEADLINE).await.unwrap().event, "active");
    assert!(sse.next(DEADLINE).await.is_none());
    s.reserve(Some(&t), "e", json!(1)).await;
    let mut sse = SseReader::open(&s, &t, None).await;
    let ev = sse.next(DEADLINE).await.unwrap();
    assert_eq!(
        (ev.event.as_str(), &ev.data),
        ("status", &json!({"status": "DONE"}))
    );
    s.stop().await.unwrap();
});

on_both_stacks!(
    graceful_shutdown_ends_streams_and_stops_accepting,
    ["--sse-heartbeat-secs", "15"],
    |s| {
        s.event("e", 10, json!({"activeCapacity": 1})).await;
        s.enter("e", "a").await;
        let waiting = s.token("e", "b").await;
        let mut sse = SseReader::open(&s, &waiting, None).await;
        assert_eq!(sse.next(DEADLINE).await.unwrap().event, "position");
        let base = s.base.clone();

        tokio::time::timeout(Duration::from_secs(5), s.stop())
            .await
            .expect("shutdown drained within its deadline despite an open stream")
            .unwrap();
        assert!(sse.next(DEADLINE).await.is_none(), "the stream was ended");
        let refused = reqwest::Client::new()
            .get(format!("{base}/actuator/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        assert!(refused.is_err(), "no longer accepting");
    }
);
