//! `--expiry delayed`: expiry by delayed message, as the design proposes:
//! a consumer of `reservation.created` releases each unpaid hold at its
//! deadline, and until then the seat reads HELD (nothing else frees it).
//!
//! The broker (tansu) has no delayed topics or scheduled delivery, so the
//! delay is kept by the consumer: it reads each record at once, asks
//! PostgreSQL for the hold's remaining time (the deadline is PostgreSQL's
//! `expires_at`, so no two clocks are compared) and sets a timer; a timer
//! task releases the due holds in batches (the sweeper's release, by id).
//!
//! Surviving an instance's death: the consumer runs on leased partitions
//! like the others (see [`super::super::kafka`]), and the offset it stores
//! in PostgreSQL for a partition never passes a record whose hold is still
//! waiting: it is the earliest waiting record's offset (or, with none
//! waiting, the next one to read). A survivor that takes the partition
//! over reads again from there and sets the timers anew; records whose
//! holds were paid or released meanwhile are skipped (the release is
//! conditional on the hold being HELD and lapsed, so a repeat is a no-op).
//! The cost: the stored offset stays up to one hold's time behind, so
//! `kafka_consumer_lag{consumer="expiry"}` counts the holds waiting for
//! their deadline, and a takeover re-reads them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::super::error::StackError;
use super::super::kafka::{self, NextOffsets, Record, Unit};
use super::super::messages::SeatEventRecord;
use super::super::seat_options::Expiry;
use super::super::{pg, Stack, StackOptions};
use crate::concert::SeatEvent;

/// The consumer's name in `consumer_offsets` and its leases.
const CONSUMER: &str = "expiry";
/// The consumer's `fetch.wait.max.ms`: a record is read well before its
/// deadline (a hold lasts seconds at least), so it need not fetch often.
const FETCH_WAIT_MS: u32 = 100;
/// Most holds released in one transaction.
const RELEASE_BATCH: usize = 500;
/// When a release failed (PostgreSQL away), how soon it is tried again.
const RETRY: Duration = Duration::from_millis(500);
/// The negative control's error: every release this late.
const UNSAFE_LATE: Duration = Duration::from_secs(10);

/// One waiting record: where it is on the broker.
type Place = (Unit, i64);

/// The consumer's and the timer task's shared state.
#[derive(Default)]
struct Waiting {
    /// Per partition: the next offset read, and the offsets of records
    /// whose holds still wait.
    parts: BTreeMap<Unit, Part>,
    /// Due time and reservation id -> the records naming it.
    timers: BTreeMap<(Instant, String), Vec<Place>>,
}

#[derive(Default)]
struct Part {
    read_next: i64,
    waiting: BTreeSet<i64>,
}

impl Waiting {
    /// The offset safe to store for `unit`: no waiting record at or after
    /// it is skipped by a reader starting there.
    fn safe_offset(&self, unit: &Unit) -> Option<i64> {
        let part = self.parts.get(unit)?;
        Some(part.waiting.first().copied().unwrap_or(part.read_next))
    }

    fn resolve(&mut self, places: &[Place]) {
        for (unit, offset) in places {
            if let Some(part) = self.parts.get_mut(unit) {
                part.waiting.remove(offset);
            }
        }
    }

    fn schedule(&mut self, due: Instant, reservation_id: String, place: Place) {
        let part = self.parts.entry(place.0.clone()).or_default();
        part.waiting.insert(place.1);
        let places = self.timers.entry((due, reservation_id)).or_default();
        if !places.contains(&place) {
            places.push(place);
        }
    }

    /// Takes up to a batch of the timers due by `now`.
    fn take_due(&mut self, now: Instant) -> Vec<(String, Vec<Place>)> {
        let mut due = Vec::new();
        while due.len() < RELEASE_BATCH {
            match self.timers.first_key_value() {
                Some(((at, _), _)) if *at <= now => {}
                _ => break,
            }
            let ((_, rid), places) = self.timers.pop_first().expect("a first timer");
            due.push((rid, places));
        }
        due
    }

    /// The offsets safe to store for `units`, per topic.
    fn offsets(&self, units: impl IntoIterator<Item = Unit>) -> NextOffsets {
        let mut out = NextOffsets::new();
        for unit in units {
            if let Some(next) = self.safe_offset(&unit) {
                out.entry(unit.0.clone()).or_default().insert(unit.1, next);
            }
        }
        out
    }
}

