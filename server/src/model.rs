//! Domain types shared by the HTTP layer and every backend.

use serde::Serialize;

/// An event as the admin creates it (already validated).
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub event_id: String,
    pub name: Option<String>,
    pub stock: u64,
    pub per_user_limit: u32,
    pub active_capacity: u32,
    pub active_ttl_seconds: u32,
}

/// `GET /api/v1/events/{eventId}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub stock: u64,
    pub remaining: u64,
    pub sold: u64,
    pub waiting: u64,
    pub active: u64,
    pub per_user_limit: u32,
    pub active_capacity: u32,
    pub active_ttl_seconds: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueueStatus {
    Waiting,
    Active,
    Done,
    Expired,
}

/// Where an entry stands in its event's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    pub status: QueueStatus,
    /// Users ahead plus one while WAITING, 0 otherwise.
    pub position: u64,
    pub estimated_wait_seconds: u64,
    /// Admission is held by the operator (paused or queue-everyone): the
    /// entry keeps its place, and the line does not move.
    pub paused: bool,
    /// How many entries of the event have been admitted so far. It only ever
    /// grows, so it doubles as the SSE event id; the page shows it as the
    /// number now being served (the entry's own is this plus `position`).
    #[serde(rename = "nowServing")]
    pub cursor: u64,
}

/// `GET /api/v1/queue/status`: where the entry stands and, while it is
/// ACTIVE, how long its turn lasts. Beside [`QueueView`], not in it: the
/// SSE stream ends at ACTIVE and never needs the time left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryStatus {
    #[serde(flatten)]
    pub view: QueueView,
    /// Whole seconds (rounded up) until the active time runs out while
    /// ACTIVE, 0 otherwise; from the server's own deadline, so a page
    /// opened late (or reloaded) shows the turn's true end.
    pub active_remaining_seconds: u64,
}

/// What `enter` returns to the HTTP layer, which signs the token.
#[derive(Debug, Clone)]
pub struct Entered {
    pub seq: u64,
    pub issued_at: u64,
    pub view: QueueView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationStatus {
    Pending,
    Confirmed,
}

/// `GET /api/v1/tickets/{reservationId}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub reservation_id: String,
    pub event_id: String,
    pub user_id: String,
    pub quantity: u32,
    pub status: ReservationStatus,
    pub created_at: String,
}

/// Per-event gauges for `/metrics`.
#[derive(Debug, Clone)]
pub struct EventGauges {
    pub event_id: String,
    pub remaining: u64,
    pub waiting: u64,
    pub active: u64,
}

/// A fresh reservation id: `r` and 32 hex digits (a valid contract id).
pub fn new_reservation_id() -> String {
    format!("r{:032x}", rand::random::<u128>())
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Now as Unix seconds.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
