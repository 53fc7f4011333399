//! What travels on Kafka: queue entries, accepted reservations, and the
//! seat-map events (published through the outbox, see [`super::outbox`]).

use serde::{Deserialize, Serialize};

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

/// One seat-map event as published (key: concert id) and as the outbox
/// keeps it until it is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatEventRecord {
    /// Stable for the event (`<type>:<reservationId>`: a reservation is
    /// created, paid and expired at most once each), so consumers can drop
    /// the duplicates the outbox may send.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub reservation_id: String,
    pub concert_id: String,
    pub schedule_id: String,
    pub seat_number: i32,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    pub at: String,
    /// Which path sent this copy; absent in the outbox row itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
}

/// How a seat event reached the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Sent by the request (or sweep) right after its commit.
    Commit,
    /// Sent by the outbox relay: the first send failed or never happened.
    Relay,
}

impl SeatEventRecord {
    /// The event `event` of `held` (with its payment for `payment.completed`).
    pub fn new(event: SeatEvent, held: &Held, payment: Option<&Payment>) -> Self {
        SeatEventRecord {
            event_id: event_id(event, &held.reservation_id),
            kind: event.topic().to_owned(),
            reservation_id: held.reservation_id.clone(),
            concert_id: held.concert_id.clone(),
            schedule_id: held.schedule_id.clone(),
            seat_number: held.seat_number,
            user_id: held.user_id.clone(),
            payment_id: payment.map(|p| p.payment_id.clone()),
            amount: payment.map(|p| p.amount as i64),
            at: crate::model::now_rfc3339(),
            via: None,
        }
    }
}

/// The stable id of `event` for `reservation_id`.
pub fn event_id(event: SeatEvent, reservation_id: &str) -> String {
    format!("{}:{reservation_id}", event.topic())
}
