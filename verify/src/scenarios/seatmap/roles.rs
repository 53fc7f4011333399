//! Who does what in the seat-map race, and the concert it races for.
//!
//! Roles go by user index, so every run, however small, has all of them.

use std::time::Duration;

use serde_json::json;

use super::{PRICE, SCHEDULE};
use crate::client::Client;
use crate::scenarios::created;
use crate::RunError;

#[derive(Debug, Clone, Copy)]
pub struct SeatSpec {
    pub users: usize,
    pub seats: u32,
    pub hot: u32,
    pub ttl: Duration,
    pub tolerance: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Payer,
    Retrier,
    Poor,
    Abandoner,
    LatePayer,
}

impl Role {
    pub fn of(i: usize) -> Role {
        match i % 10 {
            9 => Role::Poor,
            3 => Role::Abandoner,
            7 => Role::LatePayer,
            _ if i % 4 == 0 => Role::Retrier,
            _ => Role::Payer,
        }
    }

    /// Points charged before the race: enough for two seats, or half of
    /// one for the poor, whose payment must then be refused.
    pub fn charged(self) -> u64 {
        match self {
            Role::Poor => PRICE / 2,
            _ => 2 * PRICE,
        }
    }
}

/// Creates the concert: one schedule of `spec.seats`, room in the queue
/// for every racer and every later re-holder at once.
pub(super) async fn create_concert(
    client: &Client,
    spec: SeatSpec,
    concert_id: &str,
) -> Result<(), RunError> {
    let call = client
        .create_concert(json!({
            "concertId": concert_id,
            "name": "verify seat map",
            "activeCapacity": spec.users * 2,
            "activeTtlSeconds": 600,
            "schedules": [{"scheduleId": SCHEDULE, "date": "2026-12-24",
                           "seatCount": spec.seats, "price": PRICE}],
        }))
        .await;
    created(client, &call, format_args!("concert {concert_id}"))
}
