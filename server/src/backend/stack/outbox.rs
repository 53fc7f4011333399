//! The seat-event outbox: a seat-map event is a row of `seat_outbox`
//! written in the same transaction as the hold, payment or expiry it
//! reports, so nothing committed can miss the topic.
//!
//! Two paths send it, and both mark the row sent:
//! - right after the commit, from the request (or the hold sweep), for
//!   latency ([`Stack::publish_staged`]);
//! - the relay, a background loop of every instance, for rows still unsent
//!   after [`RELAY_AFTER_MS`] (the first send failed, or the process died
//!   between commit and send). Instances take rows with `FOR UPDATE SKIP
//!   LOCKED`, so they never wait on each other nor send one row at once.
//!
//! A row can be sent twice (a slow first send overtaken by the relay, or a
//! crash between send and mark): duplicates are allowed, and the record's
//! stable `eventId` lets consumers drop them.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio::sync::watch;
use tracing::{info, warn};

use super::error::StackError;
use super::keys::Topics;
use super::messages::{Held, SeatEventRecord, Via};
use super::{delayed_interval, next_tick, Stack};
use crate::concert::{Payment, SeatEvent};

/// How long a row may stay unsent before the relay sends it: longer than a
/// healthy direct send takes, so the relay rarely duplicates one.
pub const RELAY_AFTER_MS: i64 = 2000;
/// How often the relay looks for unsent rows.
const RELAY_EVERY: Duration = Duration::from_millis(500);
/// Most rows one relay pass sends.
const RELAY_BATCH: i64 = 500;
/// Sent rows are kept this long (for inspection), then pruned.
const KEEP_SENT: &str = "1 hour";
/// Relay passes between two prunes (about a minute).
const PRUNE_EVERY_PASSES: u32 = 120;

/// A seat event written to the outbox, to send once its transaction commits.
pub struct Staged {
    topic: String,
    record: SeatEventRecord,
}

/// Writes the events to the outbox inside the caller's transaction `tx`;
/// they are sent only if it commits. An event already in the outbox (same
/// stable id) is left as it is.
pub(super) async fn stage(
    tx: &impl GenericClient,
    topics: &Topics,
    events: &[(SeatEvent, &Held, Option<&Payment>)],
) -> Result<Vec<Staged>, tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let staged: Vec<Staged> = events
        .iter()
        .map(|(event, held, payment)| Staged {
            topic: topics.seat(*event).to_owned(),
            record: SeatEventRecord::new(*event, held, *payment),
        })
        .collect();
    let ids: Vec<&str> = staged.iter().map(|s| s.record.event_id.as_str()).collect();
    let topic: Vec<&str> = staged.iter().map(|s| s.topic.as_str()).collect();
    let concerts: Vec<&str> = staged
        .iter()
        .map(|s| s.record.concert_id.as_str())
        .collect();
    let payloads: Vec<String> = staged
        .iter()
        .map(|s| serde_json::to_string(&s.record).unwrap_or_default())
        .collect();
    tx.execute(
        "INSERT INTO seat_outbox (event_id, topic, concert_id, payload)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (event_id) DO NOTHING",
        &[&ids, &topic, &concerts, &payloads],
    )
    .await?;
    Ok(staged)
}

impl Stack {
    /// Sends committed events at once and marks them sent. A failed send is
    /// only logged: the relay sends the row later. The caller must hold no
    /// pooled connection (marking takes one; holding two per request can
    /// exhaust the pool).
    pub(super) async fn publish_staged(&self, staged: Vec<Staged>) {
        if staged.is_empty() {
            return;
        }
        let mut sent = Vec::with_capacity(staged.len());
        for mut s in staged {
            if self.drop_seat_events {
                warn!(event = %s.record.event_id, "test hook: seat event not sent; the relay must send it");
                continue;
            }
            s.record.via = Some(Via::Commit);
            if self.send_seat_event(&s.topic, &s.record).await {
                sent.push(s.record.event_id);
            }
        }
        if sent.is_empty() {
            return;
        }
        let marked: Result<_, StackError> = match self.pg.get().await {
            Ok(client) => mark_sent(&client, &sent).await.map_err(Into::into),
            Err(e) => Err(e.into()),
        };
        match marked {
            Ok(marked) => self.count_published(&marked),
            // Sent but still unsent in the outbox: the relay sends it again.
            Err(e) => warn!(error = %e, "seat events sent but not marked"),
        }
    }

