//! Check 2, nothing lost between stores (in the style of Jepsen's
//! total-queue checker): per reservation id, the ok responses against the
//! stock authority (Redis), the event log (Kafka) and the system of record
//! (PostgreSQL). Lost, duplicated, unexpected and recovered ids are reported;
//! duplicates may appear on Kafka, never in PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::fault;
use crate::history::OpKind;
use crate::scenarios::race::{RaceRun, Resolution};
use crate::stores::Observed;
use crate::verdict::{CheckReport, Status};

/// The ok responses' reservation ids of a race.
pub fn accepted(run: &RaceRun) -> BTreeSet<String> {
    run.buyers
        .iter()
        .filter_map(|b| b.reserve.as_ref())
        .filter(|c| c.reply.kind() == OpKind::Ok)
        .filter_map(|c| c.reply.str_field("reservationId").map(str::to_owned))
        .collect()
}

pub fn judge(run: &RaceRun, seen: &Observed, deadline_secs: u64) -> CheckReport {
    let ok = accepted(run);
    let recovered_allowance = run
        .buyers
        .iter()
        .filter(|b| b.resolution == Some(Resolution::Happened))
        .count();
    let count = |ids: &[String]| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for id in ids {
            *m.entry(id.clone()).or_default() += 1;
        }
        m
    };
    let pg = count(&seen.postgres);
    let kafka = count(&seen.kafka);
    let pg_ids: BTreeSet<String> = pg.keys().cloned().collect();
    let kafka_ids: BTreeSet<String> = kafka.keys().cloned().collect();

    let lost: Vec<String> = ok.difference(&pg_ids).cloned().collect();
    let missing_redis: Vec<String> = ok.difference(&seen.redis).cloned().collect();
    let missing_kafka: Vec<String> = ok.difference(&kafka_ids).cloned().collect();
    let pg_dups: Vec<String> = pg
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| format!("{id} x{n}"))
        .collect();
    let kafka_dups = kafka.values().filter(|n| **n > 1).count();
    let everywhere: BTreeSet<String> = pg_ids
        .union(&seen.redis)
        .cloned()
        .collect::<BTreeSet<_>>()
        .union(&kafka_ids)
        .cloned()
        .collect();
    let foreign: Vec<String> = everywhere.difference(&ok).cloned().collect();
    // Ids nobody was told about can only be explained by unknown outcomes
    // resolved as "happened", and then they must be in every store.
    let recovered: Vec<String> = if foreign.len() <= recovered_allowance {
        foreign
            .iter()
            .filter(|id| {
                pg_ids.contains(*id) && seen.redis.contains(*id) && kafka_ids.contains(*id)
            })
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let unexpected: Vec<String> = foreign
        .iter()
        .filter(|id| !recovered.contains(id))
        .cloned()
        .collect();

    let mut failures = Vec::new();
    let mut witness = seen.errors.clone();
    if !seen.errors.is_empty() {
        failures.push(format!("{} stores could not be read", seen.errors.len()));
    }
    let lost_witness: Vec<String> = lost.iter().map(|id| format!("lost: {id}")).collect();
    fault(&mut failures, &mut witness, &lost_witness, 5, |k| {
        format!("{k} accepted reservations not in PostgreSQL after {deadline_secs} s")
    });
    fault(&mut failures, &mut witness, &pg_dups, 5, |k| {
        format!("{k} reservations duplicated in PostgreSQL")
    });
    fault(&mut failures, &mut witness, &missing_redis, 5, |k| {
        format!("{k} accepted reservations not recorded in Redis")
    });
    fault(&mut failures, &mut witness, &missing_kafka, 5, |k| {
        format!("{k} accepted reservations never on Kafka")
    });
    let unexpected_witness: Vec<String> = unexpected
        .iter()
        .map(|id| format!("unexpected: {id}"))
        .collect();
    fault(&mut failures, &mut witness, &unexpected_witness, 5, |k| {
        format!("{k} reservations in the stores that no client was given")
    });

    let mut summary = format!(
        "{} accepted: {} in Redis, {} in PostgreSQL{}, {} on Kafka ({} duplicated there); {} lost / {} unexpected / {} recovered",
        ok.len(),
        seen.redis.len(),
        pg_ids.len(),
        seen.postgres_complete_ms
            .map(|ms| format!(" (all within {:.1} s)", ms as f64 / 1000.0))
            .unwrap_or_default(),
        kafka_ids.len(),
        kafka_dups,
        lost.len(),
        unexpected.len(),
        recovered.len()
    );
    if let Some(f) = failures.first() {
        summary.push_str(&format!(" — {f}"));
    }
    CheckReport {
        check: "stores",
        name: format!("{} (run {})", run.spec.label(), run.run),
        status: Status::of(failures.is_empty()),
        pass: failures.is_empty(),
        summary,
        witness,
        details: json!({
            "eventId": run.event_id,
            "accepted": ok.len(),
            "redis": seen.redis.len(),
            "postgres": pg_ids.len(),
            "postgresRows": seen.postgres.len(),
            "kafka": kafka_ids.len(),
            "kafkaMessages": seen.kafka.len(),
            "kafkaDuplicated": kafka_dups,
            "lost": lost,
            "duplicatedInPostgres": pg_dups,
            "unexpected": unexpected,
            "recovered": recovered,
            "postgresCompleteMs": seen.postgres_complete_ms,
            "deadlineSeconds": deadline_secs,
            "failures": failures,
        }),
    }
}
