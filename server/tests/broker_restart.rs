//! The broker stopped and started again under two running instances. While
//! it is down they answer every purchase (sold, or 503 UNAVAILABLE), never
//! crash and never hang; once it is back they resume by themselves (nobody
//! restarts them); every reservation accepted before, during or after the
//! outage ends CONFIRMED, the event's counts agree, the broker kept its
//! topics and their records (durable storage), and verify's checks 1 and 2
//! pass against the same two instances afterwards.
//!
//! Alone in its binary: it stops and starts the shared broker of
//! `scripts/services.sh` (test binaries run one after another).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::services;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::{eventually, real_stack, start, Backend, TestServer};
use tokio::sync::Mutex;
use verify::{run_against, CheckName, Options, Target};

/// Health changes, confirmations and the broker's start all happen within
/// seconds; this bounds each wait.
const DEADLINE: Duration = Duration::from_secs(60);
/// No request may take longer, outage or not.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
const STOCK: u64 = 100_000;

/// The broker stopped; started again when dropped, whatever happened, so
/// the test binaries after this one find it up.
struct BrokerDown;

impl BrokerDown {
    fn stop() -> BrokerDown {
        services(&["stop-one", "kafka"]);
        BrokerDown
    }

    fn start(self) {
        drop(self);
    }
}

impl Drop for BrokerDown {
    fn drop(&mut self) {
        services(&["start-one", "kafka"]);
    }
}

/// What one purchase attempt got.
#[derive(Debug, Default)]
struct Tally {
    /// Reservation ids answered 200.
    sold: Vec<String>,
    /// Enters or reserves answered 503 UNAVAILABLE.
    unavailable: usize,
}

/// The answer within [`ANSWER_WITHIN`]; anything but 200 or 503
/// UNAVAILABLE fails the test.
async fn answered(
    what: &str,
    call: impl std::future::Future<Output = (StatusCode, Value)>,
) -> Option<Value> {
    let (status, body) = tokio::time::timeout(ANSWER_WITHIN, call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {ANSWER_WITHIN:?}"));
    match status {
        StatusCode::OK => Some(body),
        StatusCode::SERVICE_UNAVAILABLE if body["error"] == "UNAVAILABLE" => None,
        _ => panic!("{what}: {status} {body}"),
    }
}

/// One buyer: enter, then reserve one item; the outcome goes to `tally`.
async fn purchase(s: &TestServer, event: &str, user: &str, tally: &Mutex<Tally>) {
    let body = json!({"eventId": event, "userId": user});
    let Some(entered) = answered("enter", s.post("/api/v1/queue/enter", body)).await else {
        tally.lock().await.unavailable += 1;
        return;
    };
    assert_eq!(entered["status"], "ACTIVE", "{entered}");
    let token = entered["token"].as_str().unwrap();
    match answered("reserve", s.reserve(Some(token), event, json!(1))).await {
        Some(r) => {
            let id = r["reservationId"].as_str().unwrap().to_owned();
            tally.lock().await.sold.push(id);
        }
        None => tally.lock().await.unavailable += 1,
    }
}

/// Buyers `<prefix>-0`, `<prefix>-1`, ... one after another, alternating
/// between the instances, until `stop` is set.
async fn buyers(
    servers: Arc<[TestServer; 2]>,
    event: &'static str,
    prefix: &'static str,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        purchase(&servers[i % 2], event, &format!("{prefix}-{i}"), &tally).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn health(s: &TestServer) -> (StatusCode, Value) {
    tokio::time::timeout(ANSWER_WITHIN, s.get("/actuator/health"))
        .await
        .expect("health answers")
}

async fn kafka_down(s: &TestServer) {
    eventually(DEADLINE, "health to report kafka DOWN", || async {
        let (status, h) = health(s).await;
        (status == StatusCode::SERVICE_UNAVAILABLE && h["backends"]["kafka"] == "DOWN")
            .then_some(())
    })
    .await;
}

async fn up(s: &TestServer) {
    eventually(DEADLINE, "health to report UP", || async {
        (health(s).await.0 == StatusCode::OK).then_some(())
    })
    .await;
}

/// Records on `topic` (the sum of its partitions' high watermarks), asked
/// of the broker by the test's own client. One client for the whole test,
/// dropped after the instances stop: librdkafka clients created and dropped
/// while others run have been seen to crash.
async fn records(client: &Arc<BaseConsumer>, topic: &str) -> i64 {
    let client = client.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let md = client
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .unwrap();
        let partitions = md.topics()[0].partitions().len() as i32;
        assert!(partitions > 0, "{topic} has no partitions");
        (0..partitions)
            .map(|p| {
                client
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .unwrap()
                    .1
            })
            .sum()
    })
    .await
    .unwrap()
}

