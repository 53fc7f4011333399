//! The real stack on a Redis Cluster of three primaries
//! (`scripts/services.sh start-cluster`, its URL in `REDIS_CLUSTER_URL`):
//! each event's keys live on the one shard that owns its hash tag, a sale
//! on every shard works end to end, and a script over keys without the
//! shared tag is refused (the negative control: the tag is what makes the
//! scripts legal on a cluster).
//!
//! The contract, race and seat-map suites run on the cluster too:
//! `scripts/test.d/35-redis-cluster.sh` runs their real-stack tests with
//! `REDIS_URL` set to the cluster's URL, then these. Ignored by default
//! because they need the cluster, which that suite starts and stops.

mod common;

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::time::Duration;

use common::active_token;
use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::{eventually, real_stack, start, Backend, RealStack};
use ticket_server::backend::stack::error::StackError;
use ticket_server::backend::stack::keys::EventKeys;
use ticket_server::backend::stack::lua::RedisScripts;
use ticket_server::backend::stack::redis_conn::{RedisConn, RedisTarget};

const NEEDS: &str = "needs the local Redis Cluster: scripts/test.d/35-redis-cluster.sh";

/// The real stack with the cluster as its Redis, in a fresh namespace.
/// These tests run only when asked for, so a missing cluster fails them.
fn cluster_stack() -> RealStack {
    let url = std::env::var("REDIS_CLUSTER_URL").unwrap_or_else(|_| {
        panic!("REDIS_CLUSTER_URL unset: scripts/services.sh start-cluster; eval \"$(scripts/services.sh env)\"")
    });
    let mut stack =
        real_stack().expect("the rest of the real stack (KAFKA_BROKERS, POSTGRES_URL) unset");
    stack.redis_url = url;
    stack
}

/// One node, spoken to directly (not through the cluster client), so that
/// what it holds itself can be asked.
async fn node(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .unwrap_or_else(|_| panic!("{url}: no connection within 5 s"))
    .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// Each primary's address and the slots it serves, from `CLUSTER NODES`.
async fn primaries(seed: &str) -> Vec<(String, Vec<RangeInclusive<u16>>)> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut node(seed).await)
        .await
        .unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 || !fields[2].contains("master") {
            continue;
        }
        let addr = fields[1].split('@').next().unwrap().to_owned();
        // Slot fields are `N` or `A-B`; `[...]` marks a migration in flight.
        let slots: Vec<RangeInclusive<u16>> = fields[8..]
            .iter()
            .filter(|f| !f.starts_with('['))
            .map(|f| match f.split_once('-') {
                Some((a, b)) => a.parse().unwrap()..=b.parse().unwrap(),
                None => {
                    let n = f.parse().unwrap();
                    n..=n
                }
            })
            .collect();
        out.push((addr, slots));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn keyslot(con: &mut redis::aio::MultiplexedConnection, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(con)
        .await
        .unwrap()
}

