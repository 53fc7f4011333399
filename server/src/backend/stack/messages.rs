//! What travels on Kafka: queue entries, accepted reservations, and the
//! seat-map events, with the one function that publishes the latter.

use std::time::Duration;

use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::Stack;
use crate::concert::{Payment, SeatEvent};

/// A queue entry as carried on the queue topic (key: event id, so one
/// partition per event keeps its line in order).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueEntry {
    pub event_id: String,
    pub user_id: String,
    pub issued_at: u64,
}

/// One accepted reservation as carried on the reserved topic, and as the
/// reserve script keeps it in Redis until PostgreSQL has it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservedEvent {
    pub reservation_id: String,
    pub event_id: String,
    pub user_id: String,
    pub quantity: u32,
    pub created_at: String,
    pub created_ms: i64,
}

/// A reservation's seat and owner, as seat-map events name them.
pub struct Held {
    pub reservation_id: String,
    pub concert_id: String,
    pub schedule_id: String,
    pub seat_number: i32,
    pub user_id: String,
}

/// One seat-map event as published (key: concert id).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SeatEventRecord<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    reservation_id: &'a str,
    concert_id: &'a str,
    schedule_id: &'a str,
    seat_number: i32,
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<i64>,
    at: String,
}

impl Stack {
    /// Publishes a seat-map event after its commit. A failed send is logged
    /// and counted as not published: PostgreSQL already holds the truth.
    pub(super) async fn publish_seat_event(
        &self,
        event: SeatEvent,
        held: &Held,
        payment: Option<&Payment>,
    ) {
        let record = SeatEventRecord {
            kind: event.topic(),
            reservation_id: &held.reservation_id,
            concert_id: &held.concert_id,
            schedule_id: &held.schedule_id,
            seat_number: held.seat_number,
            user_id: &held.user_id,
            payment_id: payment.map(|p| p.payment_id.as_str()),
            amount: payment.map(|p| p.amount as i64),
            at: crate::model::now_rfc3339(),
        };
        let Ok(payload) = serde_json::to_string(&record) else {
            return;
        };
        let topic = self.topics.seat(event);
        match self
            .producer
            .send(
                FutureRecord::to(topic)
                    .key(&held.concert_id)
                    .payload(&payload),
                Duration::from_secs(1),
            )
            .await
        {
            Ok(_) => self.seat_events.published(event, 1),
            Err((e, _)) => {
                warn!(error = %e, topic, reservation = %held.reservation_id, "seat event not published")
            }
        }
    }
}