async fn sold_count(s: &TestServer, event: &str) -> u64 {
    s.event_state(event).await["sold"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_restart_under_two_instances_loses_nothing() {
    let Some(stack) = real_stack() else {
        return;
    };
    // The broker as scripts/services.sh starts it now, with its configured
    // storage, not one left running by an earlier configuration.
    BrokerDown::stop().start();
    let real = Backend::Real(stack.clone());
    let kafka: Arc<BaseConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &stack.kafka_brokers)
            .set("group.id", "broker-restart-test")
            .create()
            .unwrap(),
    );
    let servers = Arc::new([start(&real, &[]).await, start(&real, &[]).await]);
    let [a, b] = &*servers;
    up(a).await;
    up(b).await;
    a.event("e", STOCK, json!({"activeCapacity": 10_000})).await;

    // Before: both instances sell.
    let before = Arc::new(Mutex::new(Tally::default()));
    for i in 0..10 {
        purchase(&servers[i % 2], "e", &format!("pre-{i}"), &before).await;
    }
    let pre = std::mem::take(&mut before.lock().await.sold);
    assert_eq!(pre.len(), 10, "all sold before the outage");
    let reserved_topic = format!("{}.ticket.reserved", stack.namespace);
    let on_topic_before = eventually(DEADLINE, "the sales on ticket.reserved", || async {
        let n = records(&kafka, &reserved_topic).await;
        (n >= 10).then_some(n)
    })
    .await;

    // Buyers keep coming through the outage and after it.
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(buyers(
        servers.clone(),
        "e",
        "during",
        tally.clone(),
        stop.clone(),
    ));

    let outage = BrokerDown::stop();
    kafka_down(a).await;
    kafka_down(b).await;
    eventually(
        DEADLINE,
        "buyers refused with 503 during the outage",
        || async { (tally.lock().await.unavailable >= 10).then_some(()) },
    )
    .await;
    let sold_during_outage = tally.lock().await.sold.len();
    outage.start();

    // Back: the same instances resume by themselves.
    up(a).await;
    up(b).await;
    let again = "sales again after the restart (a broker that is up but answers \
                 nothing: see its log, kafka.log in scripts/services.sh's data directory)";
    eventually(DEADLINE, again, || async {
        (tally.lock().await.sold.len() >= sold_during_outage + 20).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("no buyer saw a wrong answer");
    let tally = Arc::try_unwrap(tally).unwrap().into_inner();
    let accepted: Vec<String> = pre.into_iter().chain(tally.sold).collect();

    // Nothing lost: every accepted reservation reaches PostgreSQL, and the
    // counts agree on both instances.
    for id in &accepted {
        let path = format!("/api/v1/tickets/{id}");
        eventually(DEADLINE, &format!("{id} CONFIRMED"), || async {
            let (status, t) = b.get(&path).await;
            (status == StatusCode::OK && t["status"] == "CONFIRMED").then_some(())
        })
        .await;
    }
    for s in [a, b] {
        assert_eq!(sold_count(s, "e").await, accepted.len() as u64);
    }
    let on_topic_after = records(&kafka, &reserved_topic).await;
    assert!(
        on_topic_after >= on_topic_before + (accepted.len() as i64 - 10),
        "the broker kept the topic's records across its restart \
         ({on_topic_before} before, {on_topic_after} after, {} sold since): \
         is its storage durable (scripts/services.sh, TANSU_STORAGE)?",
        accepted.len() - 10
    );

    // verify's checks 1 and 2 against the same instances, afterwards.
    let mut opts = Options::defaults();
    opts.quiet = true;
    opts.checks = vec![CheckName::Oversell, CheckName::Tokens];
    opts.redis_url = Some(stack.redis_url.clone());
    opts.kafka_brokers = Some(stack.kafka_brokers.clone());
    opts.postgres_url = Some(stack.postgres_url.clone());
    opts.namespace = stack.namespace.clone();
    let both =
        Target::external_many(&[a.base.clone(), b.base.clone()], Some(&a.admin_token)).unwrap();
    let verdict = run_against(&both, &opts).await.unwrap().verdict;
    assert!(verdict.pass, "{}", verdict.human());
    assert!(
        verdict.checks.iter().any(|c| c.check == "stores"),
        "check 2 ran: {}",
        verdict.human()
    );

    let servers = Arc::try_unwrap(servers).unwrap_or_else(|_| panic!("buyers still running"));
    for s in servers {
        s.stop().await.unwrap();
    }
    drop(kafka);
}
