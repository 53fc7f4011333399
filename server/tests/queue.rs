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

/// The id of an SSE event, which every event must carry.
fn id_of(ev: &testkit::Sse) -> u64 {
    ev.id
        .as_deref()
        .unwrap_or_else(|| panic!("an event without an id: {ev:?}"))
        .parse()
        .unwrap()
}

// Heartbeats every 15 s, longer than DEADLINE: every event read here comes
// from the line moving, none is a repeat.
on_both_stacks!(
    sse_positions_never_increase_and_active_arrives,
    ["--sse-heartbeat-secs", "15"],
    |s| {
        s.event("e", 100, json!({"activeCapacity": 1})).await;
        let tokens = s.tokens("e", 6).await;
        let mut sse = SseReader::open(&s, &tokens[5], None).await;
        let first = sse.next(DEADLINE).await.unwrap();
        assert_eq!(first.event, "position");
        assert!(first.data["estimatedWaitSeconds"].as_u64().is_some());

        // Lockstep: the ACTIVE buyer buys, freeing one slot, and the stream
        // must show that one step before the next buyer buys; so every
        // step is seen, none coalesced away.
        let mut positions = vec![first.data["position"].as_u64().unwrap()];
        let mut ids = vec![id_of(&first)];
        let mut last = None;
        for t in &tokens[..5] {
            assert_eq!(s.reserve(Some(t), "e", json!(1)).await.0, StatusCode::OK);
            let ev = sse
                .next(DEADLINE)
                .await
                .expect("stream ended before active");
            ids.push(id_of(&ev));
            if ev.event == "active" {
                last = Some(ev);
                break;
            }
            assert_eq!(ev.event, "position", "{ev:?}");
            positions.push(ev.data["position"].as_u64().unwrap());
        }
        assert_eq!(positions, [5, 4, 3, 2, 1], "ids {ids:?}");
        let active = last.expect("no active event after the fifth purchase");
        assert_eq!(active.data, json!({"status": "ACTIVE"}));
        assert_eq!(ids.len(), 6, "{ids:?}");
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids strictly increase: {ids:?}"
        );
        assert!(
            sse.next(DEADLINE).await.is_none(),
            "the stream closes after active"
        );
        s.stop().await.unwrap();
    }
);

on_both_stacks!(
    reconnecting_with_last_event_id_keeps_the_place,
    ["--sse-heartbeat-secs", "1"],
    |s| {
        s.event("e", 100, json!({"activeCapacity": 1})).await;
        let tokens = s.tokens("e", 4).await;
        let mut sse = SseReader::open(&s, &tokens[3], None).await;
        let first = sse.next(DEADLINE).await.unwrap();
        assert_eq!(first.data["position"], 3);
        let seen = id_of(&first);
        drop(sse);

        // The client saw one admission more than this server has yet (as
        // from an instance further ahead): the id is ahead, the line has
        // not moved. Resuming honours the id, not the server's cursor:
        // one place further on, with that id.
        let ahead = (seen + 1).to_string();
        let mut sse = SseReader::open(&s, &tokens[3], Some(&ahead)).await;
        let resumed = sse.next(DEADLINE).await.unwrap();
        assert_eq!(resumed.event, "position");
        assert_eq!(
            (resumed.data["position"].as_u64(), id_of(&resumed)),
            (Some(2), seen + 1),
            "resumed at the place the id implies"
        );
        // The control: without the header the same token, at the same
        // moment, is told where the server's cursor puts it.
        let mut fresh = SseReader::open(&s, &tokens[3], None).await;
        let now = fresh.next(DEADLINE).await.unwrap();
        assert_eq!(
            (now.data["position"].as_u64(), id_of(&now)),
            (Some(3), seen),
            "a fresh stream shows the cursor's place"
        );
        drop(fresh);

        // Nothing moves now: heartbeats repeat the place the id implied, not
        // the cursor's, at least every 15 s (here every second).
        let beat = sse.next(DEADLINE).await.unwrap();
        assert_eq!(
            (
                beat.event.as_str(),
                beat.data["position"].as_u64(),
                id_of(&beat)
            ),
            ("position", Some(2), seen + 1)
        );

        // The line catches up with the id: still place 2, so nothing new is
        // said before the next heartbeat; then it moves on past it.
        assert_eq!(
            s.reserve(Some(&tokens[0]), "e", json!(1)).await.0,
            StatusCode::OK
        );
        assert_eq!(
            s.reserve(Some(&tokens[1]), "e", json!(1)).await.0,
            StatusCode::OK
        );
        let mut moved = None;
        for _ in 0..10 {
            let ev = sse.next(DEADLINE).await.unwrap();
            assert_eq!(ev.event, "position", "{ev:?}");
            let p = ev.data["position"].as_u64().unwrap();
            assert!(p <= 2, "the place went back up: {ev:?}");
            if p < 2 {
                moved = Some(ev);
                break;
            }
        }
        let moved = moved.expect("ten heartbeats at place 2 after the line moved twice");
        assert_eq!(
            (moved.data["position"].as_u64(), id_of(&moved)),
            (Some(1), seen + 2)
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
