//! The waiting line on the real stack is the broker's: each event's line is
//! a one-partition topic, an entry's place is the offset the broker
//! acknowledged, one place per user across instances, and admission
//! follows the offsets (passing a place nobody holds, adopting an entry
//! whose instance never wrote its place).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use reqwest::StatusCode;
use serde_json::json;
use testkit::{eventually, real_stack, split, start, Backend, TestServer};

const DEADLINE: Duration = Duration::from_secs(20);

/// The line topic of `event` in `namespace` (the server's naming).
fn line_topic(namespace: &str, event: &str) -> String {
    format!("{namespace}.ticket.queue.{event}")
}

/// `(offset, userId)` of every entry on the line, read from its start
/// until `last` was seen and then until it stays quiet for a second (every
/// entry looked for was acknowledged before this is called; the broker's
/// high watermark is not relied on, tansu's has been seen to lag).
fn entries_on_line(topic: &str, last: i64) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", std::env::var("KAFKA_BROKERS").unwrap())
        .set("group.id", format!("test-line-{}", rand::random::<u32>()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut seen: Vec<(i64, String)> = Vec::new();
    let until = std::time::Instant::now() + DEADLINE;
    loop {
        let reached = seen.last().is_some_and(|(o, _)| *o >= last);
        let wait = if reached { 1000 } else { 200 };
        match consumer.poll(Duration::from_millis(wait)) {
            Some(Ok(m)) => {
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                seen.push((m.offset(), v["userId"].as_str().unwrap().to_owned()));
            }
            _ if reached => return seen,
            _ => assert!(
                std::time::Instant::now() < until,
                "line read up to {seen:?}, looking for offset {last}"
            ),
        }
    }
}

/// The place (`seq`) a queue token carries: `eventId|userId|seq|issuedAt`.
fn seq_of(token: &str) -> u64 {
    let payload = token.split('.').next().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    text.split('|').nth(2).unwrap().parse().unwrap()
}

async fn status_of(s: &TestServer, token: &str) -> String {
    let (code, v) = s.status(token).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    v["status"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_across_two_instances_get_one_place_and_one_token() {
    let Some(stack) = real_stack() else { return };
    let ns = stack.namespace.clone();
    let real = Backend::Real(stack);
    let (a, b) = (start(&real, &[]).await, start(&real, &[]).await);
    a.event("dup", 100, json!({"activeCapacity": 1})).await;
    let users = 6;
    let copies = 8;
    let barrier = Arc::new(tokio::sync::Barrier::new(users * copies));
    let mut tasks = Vec::new();
    for u in 0..users {
        for c in 0..copies {
            let server = if c % 2 == 0 { &a } else { &b };
            let (client, url) = (server.client.clone(), server.url("/api/v1/queue/enter"));
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let r = client
                    .post(url)
                    .json(&json!({"eventId": "dup", "userId": format!("u{u}")}))
                    .send()
                    .await
                    .unwrap();
                (u, split(r).await)
            }));
        }
    }
    let mut tokens: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for t in tasks {
        let (u, (status, body)) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens
            .entry(u)
            .or_default()
            .push(body["token"].as_str().unwrap().to_owned());
    }
    for (u, ts) in &tokens {
        assert!(
            ts.iter().all(|t| t == &ts[0]),
            "u{u} got {} different tokens",
            ts.iter().collect::<std::collections::BTreeSet<_>>().len()
        );
    }
    let seqs: Vec<u64> = tokens.values().map(|t| seq_of(&t[0])).collect();
    let line = entries_on_line(&line_topic(&ns, "dup"), *seqs.iter().max().unwrap() as i64);
    assert_eq!(
        line.len(),
        users,
        "one entry per user on the line: {line:?}; places {seqs:?}"
    );
    for (offset, user) in &line {
        let u: usize = user[1..].parse().unwrap();
        assert_eq!(
            seq_of(&tokens[&u][0]),
            *offset as u64,
            "{user}'s place is its offset"
        );
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn places_are_the_offsets_and_positions_are_exact_from_the_first_answer() {
    let Some(stack) = real_stack() else { return };
    let ns = stack.namespace.clone();
    let real = Backend::Real(stack);
    let (a, b) = (start(&real, &[]).await, start(&real, &[]).await);
    a.event("fifo", 100, json!({"activeCapacity": 3})).await;
    let mut tokens = Vec::new();
    for i in 0..12 {
        let server = if i % 2 == 0 { &a } else { &b };
        let entered = server.enter("fifo", &format!("u{i}")).await;
        let expected = if i < 3 {
            json!([0, "ACTIVE"])
        } else {
            json!([i - 2, "WAITING"])
        };
        assert_eq!(
            json!([entered["position"], entered["status"]]),
            expected,
            "u{i} on entering: {entered}"
        );
        tokens.push(entered["token"].as_str().unwrap().to_owned());
    }
    let line = entries_on_line(&line_topic(&ns, "fifo"), 11);
    let expected: Vec<(i64, String)> = (0..12).map(|i| (i, format!("u{i}"))).collect();
    assert_eq!(line, expected, "the line's order is the entry order");
    assert_eq!(
        tokens.iter().map(|t| seq_of(t)).collect::<Vec<_>>(),
        (0..12).collect::<Vec<u64>>()
    );
    // Freeing slots in a scrambled order admits by offset.
    let mut admitted = Vec::new();
    for round in 0..12 {
        let active = eventually(DEADLINE, "someone ACTIVE", || async {
            let mut active = Vec::new();
            for (i, t) in tokens.iter().enumerate() {
                if status_of(&a, t).await == "ACTIVE" {
                    active.push(i);
                }
            }
            (!active.is_empty()).then_some(active)
        })
        .await;
        for &i in &active {
            if !admitted.contains(&i) {
                admitted.push(i);
            }
        }
        let pick = active[(round * 5 + 1) % active.len()];
        assert_eq!(
            b.reserve(Some(&tokens[pick]), "fifo", json!(1)).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(admitted, (0..12).collect::<Vec<_>>(), "admitted by offset");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_consumer_adopts_an_orphan_entry_and_passes_a_duplicate_place() {
    let Some(stack) = real_stack() else { return };
    let ns = stack.namespace.clone();
    let a = start(&Backend::Real(stack), &[]).await;
    a.event("gaps", 100, json!({"activeCapacity": 1})).await;
    let first = a.token("gaps", "u0").await;
    assert_eq!(status_of(&a, &first).await, "ACTIVE");

    // As if an instance died after its entry was acknowledged and before
    // it wrote the place (an orphan), and as if a retried send put a user
    // on the line twice (a place nobody holds).
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", std::env::var("KAFKA_BROKERS").unwrap())
        .create()
        .unwrap();
    let topic = line_topic(&ns, "gaps");
    for user in ["u0", "ghost"] {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let entry = json!({"eventId": "gaps", "userId": user, "issuedAt": now});
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(user)
                    .payload(&entry.to_string()),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    // Entering before the consumer adopted the orphan would put the ghost
    // on the line again: wait until the line counts both entries.
    eventually(DEADLINE, "the consumer read both entries", || async {
        (a.event_state("gaps").await["waiting"] == 2).then_some(())
    })
    .await;
    let ghost = a.enter("gaps", "ghost").await;
    assert_eq!(ghost["position"], 2, "{ghost}");
    assert_eq!(
        seq_of(ghost["token"].as_str().unwrap()),
        2,
        "the orphan's offset"
    );
    let late = a.enter("gaps", "u3").await;
    assert_eq!(seq_of(late["token"].as_str().unwrap()), 3);
    assert_eq!(
        entries_on_line(&topic, 3).len(),
        4,
        "entering again produced nothing"
    );

    // u0 buys: the duplicate's place (1) is passed, the ghost admitted.
    assert_eq!(
        a.reserve(Some(&first), "gaps", json!(1)).await.0,
        StatusCode::OK
    );
    let ghost_token = ghost["token"].as_str().unwrap().to_owned();
    eventually(
        DEADLINE,
        "the ghost admitted past the empty place",
        || async { (status_of(&a, &ghost_token).await == "ACTIVE").then_some(()) },
    )
    .await;
    assert_eq!(
        status_of(&a, late["token"].as_str().unwrap()).await,
        "WAITING"
    );
    a.stop().await.unwrap();
}
