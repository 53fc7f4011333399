//! The operations view: `GET /api/v1/concerts` on both backends, and every
//! metric the alerting rules (`deploy/prometheus/alerts.yml`) and the
//! Grafana dashboard (`deploy/grafana/ticketbench.json`) query is one the
//! server exports on the real stack. (`promtool` checks the rules
//! themselves: `scripts/test.d/45-prometheus-rules.sh`.)

mod common;

use std::collections::BTreeSet;

use common::{charge, concert, create_concert, hold_seat, pay, PRICE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::{on_both_stacks, start, Backend};

on_both_stacks!(open_concerts_are_listed, [], |s| {
    assert_eq!(s.get("/api/v1/concerts").await, (StatusCode::OK, json!([])));
    concert(&s, "c1", 100).await;
    let (status, made) = create_concert(
        &s,
        json!({"concertId": "c0", "schedules": [
            {"scheduleId": "late", "date": "2027-01-02", "seatCount": 1, "price": 5},
            {"scheduleId": "early", "date": "2027-01-01", "seatCount": 2, "price": 5}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let c1 = json!({"concertId": "c1", "name": "Winter tour", "schedules": [
        {"scheduleId": "s1", "date": "2026-12-24", "availableSeats": 10},
        {"scheduleId": "s2", "date": "2026-12-25", "availableSeats": 50}]});
    assert_eq!(
        s.get("/api/v1/concerts").await,
        (
            StatusCode::OK,
            json!([
                {"concertId": "c0", "schedules": [
                    {"scheduleId": "early", "date": "2027-01-01", "availableSeats": 2},
                    {"scheduleId": "late", "date": "2027-01-02", "availableSeats": 1}]},
                c1
            ])
        )
    );
    // Held or paid, c0's seats close its schedules one by one, then c0.
    let token = s.token("c0", "alice").await;
    charge(&s, "alice", json!(PRICE)).await;
    let path = "/api/v1/concerts/c0/reservations";
    let held = s
        .post_with_token(
            Some(&token),
            path,
            json!({"scheduleId": "late", "seatNumber": 1}),
        )
        .await;
    assert_eq!(held.0, StatusCode::CREATED, "{}", held.1);
    let (_, listed) = s.get("/api/v1/concerts").await;
    assert_eq!(
        listed[0]["schedules"],
        json!([
        {"scheduleId": "early", "date": "2027-01-01", "availableSeats": 2}])
    );
    let (status, paid) = pay(&s, &token, &held.1["reservationId"], None).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    for (user, seat) in [("bob", 1), ("carol", 2)] {
        let t = s.token("c0", user).await;
        let held = s
            .post_with_token(
                Some(&t),
                path,
                json!({"scheduleId": "early", "seatNumber": seat}),
            )
            .await;
        assert_eq!(held.0, StatusCode::CREATED, "{}", held.1);
    }
    assert_eq!(
        s.get("/api/v1/concerts").await,
        (StatusCode::OK, json!([c1]))
    );
    s.stop().await.unwrap();
});

/// The PromQL expressions of the rules file: each `expr:`, inline or as
/// an indented block.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((before, rest)) = line.split_once("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest != "|" {
            out.push(rest.to_owned());
            continue;
        }
        let indent = before.len();
        let block: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.len() - l.trim_start().len() > indent)
            .map(|l| l.trim())
            .collect();
        out.push(block.join(" "));
    }
    out
}

/// The metric names an expression reads: identifiers that are not
/// functions, keywords, label names (in `{}` or `by ()`), durations or
/// recorded series (`a:b:c`, checked by promtool against the rules).
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Drop label matchers, ranges and grouping clauses.
    let mut text = String::new();
    let mut depth = 0;
    for c in expr.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth == 0 => text.push(c),
            _ => {}
        }
    }
    for clause in ["by", "without", "on", "ignoring"] {
        while let Some(at) = text.find(&format!("{clause} (")) {
            let end = at + text[at..].find(')').unwrap() + 1;
            text.replace_range(at..end, " ");
        }
    }
    let keywords = ["and", "or", "unless", "bool", "offset"];
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        let called = after.trim_start().starts_with('(');
        if !called && !keywords.contains(&word) && !word.contains(':') {
            names.insert(word.to_owned());
        }
        rest = after;
    }
    names
}

