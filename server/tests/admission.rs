//! The operator's admission controls over real HTTP, on both backends:
//! pause and resume (places kept, FIFO after), queue-everyone, the release
//! rate, the live capacity, their refusals, and on the real stack their
//! reach across instances.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::{
    assert_error, call, eventually, on_both_stacks, start, Backend, SseReader, TestServer,
};

const DEADLINE: Duration = Duration::from_secs(10);
/// How long "nobody is admitted" is watched: several sweeps of either
/// backend (every 200 ms embedded, 250 ms on the real stack), each of which
/// would admit into a free slot.
const HELD_WATCH: Duration = Duration::from_millis(1200);

async fn control(s: &TestServer, event: &str, body: Value) -> (StatusCode, Value) {
    s.admin_post(&format!("/api/v1/admin/events/{event}/admission"), body)
        .await
}

async fn statuses(s: &TestServer, tokens: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for t in tokens {
        out.push(s.status(t).await.1["status"].as_str().unwrap().to_owned());
    }
    out
}

/// Fails if any of `tokens` becomes ACTIVE within [`HELD_WATCH`].
async fn nobody_admitted(s: &TestServer, tokens: &[String]) {
    let until = Instant::now() + HELD_WATCH;
    while Instant::now() < until {
        let st = statuses(s, tokens).await;
        assert!(
            st.iter().all(|x| x == "WAITING"),
            "admitted while held: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The index of the one ACTIVE token among `tokens`, once there is one.
async fn the_active_one(s: &TestServer, tokens: &[String]) -> usize {
    eventually(DEADLINE, "one ACTIVE entry", || async {
        let st = statuses(s, tokens).await;
        let active: Vec<usize> = (0..st.len()).filter(|&i| st[i] == "ACTIVE").collect();
        assert!(active.len() <= 1, "capacity 1, ACTIVE: {active:?}");
        active.first().copied()
    })
    .await
}

on_both_stacks!(pause_stops_admission_and_resume_keeps_fifo, [], |s| {
    s.event("e", 100, json!({"activeCapacity": 1})).await;
    let tokens = s.tokens("e", 5).await;
    assert_eq!(s.status(&tokens[0]).await.1["status"], "ACTIVE");
    let mut stream = SseReader::open(&s, &tokens[3], None).await;
    let first = stream.next(DEADLINE).await.unwrap();
    assert_eq!(first.data["paused"], false, "{:?}", first.data);

    let (code, view) = control(&s, "e", json!({"paused": true})).await;
    assert_eq!(code, StatusCode::OK, "{view}");
    assert_eq!(
        (&view["paused"], &view["queueAll"]),
        (&json!(true), &json!(false))
    );
    // The stream says so at once, although nobody moved.
    let told = stream.next(DEADLINE).await.unwrap();
    assert_eq!(
        (told.event.as_str(), &told.data["paused"]),
        ("position", &json!(true))
    );
    assert_eq!(told.data["position"], 3);

    // The ACTIVE buyer finishes: the slot is free, and stays free.
    let (code, body) = s.reserve(Some(&tokens[0]), "e", json!(1)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    nobody_admitted(&s, &tokens[1..]).await;
    let (_, waiting) = s.status(&tokens[2]).await;
    assert_eq!(
        (&waiting["status"], &waiting["position"], &waiting["paused"]),
        (&json!("WAITING"), &json!(2), &json!(true)),
        "places are kept: {waiting}"
    );

    let (code, view) = control(&s, "e", json!({"paused": false})).await;
    assert_eq!(code, StatusCode::OK, "{view}");
    assert_eq!(view["paused"], false);
    // Resumed: admission goes on in entry order.
    let mut order = Vec::new();
    for _ in 1..5 {
        let next = the_active_one(&s, &tokens[1..]).await + 1;
        order.push(next);
        let (code, body) = s.reserve(Some(&tokens[next]), "e", json!(1)).await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    assert_eq!(order, vec![1, 2, 3, 4], "admission order after resume");
    s.stop().await.unwrap();
});

on_both_stacks!(queue_everyone_holds_until_lifted_itself, [], |s| {
    s.event("e", 100, json!({"activeCapacity": 1})).await;
    let tokens = s.tokens("e", 3).await;
    let (code, view) = control(&s, "e", json!({"queueAll": true})).await;
    assert_eq!(code, StatusCode::OK, "{view}");
    let (code, _) = s.reserve(Some(&tokens[0]), "e", json!(1)).await;
    assert_eq!(code, StatusCode::OK, "an ACTIVE buyer keeps the turn");
    // An ordinary resume does not lift the emergency switch.
    let (_, view) = control(&s, "e", json!({"paused": false})).await;
    assert_eq!(
        (&view["paused"], &view["queueAll"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(s.status(&tokens[1]).await.1["paused"], true);
    nobody_admitted(&s, &tokens[1..]).await;
    let (_, view) = control(&s, "e", json!({"queueAll": false})).await;
    assert_eq!(view["active"], 1, "lifting it admits at once: {view}");
    assert_eq!(s.status(&tokens[1]).await.1["status"], "ACTIVE");
    assert_eq!(s.status(&tokens[2]).await.1["paused"], false);
    s.stop().await.unwrap();
});

on_both_stacks!(the_release_rate_spaces_admissions, [], |s| {
    s.event("e", 100, json!({"activeCapacity": 100})).await;
    let (code, view) = control(&s, "e", json!({"releaseRatePerMinute": 60})).await;
    assert_eq!(code, StatusCode::OK, "{view}");
    assert_eq!(view["releaseRatePerMinute"], 60);
    let set = Instant::now();
    let tokens = s.tokens("e", 4).await;
    // One per second, a bucket of one: the first at once, then one a second.
    let st = statuses(&s, &tokens).await;
    assert_eq!(st[0], "ACTIVE", "{st:?}");
    let second = eventually(DEADLINE, "a second admission", || async {
        (s.event_state("e").await["active"] == 2).then(Instant::now)
    })
    .await;
    let gap = second - set;
    assert!(
        gap >= Duration::from_millis(700),
        "60 a minute admitted the second after {gap:?}"
    );
    assert_eq!(statuses(&s, &tokens).await[1], "ACTIVE", "in entry order");
    // No limit: the rest at once.
    let (_, view) = control(&s, "e", json!({"releaseRatePerMinute": 0})).await;
    assert_eq!(
        (&view["active"], &view["waiting"]),
        (&json!(4), &json!(0)),
        "{view}"
    );
    s.stop().await.unwrap();
});

on_both_stacks!(capacity_changes_live_and_evicts_nobody, [], |s| {
    s.event("e", 100, json!({"activeCapacity": 1})).await;
    let tokens = s.tokens("e", 4).await;
    let (code, view) = control(&s, "e", json!({"activeCapacity": 3})).await;
    assert_eq!(code, StatusCode::OK, "{view}");
    assert_eq!(
        (&view["activeCapacity"], &view["active"]),
        (&json!(3), &json!(3))
    );
    assert_eq!(s.event_state("e").await["activeCapacity"], 3);
    let (_, view) = control(&s, "e", json!({"activeCapacity": 1})).await;
    assert_eq!(view["active"], 3, "lowering evicts nobody: {view}");
    assert_eq!(
        statuses(&s, &tokens).await,
        ["ACTIVE", "ACTIVE", "ACTIVE", "WAITING"]
    );
    // Two finish: still one too many ACTIVE for capacity 1, so nobody new.
    for t in &tokens[..2] {
        assert_eq!(s.reserve(Some(t), "e", json!(1)).await.0, StatusCode::OK);
    }
    nobody_admitted(&s, &tokens[3..]).await;
    assert_eq!(
        s.reserve(Some(&tokens[2]), "e", json!(1)).await.0,
        StatusCode::OK
    );
    assert_eq!(s.status(&tokens[3]).await.1["status"], "ACTIVE");
    s.stop().await.unwrap();
});

on_both_stacks!(
    the_console_reads_every_event_and_refusals_change_nothing,
    [],
    |s| {
        s.event("b", 10, json!({"activeCapacity": 2})).await;
        s.event("a", 5, json!({})).await;
        s.token("b", "u1").await;
        let list = s.url("/api/v1/admin/admission");
        let (code, body) = call(s.client.get(&list).bearer_auth(&s.admin_token)).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let events = body["events"].as_array().unwrap();
        let ids: Vec<&str> = events
            .iter()
            .map(|e| e["eventId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b"], "by event id");
        let b = &events[1];
        assert_eq!(
            (
                &b["stock"],
                &b["active"],
                &b["admitted"],
                &b["activeCapacity"],
                &b["releaseRatePerMinute"]
            ),
            (&json!(10), &json!(1), &json!(1), &json!(2), &json!(0)),
            "{b}"
        );
        assert!(b["admittedPerMinute"].as_f64().unwrap() > 0.0, "{b}");

        assert_error(&call(s.client.get(&list)).await, 401, "UNAUTHORIZED");
        let set = s.url("/api/v1/admin/events/b/admission");
        let wrong = call(
            s.client
                .post(&set)
                .bearer_auth("nope")
                .json(&json!({"paused": true})),
        )
        .await;
        assert_error(&wrong, 401, "UNAUTHORIZED");
        for bad in [
            json!({"activeCapacity": 0}),
            json!({"releaseRatePerMinute": 1_000_001}),
            json!({"paused": "yes"}),
            json!({"pause": true}),
            json!([true]),
        ] {
            assert_error(&control(&s, "b", bad.clone()).await, 400, "BAD_REQUEST");
        }
        assert_error(
            &control(&s, "no-such", json!({"paused": true})).await,
            404,
            "NOT_FOUND",
        );
        assert_error(
            &control(&s, "bad%20id", json!({"paused": true})).await,
            400,
            "BAD_REQUEST",
        );
        let (code, after) = control(&s, "b", json!({})).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            (
                &after["paused"],
                &after["activeCapacity"],
                &after["releaseRatePerMinute"]
            ),
            (&json!(false), &json!(2), &json!(0)),
            "refused changes changed nothing: {after}"
        );
        let get = call(s.client.get(&set).bearer_auth(&s.admin_token)).await;
        assert_error(&get, 405, "METHOD_NOT_ALLOWED");
        s.stop().await.unwrap();
    }
);

/// The negative control the verifier's pause check must catch: the pause
/// is announced but not obeyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_pause_admits_while_saying_paused() {
    let s = start(&Backend::Memory, &["--unsafe-pause"]).await;
    s.event("e", 100, json!({"activeCapacity": 1})).await;
    let tokens = s.tokens("e", 2).await;
    control(&s, "e", json!({"paused": true})).await;
    assert_eq!(
        s.reserve(Some(&tokens[0]), "e", json!(1)).await.0,
        StatusCode::OK
    );
    let (_, view) = s.status(&tokens[1]).await;
    assert_eq!(
        (&view["status"], &view["paused"]),
        (&json!("ACTIVE"), &json!(true))
    );
    s.stop().await.unwrap();
}

/// On the real stack the controls are in Redis: a pause through one
/// instance holds admission through another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_reaches_every_instance() {
    let Some(real) = Backend::real() else { return };
    let (a, b) = (start(&real, &[]).await, start(&real, &[]).await);
    a.event("e", 100, json!({"activeCapacity": 1})).await;
    let tokens = b.tokens("e", 3).await;
    let (code, _) = control(&a, "e", json!({"paused": true})).await;
    assert_eq!(code, StatusCode::OK);
    let mut stream = SseReader::open(&b, &tokens[2], None).await;
    assert_eq!(stream.next(DEADLINE).await.unwrap().data["paused"], true);
    assert_eq!(
        b.reserve(Some(&tokens[0]), "e", json!(1)).await.0,
        StatusCode::OK
    );
    nobody_admitted(&b, &tokens[1..]).await;
    control(&a, "e", json!({"paused": false})).await;
    let resumed = stream.next(DEADLINE).await.unwrap();
    assert_eq!(resumed.data["paused"], false, "{:?}", resumed.data);
    assert_eq!(b.status(&tokens[1]).await.1["status"], "ACTIVE");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// The other controls are fields of the same Redis hash: the capacity,
/// queue-everyone and the release rate set through one instance govern
/// admission through another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_reaches_every_instance() {
    let Some(real) = Backend::real() else { return };
    let (a, b) = (start(&real, &[]).await, start(&real, &[]).await);
    a.event("e", 100, json!({"activeCapacity": 1})).await;
    let tokens = b.tokens("e", 4).await;
    // The capacity, raised through a: b's entrants are admitted.
    let (code, view) = control(&a, "e", json!({"activeCapacity": 3})).await;
    assert_eq!(code, StatusCode::OK, "{view}");
    eventually(DEADLINE, "three ACTIVE through b", || async {
        let st = statuses(&b, &tokens).await;
        (st == ["ACTIVE", "ACTIVE", "ACTIVE", "WAITING"]).then_some(())
    })
    .await;
    // Queue-everyone through a: a purchase through b frees a slot that
    // nobody takes, and b's waiting entrant is told it is paused.
    let (code, _) = control(&a, "e", json!({"queueAll": true})).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(b.status(&tokens[3]).await.1["paused"], true);
    assert_eq!(
        b.reserve(Some(&tokens[0]), "e", json!(1)).await.0,
        StatusCode::OK
    );
    nobody_admitted(&b, &tokens[3..]).await;
    control(&a, "e", json!({"queueAll": false})).await;
    eventually(DEADLINE, "the fourth ACTIVE through b", || async {
        (b.status(&tokens[3]).await.1["status"] == "ACTIVE").then_some(())
    })
    .await;
    // The release rate, set through a: b's entrants come one a second.
    a.event("f", 100, json!({"activeCapacity": 100})).await;
    let (code, _) = control(&a, "f", json!({"releaseRatePerMinute": 60})).await;
    assert_eq!(code, StatusCode::OK);
    let set = Instant::now();
    let tokens = b.tokens("f", 3).await;
    assert_eq!(statuses(&b, &tokens).await[0], "ACTIVE");
    let second = eventually(DEADLINE, "a second admission on f", || async {
        (b.event_state("f").await["active"] == 2).then(Instant::now)
    })
    .await;
    assert!(
        second - set >= Duration::from_millis(700),
        "60 a minute set through a admitted b's second entrant after {:?}",
        second - set
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
