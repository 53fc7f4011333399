//! Check 2 on the seat map: the events a concert's PostgreSQL rows imply
//! (`reservation.created` per hold, `payment.completed` per payment,
//! `reservation.expired` per expired hold) and every copy of them on the
//! seat-map topics.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ticket_server::backend::stack::keys::Topics;
use ticket_server::backend::stack::messages::{SeatEventRecord, Via};
use ticket_server::concert::SeatEvent;

use super::{read_topics, Stores};

/// A seat-map event as both sides name it: its type (the topic's name,
/// e.g. `reservation.created`) and its reservation id.
pub type EventKey = (String, String);

/// What the stores hold of one concert's seat-map events.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SeatObserved {
    /// The events PostgreSQL's rows imply, read before Kafka.
    pub expected: BTreeSet<EventKey>,
    /// The same, read again after Kafka: an event on Kafka but not here was
    /// never committed.
    pub expected_after: BTreeSet<EventKey>,
    /// Every copy on the topics, with the path that sent it.
    pub kafka: Vec<(EventKey, Option<Via>)>,
    /// Outbox rows of the concert still unsent when the wait ended.
    pub unsent: usize,
    /// Milliseconds until the outbox had sent every row, if it did.
    pub drained_ms: Option<u64>,
    /// Stores that could not be read.
    pub errors: Vec<String>,
}

impl Stores {
    /// Waits up to `deadline` for the server's outbox to have sent every
    /// event of `concert_id` (so a missing event is lost, not late), then
    /// reads the events PostgreSQL implies, the topics, and PostgreSQL again.
    pub async fn observe_seat_events(&self, concert_id: &str, deadline: Duration) -> SeatObserved {
        let mut out = SeatObserved::default();
        let db = match self.postgres_client().await {
            Ok(db) => db,
            Err(e) => {
                out.errors.push(format!("PostgreSQL: {e}"));
                return out;
            }
        };
        let started = Instant::now();
        loop {
            match implied(&db, concert_id).await {
                Ok((expected, unsent)) => {
                    out.expected = expected;
                    out.unsent = unsent;
                }
                Err(e) => {
                    out.errors.push(format!("PostgreSQL: {e}"));
                    return out;
                }
            }
            if out.unsent == 0 {
                out.drained_ms = Some(started.elapsed().as_millis() as u64);
                break;
            }
            if started.elapsed() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let topics = Topics::new(&self.namespace);
        let names: Vec<String> = SeatEvent::ALL
            .iter()
            .map(|e| topics.seat(*e).to_owned())
            .collect();
        let (brokers, concert) = (self.kafka_brokers.clone(), concert_id.to_owned());
        let read = move || {
            read_topics(&brokers, &names, |v| {
                let r = serde_json::from_value::<SeatEventRecord>(v.clone()).ok()?;
                (r.concert_id == concert).then_some(((r.kind, r.reservation_id), r.via))
            })
        };
        match tokio::task::spawn_blocking(read).await {
            Ok(Ok(copies)) => out.kafka = copies,
            Ok(Err(e)) => out.errors.push(format!("Kafka: {e}")),
            Err(e) => out.errors.push(format!("Kafka reader: {e}")),
        }
        match implied(&db, concert_id).await {
            Ok((expected, _)) => out.expected_after = expected,
            Err(e) => out.errors.push(format!("PostgreSQL: {e}")),
        }
        out
    }
}

/// The events the concert's rows imply, and how many of its outbox rows are
/// unsent, from one snapshot (one statement).
async fn implied(
    db: &tokio_postgres::Client,
    concert_id: &str,
) -> Result<(BTreeSet<EventKey>, usize), tokio_postgres::Error> {
    let [created, paid, expired] = SeatEvent::ALL.map(SeatEvent::topic);
    let rows = db
        .query(
            "SELECT $2::text, reservation_id FROM seat_reservations WHERE concert_id = $1
             UNION ALL
             SELECT $3::text, p.reservation_id FROM payments p
               JOIN seat_reservations r USING (reservation_id) WHERE r.concert_id = $1
             UNION ALL
             SELECT $4::text, reservation_id FROM seat_reservations
              WHERE concert_id = $1 AND status = 'EXPIRED'
             UNION ALL
             SELECT 'unsent', event_id FROM seat_outbox
              WHERE concert_id = $1 AND sent_at IS NULL",
            &[&concert_id, &created, &paid, &expired],
        )
        .await?;
    let mut expected = BTreeSet::new();
    let mut unsent = 0;
    for row in &rows {
        let (kind, id): (String, String) = (row.get(0), row.get(1));
        if kind == "unsent" {
            unsent += 1;
        } else {
            expected.insert((kind, id));
        }
    }
    Ok((expected, unsent))
}