/// The names a `/metrics` text exports: each family's (`# TYPE`) and
/// each sample's (`_total`, `_bucket`, ...).
fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| match l.strip_prefix("# TYPE ") {
            Some(t) => t.split(' ').next(),
            None if l.starts_with('#') => None,
            None => l.split(['{', ' ']).next(),
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_expression_reader_finds_metrics_and_nothing_else() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{route=~"a.*"}[5m]))) > 3"#
        ),
        BTreeSet::from(["http_request_duration_seconds_bucket".to_owned()])
    );
    assert_eq!(
        metric_names(
            "max(a_bytes) / max(b_bytes) > 0.8 and max(b_bytes) > 0 + ticketbench:x:ratio"
        ),
        BTreeSet::from(["a_bytes".to_owned(), "b_bytes".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_query_is_exported() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    let board: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/ticketbench.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = rule_exprs(&rules);
    assert!(exprs.len() >= 10, "rules read: {exprs:?}");
    let panels = board["panels"].as_array().unwrap();
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    let wanted: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(wanted.len() >= 10, "metrics queried: {wanted:?}");

    let Some(real) = Backend::real() else {
        return;
    };
    let s = start(
        &real,
        &["--seat-lock", "redis-lock", "--seat-cache-ttl", "1s"],
    )
    .await;
    // One of everything, so that the labelled families have samples.
    concert(&s, "c1", 100).await;
    let token = s.token("c1", "alice").await;
    charge(&s, "alice", json!(PRICE)).await;
    let (_, held) = hold_seat(&s, &token, "c1", 1).await;
    pay(&s, &token, &held["reservationId"], None).await;
    let have = exported(&s.metrics().await);
    let missing: Vec<&String> = wanted.iter().filter(|m| !have.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\nexported: {have:?}"
    );
    // Control: the check can fail.
    assert!(!have.contains("no_such_metric_total"));
    s.stop().await.unwrap();
}

/// The `queue.activated` records of `event` on `topic`, read from the
/// beginning until `until` holds for them or 20 s pass.
fn activated_records(
    brokers: &str,
    topic: &str,
    event: &str,
    until: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "ops-view-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut assigned = false;
    while std::time::Instant::now() < deadline {
        if !assigned {
            // The topic appears with the server's first pass.
            let meta = consumer.fetch_metadata(Some(topic), std::time::Duration::from_secs(2));
            let partitions = meta.ok().and_then(|m| {
                let t = m.topics().iter().find(|t| t.name() == topic)?;
                (!t.partitions().is_empty()).then(|| t.partitions().len())
            });
            if let Some(n) = partitions {
                let mut tpl = TopicPartitionList::new();
                for p in 0..n as i32 {
                    tpl.add_partition_offset(topic, p, Offset::Beginning)
                        .unwrap();
                }
                consumer.assign(&tpl).unwrap();
                assigned = true;
            } else {
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        }
        if let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(200)) {
            let v: Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            if v["eventId"] == event {
                seen.push(v);
            }
        }
        if until(&seen) {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_is_published_as_queue_activated() {
    let Some(real) = Backend::real() else {
        return;
    };
    let Backend::Real(stack) = &real else {
        unreachable!()
    };
    let s = start(&real, &[]).await;
    s.event("ev", 10, json!({"activeCapacity": 1})).await;
    let alice = s.enter("ev", "alice").await;
    assert_eq!(alice["status"], "ACTIVE", "{alice}");
    assert_eq!(s.enter("ev", "bob").await["status"], "WAITING");
    assert_eq!(s.enter("ev", "carol").await["status"], "WAITING");
    // Alice buys: her slot goes to bob.
    let (status, bought) = s.reserve(alice["token"].as_str(), "ev", json!(1)).await;
    assert_eq!(status, StatusCode::OK, "{bought}");
    let topic = ticket_server::backend::stack::activations::topic(&stack.namespace);
    let brokers = stack.kafka_brokers.clone();
    let records = tokio::task::spawn_blocking(move || {
        activated_records(&brokers, &topic, "ev", |seen| {
            seen.iter().any(|r| r["userId"] == "bob")
        })
    })
    .await
    .unwrap();
    let users: BTreeSet<(String, u64)> = records
        .iter()
        .map(|r| {
            (
                r["userId"].as_str().unwrap().to_owned(),
                r["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    // Carol, still WAITING, was never published: only admissions are.
    assert_eq!(
        users,
        BTreeSet::from([("alice".to_owned(), 0), ("bob".to_owned(), 1)]),
        "{records:?}"
    );
    for r in &records {
        assert_eq!(r["type"], "queue.activated");
        assert_eq!(r["id"], format!("queue.activated:ev:{}", r["seq"]));
    }
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_publishes_every_admission_once_in_order() {
    let Some(real) = Backend::real() else {
        return;
    };
    let Backend::Real(stack) = &real else {
        unreachable!()
    };
    let s = start(&real, &[]).await;
    // Twenty admitted at entry: one pass publishes them together (the
    // producer batches them), and the partition keeps their order.
    s.event("ev", 100, json!({"activeCapacity": 20})).await;
    for i in 0..20 {
        let entered = s.enter("ev", &format!("u{i:02}")).await;
        assert_eq!(entered["status"], "ACTIVE", "{entered}");
    }
    let topic = ticket_server::backend::stack::activations::topic(&stack.namespace);
    let brokers = stack.kafka_brokers.clone();
    let records = tokio::task::spawn_blocking(move || {
        activated_records(&brokers, &topic, "ev", |seen| seen.len() >= 20)
    })
    .await
    .unwrap();
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..20).collect::<Vec<u64>>(), "{records:?}");
    s.stop().await.unwrap();
}
