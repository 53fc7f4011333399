//! Check 2 on the seat map, in the style of the reservations' part: what
//! clients were told (201 holds, successful payments) against PostgreSQL,
//! and the events PostgreSQL's rows imply against the seat-map topics.
//! Lost (committed, never on a topic), unexpected (on a topic, never
//! committed), recovered (on a topic only through the server's outbox
//! relay, its first send having failed) and duplicated events are
//! reported; duplicates are allowed (consumers de-duplicate by event id).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use ticket_server::backend::stack::messages::Via;
use ticket_server::concert::SeatEvent;

use super::fault;
use crate::scenarios::seatmap::SeatRun;
use crate::stores::{EventKey, SeatObserved};
use crate::verdict::{CheckReport, Status};

pub fn judge(run: &SeatRun, seen: &SeatObserved, deadline_secs: u64) -> CheckReport {
    let [created, paid, expired] = SeatEvent::ALL.map(SeatEvent::topic);
    let in_pg = |kind: &str, id: &str| {
        seen.expected_after
            .contains(&(kind.to_owned(), id.to_owned()))
    };
    // What clients were told must be in the system of record.
    let told_held: BTreeSet<&str> = run
        .holds
        .iter()
        .map(|h| h.reservation_id.as_str())
        .collect();
    let told_paid: BTreeSet<&str> = run
        .pays
        .iter()
        .filter(|p| p.call.reply.is_success())
        .map(|p| p.reservation_id.as_str())
        .collect();
    let not_in_pg: Vec<String> = told_held
        .iter()
        .filter(|id| !in_pg(created, id))
        .map(|id| format!("hold {id} answered 201, not in PostgreSQL"))
        .chain(
            told_paid
                .iter()
                .filter(|id| !in_pg(paid, id))
                .map(|id| format!("payment of {id} answered 200, not in PostgreSQL")),
        )
        .collect();

    let mut copies: BTreeMap<&EventKey, Vec<Option<Via>>> = BTreeMap::new();
    for (key, via) in &seen.kafka {
        copies.entry(key).or_default().push(*via);
    }
    let name = |(kind, id): &EventKey| format!("{kind} {id}");
    let lost: Vec<String> = seen
        .expected
        .iter()
        .filter(|k| !copies.contains_key(k))
        .map(|k| format!("lost: {}", name(k)))
        .collect();
    let recovered: Vec<String> = seen
        .expected
        .iter()
        .filter(|k| {
            copies
                .get(k)
                .is_some_and(|v| v.iter().all(|via| *via == Some(Via::Relay)))
        })
        .map(name)
        .collect();
    let duplicated = copies.values().filter(|v| v.len() > 1).count();
    let unexpected: Vec<String> = copies
        .keys()
        .filter(|k| !seen.expected_after.contains(*k))
        .map(|k| format!("unexpected: {}", name(k)))
        .collect();
    let per_kind = |kind: &str| seen.expected.iter().filter(|(k, _)| k == kind).count();

    let mut failures = Vec::new();
    let mut witness = seen.errors.clone();
    if !seen.errors.is_empty() {
        failures.push(format!("{} stores could not be read", seen.errors.len()));
    }
    fault(&mut failures, &mut witness, &not_in_pg, 5, |k| {
        format!("{k} holds or payments told ok are not in PostgreSQL")
    });
    fault(&mut failures, &mut witness, &lost, 5, |k| {
        format!("{k} committed seat events not on Kafka ({deadline_secs} s allowed)")
    });
    fault(&mut failures, &mut witness, &unexpected, 5, |k| {
        format!("{k} seat events on Kafka that PostgreSQL never committed")
    });

    let mut summary = format!(
        "{} seat events in PostgreSQL ({} created, {} paid, {} expired), {} on Kafka ({} copies, {} duplicated); {} lost / {} recovered by the relay / {} unexpected",
        seen.expected.len(),
        per_kind(created),
        per_kind(paid),
        per_kind(expired),
        copies.len(),
        seen.kafka.len(),
        duplicated,
        lost.len(),
        recovered.len(),
        unexpected.len(),
    );
    if let Some(f) = failures.first() {
        summary.push_str(&format!(" — {f}"));
    }
    CheckReport {
        check: "stores",
        name: format!("seat-map events of {}", run.concert_id),
        status: Status::of(failures.is_empty()),
        pass: failures.is_empty(),
        summary,
        witness,
        details: json!({
            "concertId": run.concert_id,
            "expected": seen.expected.len(),
            "created": per_kind(created),
            "paid": per_kind(paid),
            "expired": per_kind(expired),
            "onKafka": copies.len(),
            "kafkaMessages": seen.kafka.len(),
            "duplicated": duplicated,
            "lost": lost,
            "recovered": recovered,
            "unexpected": unexpected,
            "notInPostgres": not_in_pg,
            "outboxUnsent": seen.unsent,
            "outboxDrainedMs": seen.drained_ms,
            "deadlineSeconds": deadline_secs,
            "failures": failures,
        }),
    }
}
