//! Reserving stock on the shared stack: the reserve script decides in
//! Redis, all or nothing; the accepted reservation then travels to
//! PostgreSQL through the reserved topic (or, if that send is lost, through
//! the reconciler).

use std::time::Duration;

use redis::AsyncCommands;
use tracing::warn;

use super::health::Component;
use super::keys::reservation_index_key;
use super::lua::ReserveReply;
use super::messages::ReservedEvent;
use super::{now_ms, StackBackend};
use crate::backend::rules::{not_active, unknown_entry};
use crate::backend::Stock;
use crate::error::{Error, Result};
use crate::model::{new_reservation_id, now_rfc3339, Reservation, ReservationStatus};
use crate::token::Claims;

/// How long a reservation waits for a replica to confirm its decrement
/// (`WAIT`), when the primary has replicas.
const REPLICA_WAIT_MS: u64 = 200;

impl Stock for StackBackend {
    async fn reserve(&self, claims: &Claims, quantity: u32) -> Result<Reservation> {
        self.require(&[Component::Redis, Component::Kafka])?;
        let event_id = claims.event_id.as_str();
        let event = ReservedEvent {
            reservation_id: new_reservation_id(),
            event_id: event_id.to_owned(),
            user_id: claims.user_id.clone(),
            quantity,
            created_at: now_rfc3339(),
            created_ms: now_ms(),
        };
        let record = serde_json::to_string(&event).map_err(|e| Error::Internal(Box::new(e)))?;
        // One server for the script and the WAIT after it (see `pinned`).
        let mut redis = self.redis().pinned();
        let reply: ReserveReply = self
            .stack()
            .scripts
            .reserve
            .on(&self.keys(event_id))
            .arg(claims.seq)
            .arg(&claims.user_id)
            .arg(quantity)
            .arg(&event.reservation_id)
            .arg(&record)
            .run(&mut redis)
            .await?;
        match reply {
            ReserveReply::Ok { .. } => {}
            ReserveReply::NotFound => {
                return Err(Error::not_found(format!("event {event_id} not found")))
            }
            ReserveReply::BadQuantity { limit } => {
                return Err(crate::validate::range("quantity", quantity, 1, limit).unwrap_err());
            }
            ReserveReply::UnknownEntry => return Err(unknown_entry()),
            ReserveReply::NotActive { status } => {
                let status = status.queue_status().ok_or_else(unknown_entry)?;
                return Err(not_active(status));
            }
            ReserveReply::LimitExceeded { limit, bought } => {
                return Err(Error::LimitExceeded {
                    limit,
                    held: bought,
                });
            }
            ReserveReply::SoldOut { remaining } => {
                return Err(Error::SoldOut {
                    requested: quantity,
                    remaining,
                });
            }
        }
        self.confirm_replicated(&mut redis, &event.reservation_id)
            .await?;
        // Accepted: from here on the reservation is in Redis and will reach
        // PostgreSQL, through Kafka now or through the reconciler later.
        let _: redis::RedisResult<()> = self
            .redis()
            .set(
                reservation_index_key(&self.stack().ns, &event.reservation_id),
                event_id,
            )
            .await;
        self.publish_reserved(&event, &record).await;
        Ok(Reservation {
            reservation_id: event.reservation_id,
            event_id: event.event_id,
            user_id: event.user_id,
            quantity,
            status: ReservationStatus::Pending,
            created_at: event.created_at,
        })
    }

    async fn reservation(&self, reservation_id: &str) -> Result<Reservation> {
        self.require(&[Component::Postgres])?;
        let client = self.pg().await?;
        let row = client
            .query_opt(
                "SELECT event_id, user_id, quantity,
                        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                 FROM reservations WHERE reservation_id = $1",
                &[&reservation_id],
            )
            .await?;
        if let Some(row) = row {
            return Ok(Reservation {
                reservation_id: reservation_id.to_owned(),
                event_id: row.get(0),
                user_id: row.get(1),
                quantity: row.get::<_, i32>(2) as u32,
                status: ReservationStatus::Confirmed,
                created_at: row.get(3),
            });
        }
        // Not persisted yet: accepted reservations are in Redis meanwhile.
        self.require(&[Component::Redis])?;
        let not_found = || Error::not_found(format!("reservation {reservation_id} not found"));
        let event: Option<String> = self
            .redis()
            .get(reservation_index_key(&self.stack().ns, reservation_id))
            .await?;
        let event = event.ok_or_else(not_found)?;
        let record: Option<String> = self
            .redis()
            .hget(&self.keys(&event).reservations, reservation_id)
            .await?;
        let r: ReservedEvent = record
            .and_then(|r| serde_json::from_str(&r).ok())
            .ok_or_else(not_found)?;
        Ok(Reservation {
            reservation_id: r.reservation_id,
            event_id: r.event_id,
            user_id: r.user_id,
            quantity: r.quantity,
            status: ReservationStatus::Pending,
            created_at: r.created_at,
        })
    }
}

impl StackBackend {
    /// With replicas a failover may promote (a Sentinel-managed primary),
    /// a decrement is acknowledged only once a replica has it: Redis
    /// replicates asynchronously, and a replica promoted without the last
    /// decrements would sell those items again. `WAIT 1` on the connection
    /// that ran the script waits for that script's write. When no replica
    /// confirms in time the buyer gets 503 (unknown outcome) and nothing is
    /// published: if the primary keeps the reservation, the reconciler
    /// publishes it; if a failover lost it, it never happened. The test
    /// hook `--debug-no-replica-wait` skips this (the negative control).
    async fn confirm_replicated(
        &self,
        redis: &mut super::redis_conn::RedisConn,
        reservation_id: &str,
    ) -> Result<()> {
        // `redis` is pinned to one server: whether there are replicas is
        // the target's property.
        if !self.redis().has_replicas() || self.shared.no_replica_wait {
            return Ok(());
        }
        let acked: redis::RedisResult<i64> = redis::cmd("WAIT")
            .arg(1)
            .arg(REPLICA_WAIT_MS)
            .query_async(redis)
            .await;
        match acked {
            Ok(n) if n >= 1 => Ok(()),
            other => {
                warn!(reservation = %reservation_id, answer = ?other, "no replica confirmed the reservation; answered 503, not published");
                Err(Error::Unavailable("Redis (no replica confirmed the write)"))
            }
        }
    }

    /// Sends an accepted reservation to the reserved topic. A failed send
    /// is only logged: the reconciler re-publishes what PostgreSQL lacks.
    async fn publish_reserved(&self, event: &ReservedEvent, record: &str) {
        if self.shared.drop_publish {
            warn!(reservation = %event.reservation_id, "test hook: ticket.reserved not sent");
            return;
        }
        let sent = std::time::Instant::now();
        let result = self
            .stack()
            .producer
            .send(
                // Keyed by reservation, not by event: nothing downstream
                // needs one event's reservations in order (persistence is
                // idempotent per id and the stock row serialises the
                // decrement), and an event key put a whole sale's
                // persistence on the one instance leasing its partition,
                // work that then did not divide by the instance count.
                &self.stack().topics.reserved,
                &event.reservation_id,
                record,
                Duration::from_secs(1),
            )
            .await;
        self.stack()
            .metrics
            .kafka_send
            .observe(sent.elapsed().as_secs_f64());
        if let Err(e) = result {
            warn!(error = %e, reservation = %event.reservation_id, "ticket.reserved not sent; the reconciler will re-publish it");
        }
    }
}
