//! The concert seat map's domain types, shared by the HTTP
//! layer and both backends.
//!
//! A concert has schedules (dates); each schedule has seats `1..=seatCount`
//! at one price. A seat moves AVAILABLE -> HELD (for the hold TTL) ->
//! CONFIRMED (paid); an unpaid hold lapses and the seat is AVAILABLE again.
//! A concert's waiting line is the queue of the same id: users enter with
//! `eventId = concertId`, and an ACTIVE token gates holds and payments.

use serde::{Deserialize, Serialize};

/// Seats per schedule when the admin does not say.
pub const DEFAULT_SEAT_COUNT: u32 = 50;
/// Most seats one schedule may have.
pub const MAX_SEAT_COUNT: u32 = 1000;
/// Most schedules one concert may have.
pub const MAX_SCHEDULES: usize = 100;
/// Highest seat price, and the largest single points charge.
pub const MAX_PRICE: u64 = 10_000_000;
/// Largest balance an account may reach.
pub const MAX_BALANCE: u64 = 1_000_000_000_000;

/// A concert as the admin creates it (already validated).
#[derive(Debug, Clone)]
pub struct ConcertSpec {
    pub concert_id: String,
    pub name: Option<String>,
    pub schedules: Vec<ScheduleSpec>,
    /// The concert queue's `activeCapacity` and `activeTtlSeconds`.
    pub active_capacity: u32,
    pub active_ttl_seconds: u32,
}

impl ConcertSpec {
    /// The concert's waiting line: a queue of the same id with nothing to
    /// sell through `/tickets/reserve` (stock 0).
    pub fn queue_spec(&self) -> crate::model::EventSpec {
        crate::model::EventSpec {
            event_id: self.concert_id.clone(),
            name: self.name.clone(),
            stock: 0,
            per_user_limit: 1,
            active_capacity: self.active_capacity,
            active_ttl_seconds: self.active_ttl_seconds,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub schedule_id: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub seat_count: u32,
    pub price: u64,
}

/// `GET /api/v1/concerts/{concertId}/schedules` row.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    pub schedule_id: String,
    pub date: String,
    pub available_seats: u32,
}

/// `GET /api/v1/concerts` row: a concert and its open schedules (those
/// with a seat that can be held now).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcertView {
    pub concert_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub schedules: Vec<ScheduleView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeatStatus {
    Available,
    Held,
    Confirmed,
}

/// `GET .../schedules/{scheduleId}/seats` row.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatView {
    pub seat_number: u32,
    pub status: SeatStatus,
    pub price: u64,
}

/// One seat of one schedule of a concert.
#[derive(Debug, Clone, Copy)]
pub struct SeatRef<'a> {
    pub concert_id: &'a str,
    pub schedule_id: &'a str,
    pub seat: u32,
}

/// What a successful hold returns (201).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub reservation_id: String,
    pub status: SeatStatus,
    pub expires_at: String,
}

/// A completed payment. A replay (same key, or the same reservation paid
/// again) returns the stored payment, `balance` as it was right after it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub payment_id: String,
    pub reservation_id: String,
    pub amount: u64,
    pub balance: u64,
    pub status: &'static str,
}

/// What a payment request asks for.
#[derive(Debug, Clone)]
pub struct PayRequest {
    pub reservation_id: String,
    pub idempotency_key: Option<String>,
}

/// What a payment needs to know about its reservation before it runs.
#[derive(Debug, Clone)]
pub struct PaymentTarget {
    pub concert_id: String,
    /// The payment already made for this reservation, if any.
    pub paid: Option<Payment>,
}

pub fn seat_taken(schedule_id: &str, seat: u32) -> crate::error::Error {
    crate::error::Error::SeatTaken(format!(
        "seat {seat} of schedule {schedule_id} is held or confirmed"
    ))
}

pub fn hold_expired(reservation_id: &str) -> crate::error::Error {
    crate::error::Error::HoldExpired(format!(
        "the hold of reservation {reservation_id} has expired"
    ))
}

pub fn not_found_reservation(reservation_id: &str) -> crate::error::Error {
    crate::error::Error::not_found(format!("reservation {reservation_id} not found"))
}

/// The seat-map events (Kafka topics on the real stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeatEvent {
    ReservationCreated,
    PaymentCompleted,
    ReservationExpired,
}

impl SeatEvent {
    pub const ALL: [SeatEvent; 3] = [
        SeatEvent::ReservationCreated,
        SeatEvent::PaymentCompleted,
        SeatEvent::ReservationExpired,
    ];

    pub fn topic(self) -> &'static str {
        match self {
            SeatEvent::ReservationCreated => "reservation.created",
            SeatEvent::PaymentCompleted => "payment.completed",
            SeatEvent::ReservationExpired => "reservation.expired",
        }
    }
}

/// Counts seat-map events published, per topic (`/metrics`).
#[derive(Clone, Default)]
pub struct SeatEventCounts {
    family: prometheus_client::metrics::family::Family<
        TopicLabel,
        prometheus_client::metrics::counter::Counter,
    >,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct TopicLabel {
    topic: &'static str,
}

impl SeatEventCounts {
    pub fn published(&self, event: SeatEvent, n: u64) {
        self.family
            .get_or_create(&TopicLabel {
                topic: event.topic(),
            })
            .inc_by(n);
    }

    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "seat_events_published",
            "Seat-map events published (reservation.created, payment.completed, reservation.expired)",
            self.family.clone(),
        );
    }
}

/// A fresh payment id: `p` and 32 hex digits.
pub fn new_payment_id() -> String {
    format!("p{:032x}", rand::random::<u128>())
}

/// Checks a `YYYY-MM-DD` calendar date.
pub fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|d| d.parse::<u16>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    if !b
        .iter()
        .enumerate()
        .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return false;
    }
    let Ok(month) = time::Month::try_from(m as u8) else {
        return false;
    };
    time::Date::from_calendar_date(i32::from(y), month, d as u8).is_ok()
}

/// An `Idempotency-Key`: 1..=128 visible ASCII characters.
pub fn valid_idempotency_key(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// `now + after` as RFC 3339 UTC with milliseconds.
pub fn rfc3339_after(after: std::time::Duration) -> String {
    let t = time::OffsetDateTime::now_utc() + after;
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_real_calendar_days() {
        assert!(valid_date("2026-12-24"));
        assert!(valid_date("2028-02-29"));
        assert!(!valid_date("2026-02-29"));
        assert!(!valid_date("2026-13-01"));
        assert!(!valid_date("2026-1-01"));
        assert!(!valid_date("2026-01-0a"));
        assert!(!valid_date("+026-01-01"));
        assert!(!valid_date(""));
    }

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        assert!(valid_idempotency_key("3f2a-9c:retry.1"));
        assert!(!valid_idempotency_key(""));
        assert!(!valid_idempotency_key("has space"));
        assert!(!valid_idempotency_key(&"k".repeat(129)));
        assert!(!valid_idempotency_key("é"));
    }
}