/// The seed nodes of a `redis+cluster://` URL, as `redis://` URLs.
fn seeds(cluster_url: &str) -> Vec<String> {
    match RedisTarget::parse(cluster_url).unwrap() {
        RedisTarget::Cluster(nodes) => nodes,
        other => panic!("REDIS_CLUSTER_URL is not a cluster URL: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local Redis Cluster: scripts/test.d/35-redis-cluster.sh"]
async fn each_event_lives_on_one_shard_and_sales_work_on_every_shard() {
    let stack = cluster_stack();
    let seed = seeds(&stack.redis_url)[0].clone();
    let primaries = primaries(&seed).await;
    assert!(
        primaries.len() >= 3,
        "{NEEDS}: a cluster of three primaries, got {primaries:?}"
    );
    // One event per primary: the first id whose hash tag that primary owns.
    let mut seed_con = node(&seed).await;
    let mut events = Vec::new();
    for (addr, slots) in &primaries {
        let mut i = 0;
        let id = loop {
            let id = format!("e{i}");
            let slot = keyslot(&mut seed_con, &EventKeys::new(&stack.namespace, &id).meta).await;
            if slots.iter().any(|r| r.contains(&slot)) {
                break id;
            }
            i += 1;
            assert!(i < 10_000, "no event id lands on {addr}");
        };
        events.push((id, addr.clone()));
    }

    let s = start(&Backend::Real(stack.clone()), &[]).await;
    for (event, _) in &events {
        s.event(event, 5, json!({})).await;
        let token = active_token(&s, event, "alice").await;
        let (status, r) = s.reserve(Some(token.as_str()), event, json!(1)).await;
        assert_eq!(status, StatusCode::OK, "{event}: {r}");
        let state = s.event_state(event).await;
        assert_eq!(
            (state["sold"].clone(), state["remaining"].clone()),
            (json!(1), json!(4)),
            "{state}"
        );
        let id = r["reservationId"].as_str().unwrap().to_owned();
        eventually(
            Duration::from_secs(20),
            "the reservation CONFIRMED",
            || async {
                let (status, t) = s.get(&format!("/api/v1/tickets/{id}")).await;
                assert_eq!(status, StatusCode::OK, "{t}");
                (t["status"] == "CONFIRMED").then_some(())
            },
        )
        .await;
    }

    // Every key of an event hashes to one slot, and that slot's keys are on
    // its owner and nowhere else.
    let mut owners = BTreeSet::new();
    for (event, owner) in &events {
        let keys = EventKeys::new(&stack.namespace, event);
        let mut slots = BTreeSet::new();
        for key in keys.for_script() {
            slots.insert(keyslot(&mut seed_con, key).await);
        }
        assert_eq!(slots.len(), 1, "{event}'s keys span slots {slots:?}");
        let slot = *slots.first().unwrap();
        for (addr, _) in &primaries {
            let held: u64 = redis::cmd("CLUSTER")
                .arg("COUNTKEYSINSLOT")
                .arg(slot)
                .query_async(&mut node(&format!("redis://{addr}")).await)
                .await
                .unwrap();
            if addr == owner {
                // meta, state, entries, seqs, done, bought, res, adm at least.
                assert!(held >= 8, "{event} on {addr}: {held} keys in slot {slot}");
                owners.insert(addr.clone());
            } else {
                assert_eq!(held, 0, "{event}'s slot {slot} has keys on {addr} too");
            }
        }
        // Asked directly, the owner answers for the key itself (another
        // node would answer MOVED).
        let sold: Option<String> = redis::cmd("HGET")
            .arg(&keys.state)
            .arg("sold")
            .query_async(&mut node(&format!("redis://{owner}")).await)
            .await
            .unwrap();
        assert_eq!(sold.as_deref(), Some("1"), "{event}'s state on {owner}");
    }
    assert_eq!(owners.len(), primaries.len(), "every shard sold");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local Redis Cluster: scripts/test.d/35-redis-cluster.sh"]
async fn a_script_over_keys_without_the_shared_tag_is_refused() {
    let stack = cluster_stack();
    let mut redis = RedisConn::connect(&RedisTarget::parse(&stack.redis_url).unwrap())
        .await
        .unwrap();
    let scripts = RedisScripts::new();
    let create = |keys: &EventKeys| {
        scripts
            .create
            .on(keys)
            .arg(5)
            .arg(1)
            .arg(10)
            .arg(60)
            .arg("")
    };
    let tagged = EventKeys::new(&stack.namespace, "e1");
    let created: Value = create(&tagged).run(&mut redis).await.unwrap();
    assert_eq!(created, json!({"created": true}));

    // The same keys without the braces hash each name on its own.
    let mut untagged = EventKeys::new(&stack.namespace, "e2");
    for key in [
        &mut untagged.meta,
        &mut untagged.state,
        &mut untagged.entries,
        &mut untagged.seqs,
        &mut untagged.active,
        &mut untagged.done,
        &mut untagged.bought,
        &mut untagged.reservations,
        &mut untagged.pending,
        &mut untagged.admissions,
    ] {
        key.retain(|c| c != '{' && c != '}');
    }
    let refused = create(&untagged).run::<Value>(&mut redis).await;
    match refused.expect_err("the cluster ran a script over several slots") {
        StackError::Redis(e) => assert!(
            matches!(
                e.kind(),
                redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot)
            ),
            "{e}"
        ),
        other => panic!("not Redis' refusal: {other}"),
    }
    let exists: u64 = redis::cmd("EXISTS")
        .arg(&untagged.meta)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(exists, 0, "the refused script wrote nothing");
}