#[derive(Clone)]
struct Expirer {
    stack: Stack,
    waiting: Arc<Mutex<Waiting>>,
    wake: Arc<Notify>,
    late: Duration,
}

impl Stack {
    /// Starts the delayed-expiry consumer and its timer task, under
    /// `--expiry delayed` only.
    pub(in crate::backend::stack) fn spawn_delayed_expiry(
        &self,
        options: &StackOptions,
        stop: watch::Receiver<bool>,
    ) {
        let seat = &self.seat_map.options;
        if seat.expiry != Expiry::Delayed {
            return;
        }
        let expirer = Expirer {
            stack: self.clone(),
            waiting: Default::default(),
            wake: Default::default(),
            late: if seat.unsafe_expiry {
                UNSAFE_LATE
            } else {
                Duration::ZERO
            },
        };
        tokio::spawn(expirer.clone().timer_loop(stop.clone()));
        let topic = self.topics.seat(SeatEvent::ReservationCreated);
        let units = kafka::partitions_of(topic, options.partitions);
        let spec = kafka::ConsumerSpec {
            brokers: options.kafka_brokers.clone(),
            postgres_url: options.postgres_url.clone(),
            schema: self.ns.clone(),
            consumer: CONSUMER,
            instance: options.instance_id.clone(),
            rebalance: Arc::new(Notify::new()),
            fetch_wait_ms: FETCH_WAIT_MS,
        };
        tokio::spawn(kafka::run_leased(
            spec,
            self.pg.clone(),
            stop,
            move || std::future::ready(Ok(units.clone())),
            move |records, next| {
                let expirer = expirer.clone();
                async move { expirer.schedule(records, next).await }
            },
        ));
    }
}

impl Expirer {
    /// The consumer's batch: a timer for each hold still HELD, then the
    /// safe offsets stored.
    async fn schedule(&self, records: Vec<Record>, next: NextOffsets) -> Result<(), StackError> {
        let mut named: Vec<(String, Place)> = Vec::with_capacity(records.len());
        for r in records {
            match serde_json::from_slice::<SeatEventRecord>(&r.payload) {
                Ok(ev) => named.push((ev.reservation_id, ((r.topic, r.partition), r.offset))),
                Err(_) => warn!(offset = r.offset, "malformed reservation.created skipped"),
            }
        }
        let ids: Vec<&str> = named.iter().map(|(rid, _)| rid.as_str()).collect();
        // The time left is PostgreSQL's, measured now: the timer runs on
        // this clock from here.
        let left = self.still_waiting(&ids).await?;
        let read_at = Instant::now();
        let offsets = {
            let mut waiting = self.waiting.lock().expect("expiry state");
            for (topic, parts) in &next {
                for (p, n) in parts {
                    let part = waiting.parts.entry((topic.clone(), *p)).or_default();
                    part.read_next = part.read_next.max(*n);
                }
            }
            for (rid, place) in named {
                if let Some(&ms) = left.get(&rid) {
                    let due = read_at + Duration::from_millis(ms.max(0) as u64) + self.late;
                    waiting.schedule(due, rid, place);
                }
            }
            let units = next
                .iter()
                .flat_map(|(t, parts)| parts.keys().map(move |p| (t.clone(), *p)));
            waiting.offsets(units.collect::<Vec<_>>())
        };
        self.wake.notify_one();
        let client = self.stack.pg.get().await?;
        for (topic, next) in &offsets {
            pg::store_offsets(&client, CONSUMER, topic, next).await?;
        }
        Ok(())
    }

