//! The real stack's own properties: stateless instances sharing one stack,
//! a killed instance losing nothing, a lost Kafka send recovered by the
//! reconciler. Each test runs in its own namespace.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use reqwest::StatusCode;
use serde_json::json;
use testkit::{eventually, real_stack, split, start, Backend, TestServer, ADMIN, SECRET};

const DEADLINE: Duration = Duration::from_secs(45);

async fn pg(namespace: &str) -> tokio_postgres::Client {
    let url = std::env::var("POSTGRES_URL").unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("SET search_path = \"{namespace}\""))
        .await
        .unwrap();
    client
}

async fn persisted(db: &tokio_postgres::Client, event: &str) -> BTreeSet<String> {
    db.query(
        "SELECT reservation_id FROM reservations WHERE event_id = $1",
        &[&event],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Enters `n` users on `enter_on[i % len]`, then reserves 1 each on
/// `reserve_on[i % len]`, all at once. Returns the reservation ids sold.
async fn buy(
    enter_on: &[&TestServer],
    reserve_on: &[&TestServer],
    event: &str,
    n: usize,
) -> (BTreeSet<String>, usize) {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (e, r) = (
            enter_on[i % enter_on.len()],
            reserve_on[i % reserve_on.len()],
        );
        let (client, enter_url, reserve_url) = (
            e.client.clone(),
            e.url("/api/v1/queue/enter"),
            r.url("/api/v1/tickets/reserve"),
        );
        let (barrier, event) = (barrier.clone(), event.to_owned());
        tasks.push(tokio::spawn(async move {
            let entered = client
                .post(&enter_url)
                .json(&json!({"eventId": event, "userId": format!("u{i}")}))
                .send()
                .await
                .unwrap();
            let (status, entered) = split(entered).await;
            assert_eq!(status, StatusCode::OK, "{entered}");
            let token = entered["token"].as_str().unwrap().to_owned();
            // Capacity is room for all, but an entrant whose answer came
            // before an earlier place was written is admitted moments later.
            if entered["status"] != "ACTIVE" {
                assert_eq!(entered["status"], "WAITING", "{entered}");
                let status_url = enter_url.replace("/enter", "/status");
                eventually(DEADLINE, "admitted", || async {
                    let r = client
                        .get(&status_url)
                        .header("X-Queue-Token", &token)
                        .send()
                        .await
                        .unwrap();
                    (split(r).await.1["status"] == "ACTIVE").then_some(())
                })
                .await;
            }
            barrier.wait().await;
            let r = client
                .post(reserve_url)
                .header("X-Queue-Token", &token)
                .json(&json!({"eventId": event, "quantity": 1}))
                .send()
                .await
                .unwrap();
            split(r).await
        }));
    }
    let (mut ok, mut sold_out) = (BTreeSet::new(), 0);
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::OK => {
                ok.insert(body["reservationId"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT if body["error"] == "SOLD_OUT" => sold_out += 1,
            other => panic!("unexpected {other} {body}"),
        }
    }
    (ok, sold_out)
}

/// Every reservation id on `topic`, read from the beginning of each partition.
fn ids_on_topic(topic: &str, partitions: i32, want: &BTreeSet<String>) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", std::env::var("KAFKA_BROKERS").unwrap())
        .set("group.id", format!("test-reader-{}", rand::random::<u32>()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen = Vec::new();
    let until = std::time::Instant::now() + DEADLINE;
    while std::time::Instant::now() < until {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            seen.push(v["reservationId"].as_str().unwrap().to_owned());
        }
        let distinct: BTreeSet<&String> = seen.iter().collect();
        if want.iter().all(|id| distinct.contains(id)) {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_stack_sell_exactly_the_stock() {
    let Some(stack) = real_stack() else { return };
    let ns = stack.namespace.clone();
    let real = Backend::Real(stack);
    let (a, b) = (start(&real, &[]).await, start(&real, &[]).await);
    a.event("sale", 100, json!({"activeCapacity": 200})).await;

    // Enter on one instance, buy on the other: tokens and state are shared.
    let (ok, sold_out) = buy(&[&a, &b], &[&b, &a], "sale", 200).await;
    assert_eq!((ok.len(), sold_out), (100, 100));
    for s in [&a, &b] {
        let v = s.event_state("sale").await;
        assert_eq!(
            (v["sold"].as_u64(), v["remaining"].as_u64()),
            (Some(100), Some(0)),
            "{v}"
        );
    }

    let db = pg(&ns).await;
    let rows = eventually(DEADLINE, "100 rows in PostgreSQL", || async {
        let rows = persisted(&db, "sale").await;
        (rows.len() == 100).then_some(rows)
    })
    .await;
    assert_eq!(rows, ok, "PostgreSQL holds exactly the reservations sold");
    let remaining: i64 = db
        .query_one(
            "SELECT remaining FROM event_stock WHERE event_id = 'sale'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(remaining, 0);
    let live: i64 = db
        .query_one(
            "SELECT count(*) FROM instances WHERE consumer = 'persist' AND seen_at > clock_timestamp() - interval '5 seconds'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 2, "both instances take part in consuming");

    let topic = format!("{ns}.ticket.reserved");
    let want = ok.clone();
    let on_kafka = tokio::task::spawn_blocking(move || ids_on_topic(&topic, 2, &want))
        .await
        .unwrap();
    let on_kafka: BTreeSet<String> = on_kafka.into_iter().collect();
    assert!(
        ok.is_subset(&on_kafka),
        "each reservation at least once on ticket.reserved"
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_instance_loses_nothing_and_writes_nothing_twice() {
    let Some(stack) = real_stack() else { return };
    let ns = stack.namespace.clone();
    // Instance A, a real process, holds every batch 2 s before writing it:
    // when it is killed, what it consumed is not yet in PostgreSQL.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticket-server"))
        .args(stack.flags())
        .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN])
        .args(["--token-secret", SECRET, "--debug-persist-delay-ms", "2000"])
        // 300 buyers from 127.0.0.1 at once.
        .args(["--rate-limit-rps", "0", "--user-rate-limit-rps", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("ticket-server exited").unwrap();
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_owned();
        }
    };
    let a = TestServer::external(&base);
    eventually(DEADLINE, "instance A ready", || async {
        a.client
            .get(a.url("/actuator/health"))
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await;
    a.event("sale", 1000, json!({"activeCapacity": 1000})).await;
    let (ok, _) = buy(&[&a], &[&a], "sale", 300).await;
    assert_eq!(ok.len(), 300);
    child.kill().unwrap();
    child.wait().unwrap();

    let db = pg(&ns).await;
    let before = persisted(&db, "sale").await;
    assert!(
        before.len() < 300,
        "A was killed mid-consumption ({} persisted)",
        before.len()
    );

    // B takes the partitions over from the offsets stored with the writes.
    let b = start(&Backend::Real(stack), &[]).await;
    let rows = eventually(DEADLINE, "every sale in PostgreSQL", || async {
        let rows = persisted(&db, "sale").await;
        (rows.len() >= 300).then_some(rows)
    })
    .await;
    assert_eq!(rows, ok, "nothing lost, nothing unexpected");
    let (count, remaining): (i64, i64) = {
        let r = db
            .query_one(
                "SELECT (SELECT count(*) FROM reservations WHERE event_id = 'sale'),
                        (SELECT remaining FROM event_stock WHERE event_id = 'sale')",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((count, remaining), (300, 700), "nothing written twice");
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accepted_reservations_reach_postgres_when_the_kafka_send_is_lost() {
    let Some(stack) = real_stack() else { return };
    let ns = stack.namespace.clone();
    let s = start(&Backend::Real(stack), &["--debug-drop-publish"]).await;
    s.event("sale", 50, json!({"activeCapacity": 50})).await;
    let (ok, _) = buy(&[&s], &[&s], "sale", 50).await;
    assert_eq!(ok.len(), 50);
    // The hook worked: the request path sent nothing to Kafka (a
    // histogram counts every send it makes).
    assert_eq!(
        counter(&s.metrics().await, "kafka_send_seconds_count"),
        0,
        "nothing went through Kafka from the request path"
    );
    let db = pg(&ns).await;
    // The reconciler re-publishes what PostgreSQL lacks.
    let rows = eventually(
        DEADLINE,
        "the reconciler's re-publish persisted",
        || async {
            let rows = persisted(&db, "sale").await;
            (rows.len() == 50).then_some(rows)
        },
    )
    .await;
    // ... and it was the reconciler that brought them: its counter saw
    // every one (more when a pass re-sent one not yet consumed).
    assert!(
        counter(&s.metrics().await, "reservations_republished_total") >= 50,
        "{}",
        s.metrics().await
    );
    assert_eq!(rows, ok);
    for id in &ok {
        let (status, t) = s.get(&format!("/api/v1/tickets/{id}")).await;
        assert_eq!(
            (status, t["status"].as_str()),
            (StatusCode::OK, Some("CONFIRMED"))
        );
    }
    s.stop().await.unwrap();
}

/// The control for the test above: without the hook, every accepted
/// reservation is sent from the request path, so its "sent nothing"
/// assertion would fail were the hook ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_hook_the_request_path_sends_each_reservation() {
    let Some(stack) = real_stack() else { return };
    let s = start(&Backend::Real(stack), &[]).await;
    s.event("sale", 10, json!({"activeCapacity": 10})).await;
    let (ok, _) = buy(&[&s], &[&s], "sale", 10).await;
    assert_eq!(ok.len(), 10);
    assert_eq!(counter(&s.metrics().await, "kafka_send_seconds_count"), 10);
    s.stop().await.unwrap();
}

/// A metric's value in a Prometheus exposition (0 when absent).
fn counter(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn counter_reads_one_metric_and_nothing_else() {
    let text = "# TYPE x counter\nkafka_send_seconds_count 7\nkafka_send_seconds_sum 0.5\nreservations_republished_total 50\n";
    assert_eq!(counter(text, "kafka_send_seconds_count"), 7);
    assert_eq!(counter(text, "reservations_republished_total"), 50);
    assert_eq!(
        counter(text, "kafka_send_seconds"),
        0,
        "a prefix is not the metric"
    );
}