    /// The relay: sends outbox rows left unsent, on every instance, until
    /// the backend is dropped.
    pub(super) async fn outbox_relay_loop(self, mut stop: watch::Receiver<bool>) {
        let mut interval = delayed_interval(RELAY_EVERY);
        let mut passes = 0u32;
        while next_tick(&mut interval, &mut stop).await {
            match self.relay_once().await {
                Ok(0) => {}
                Ok(n) => info!(events = n, "outbox relay sent seat events"),
                Err(e) => tracing::debug!(error = %e, "outbox relay"),
            }
            passes += 1;
            if passes % PRUNE_EVERY_PASSES == 0 {
                if let Err(e) = self.prune_sent().await {
                    tracing::debug!(error = %e, "outbox prune");
                }
            }
        }
    }

    /// One relay pass: the oldest unsent rows no other instance is sending,
    /// sent and marked in one transaction (rows stay locked while they are
    /// sent, so instances skip them). Returns how many were sent.
    async fn relay_once(&self) -> Result<usize, StackError> {
        let mut client = self.pg.get().await?;
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "SELECT event_id, topic, payload FROM seat_outbox
                 WHERE sent_at IS NULL
                   AND created_at <= clock_timestamp() - $1 * interval '1 millisecond'
                 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[&(RELAY_AFTER_MS as f64), &RELAY_BATCH],
            )
            .await?;
        let mut sent = Vec::with_capacity(rows.len());
        for row in &rows {
            let (event_id, topic, payload): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            let Ok(mut record) = serde_json::from_str::<SeatEventRecord>(&payload) else {
                warn!(event = %event_id, "outbox row is not a seat event; left unsent");
                continue;
            };
            record.via = Some(Via::Relay);
            if !self.send_seat_event(&topic, &record).await {
                // The broker is likely down: keep the rest for the next pass.
                break;
            }
            sent.push(event_id);
        }
        let marked = mark_sent(&tx, &sent).await?;
        tx.commit().await?;
        self.metrics.seat_events_relayed.inc_by(marked.len() as u64);
        self.count_published(&marked);
        Ok(sent.len())
    }

    /// Forgets rows sent long ago, so the table does not grow for ever.
    async fn prune_sent(&self) -> Result<(), StackError> {
        let client = self.pg.get().await?;
        client
            .execute(
                &format!("DELETE FROM seat_outbox WHERE sent_at < now() - interval '{KEEP_SENT}'"),
                &[],
            )
            .await?;
        Ok(())
    }

    /// Sends one seat event (key: concert id); false when the send failed.
    async fn send_seat_event(&self, topic: &str, record: &SeatEventRecord) -> bool {
        let Ok(payload) = serde_json::to_string(record) else {
            return false;
        };
        let result = self
            .producer
            .send(topic, &record.concert_id, &payload, Duration::from_secs(1))
            .await;
        if let Err(e) = &result {
            warn!(error = %e, topic, event = %record.event_id, "seat event not sent; the outbox keeps it");
        }
        result.is_ok()
    }

    /// Counts the events whose row this instance marked sent: each event
    /// is counted once, whichever path sent it first.
    fn count_published(&self, marked: &[String]) {
        for id in marked {
            if let Some(event) = SeatEvent::ALL.into_iter().find(|e| {
                id.strip_prefix(e.topic())
                    .is_some_and(|r| r.starts_with(':'))
            }) {
                self.seat_events.published(event, 1);
            }
        }
    }
}

/// Marks the rows sent; returns the ids this call marked (not those another
/// path marked first).
async fn mark_sent(
    client: &impl GenericClient,
    ids: &[String],
) -> Result<Vec<String>, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "UPDATE seat_outbox SET sent_at = clock_timestamp()
             WHERE event_id = ANY($1) AND sent_at IS NULL RETURNING event_id",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