    /// Sleeps until the earliest timer, releases what is due, stores the
    /// offsets that moved.
    async fn timer_loop(self, mut stop: watch::Receiver<bool>) {
        loop {
            let first = {
                let waiting = self.waiting.lock().expect("expiry state");
                waiting.timers.first_key_value().map(|((at, _), _)| *at)
            };
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                _ = stop.changed() => return,
                _ = self.wake.notified() => continue,
                _ = tokio::time::sleep_until(first.unwrap_or(far)) => {}
            }
            let due = self
                .waiting
                .lock()
                .expect("expiry state")
                .take_due(Instant::now());
            if !due.is_empty() {
                self.release(due).await;
            }
        }
    }

    /// Releases the due holds; a hold still HELD and not yet lapsed (a
    /// timer a little early) is set again, and a failed release retried.
    async fn release(&self, due: Vec<(String, Vec<Place>)>) {
        let ids: Vec<&str> = due.iter().map(|(rid, _)| rid.as_str()).collect();
        let released = self
            .stack
            .release_lapsed("SELECT unnest($1::text[])", &[&ids])
            .await;
        let again = match released {
            Ok(staged) => {
                self.stack.publish_staged(staged).await;
                self.still_waiting(&ids).await
            }
            Err(e) => {
                warn!(error = %e, "delayed expiry: release failed; retrying");
                Err(e)
            }
        };
        let offsets = {
            let mut waiting = self.waiting.lock().expect("expiry state");
            let mut touched = Vec::new();
            for (rid, places) in due {
                let retry_in = match &again {
                    Ok(left) => left
                        .get(&rid)
                        .map(|&ms| Duration::from_millis(ms.max(1) as u64)),
                    Err(_) => Some(RETRY),
                };
                match retry_in {
                    Some(d) => {
                        for place in places {
                            waiting.schedule(Instant::now() + d, rid.clone(), place);
                        }
                    }
                    None => {
                        waiting.resolve(&places);
                        touched.extend(places.into_iter().map(|(unit, _)| unit));
                    }
                }
            }
            waiting.offsets(touched)
        };
        if let Err(e) = self.store(&offsets).await {
            // A later batch or release stores them; a takeover meanwhile
            // only re-reads more.
            debug!(error = %e, "delayed expiry: offsets not stored");
        }
    }

    /// The holds of `ids` still HELD, with their time left (ms).
    async fn still_waiting(&self, ids: &[&str]) -> Result<BTreeMap<String, i64>, StackError> {
        let rows = self
            .stack
            .pg
            .get()
            .await?
            .query(
                "SELECT reservation_id,
                        floor(extract(epoch FROM expires_at - now()) * 1000)::bigint
                 FROM seat_reservations
                 WHERE reservation_id = ANY($1) AND status = 'HELD'",
                &[&ids],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn store(&self, offsets: &NextOffsets) -> Result<(), StackError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let client = self.stack.pg.get().await?;
        for (topic, next) in offsets {
            pg::store_offsets(&client, CONSUMER, topic, next).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(p: i32) -> Unit {
        ("t".to_owned(), p)
    }

    #[test]
    fn the_stored_offset_never_passes_a_waiting_record() {
        let mut w = Waiting::default();
        let now = Instant::now();
        w.parts.entry(unit(0)).or_default().read_next = 13;
        w.schedule(now + Duration::from_secs(2), "b".into(), (unit(0), 11));
        w.schedule(now + Duration::from_secs(1), "a".into(), (unit(0), 10));
        w.schedule(now + Duration::from_secs(3), "c".into(), (unit(0), 12));
        assert_eq!(w.safe_offset(&unit(0)), Some(10));
        // Only what is due is taken, earliest first.
        let due = w.take_due(now + Duration::from_millis(1500));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, "a");
        w.resolve(&due[0].1);
        assert_eq!(w.safe_offset(&unit(0)), Some(11));
        // A later record resolved first does not move the offset past 11.
        let due = w.take_due(now + Duration::from_secs(5));
        assert_eq!(
            due.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        w.resolve(&due[1].1);
        assert_eq!(w.safe_offset(&unit(0)), Some(11));
        w.resolve(&due[0].1);
        assert_eq!(w.safe_offset(&unit(0)), Some(13));
        assert_eq!(w.safe_offset(&unit(1)), None);
        assert_eq!(
            w.offsets([unit(0), unit(1)])["t"],
            BTreeMap::from([(0, 13)])
        );
    }

    #[test]
    fn a_record_read_twice_waits_once_per_place() {
        let mut w = Waiting::default();
        let due = Instant::now();
        w.schedule(due, "a".into(), (unit(0), 4));
        w.schedule(due, "a".into(), (unit(0), 4));
        w.schedule(due, "a".into(), (unit(1), 9));
        let taken = w.take_due(due);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].1.len(), 2);
        w.resolve(&taken[0].1);
        assert!(w.parts.values().all(|p| p.waiting.is_empty()));
    }
}
