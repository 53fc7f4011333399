//! Background sweeps that keep state moving when no request touches it:
//! queue expiry and admission (so SSE clients see admissions without
//! traffic), and the release of lapsed seat holds (their
//! `reservation.expired` events go through the outbox): by a periodic
//! sweep (`--expiry sweeper`, here) or by a delayed message per hold
//! (`--expiry delayed`, see [`delayed`]).

pub mod delayed;

use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::watch;

use super::error::StackError;
use super::keys::{events_key, EventKeys};
use super::lua::TickReply;
use super::messages::Held;
use super::outbox::{self, Staged};
use super::seat_options::Expiry;
use super::{delayed_interval, next_tick, Stack};
use crate::concert::SeatEvent;

/// How often untouched events get their expiry and admission step.
const QUEUE_SWEEP_EVERY: Duration = Duration::from_millis(250);
/// How often the sweeper looks for lapsed holds.
const HOLD_SWEEP_EVERY: Duration = Duration::from_millis(250);
/// Most holds one sweep releases.
const HOLD_SWEEP_BATCH: i64 = 500;

impl Stack {
    /// Expiry and admission for events nobody touches.
    pub(super) async fn queue_sweep_loop(self, mut stop: watch::Receiver<bool>) {
        let mut interval = delayed_interval(QUEUE_SWEEP_EVERY);
        let mut redis = self.redis.clone();
        while next_tick(&mut interval, &mut stop).await {
            let ids: Vec<String> = redis
                .smembers(events_key(&self.ns))
                .await
                .unwrap_or_default();
            for id in ids {
                let keys = EventKeys::new(&self.ns, &id);
                let ticked: Result<TickReply, _> =
                    self.scripts.tick.on(&keys).run(&mut redis).await;
                if let Err(e) = ticked {
                    tracing::debug!(error = %e, event = %id, "queue sweep");
                }
            }
        }
    }

    /// Releases lapsed holds for good, a batch per tick, from any instance
    /// (not at all under delayed expiry: the delayed messages do).
    pub(super) async fn hold_sweep_loop(self, mut stop: watch::Receiver<bool>) {
        if self.seat_map.options.expiry == Expiry::Delayed {
            return;
        }
        let mut interval = delayed_interval(HOLD_SWEEP_EVERY);
        while next_tick(&mut interval, &mut stop).await {
            match self.sweep_holds().await {
                Ok(staged) => self.publish_staged(staged).await,
                Err(e) => tracing::debug!(error = %e, "hold sweep"),
            }
        }
    }

    /// Expires a batch of lapsed holds and writes their events to the
    /// outbox, in one transaction; returns the events to send.
    async fn sweep_holds(&self) -> Result<Vec<Staged>, StackError> {
        self.release_lapsed(
            "SELECT reservation_id FROM seat_reservations
             WHERE status = 'HELD' AND expires_at <= now()
             ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&HOLD_SWEEP_BATCH],
        )
        .await
    }

    /// Releases the holds `which` selects (a query naming reservation ids,
    /// bound to `params`) that are still HELD and lapsed: the reservation
    /// EXPIRED, its seat AVAILABLE, the `reservation.expired` events in the
    /// outbox, all in one transaction; then the seat maps are invalidated.
    /// Returns the events to send (with no pooled connection held).
    pub(super) async fn release_lapsed(
        &self,
        which: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Staged>, StackError> {
        let mut client = self.pg.get().await?;
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                &format!(
                    "WITH lapsed AS (
                         UPDATE seat_reservations SET status = 'EXPIRED'
                         WHERE status = 'HELD' AND expires_at <= now()
                           AND reservation_id IN ({which})
                         RETURNING reservation_id, concert_id, schedule_id, seat_number, user_id),
                     freed AS (
                         UPDATE seats s SET status = 'AVAILABLE', reservation_id = NULL, hold_expires_at = NULL
                         FROM lapsed l
                         WHERE s.concert_id = l.concert_id AND s.schedule_id = l.schedule_id
                           AND s.seat_number = l.seat_number AND s.reservation_id = l.reservation_id
                           AND s.status = 'HELD')
                     SELECT reservation_id, concert_id, schedule_id, seat_number, user_id FROM lapsed"
                ),
                params,
            )
            .await?;
        let released: Vec<Held> = rows
            .iter()
            .map(|r| Held {
                reservation_id: r.get(0),
                concert_id: r.get(1),
                schedule_id: r.get(2),
                seat_number: r.get(3),
                user_id: r.get(4),
            })
            .collect();
        let events: Vec<_> = released
            .iter()
            .map(|h| (SeatEvent::ReservationExpired, h, None))
            .collect();
        let staged = outbox::stage(&tx, &self.topics, &events).await?;
        tx.commit().await?;
        drop(client);
        for h in &released {
            self.invalidate_seat_map(&h.concert_id, &h.schedule_id, true)
                .await;
        }
        Ok(staged)
    }
}
