//! The concert seat map on the shared stack. PostgreSQL is the authority
//! for seats and holds:
//!
//! - A hold claims the seat row (AVAILABLE, or HELD and lapsed, to HELD)
//!   by the `--seat-lock` strategy ([`super::seat_lock`]: a conditional
//!   UPDATE by default) in a transaction that also marks the lapsed hold
//!   it replaces EXPIRED and inserts the new reservation; the unique partial
//!   index `seat_reservations_one_active` (one HELD or CONFIRMED reservation
//!   per seat) is the last line of defence.
//! - By default (`--expiry sweeper`) lapsed holds read as AVAILABLE at
//!   once and the sweeper releases them for good; with `--expiry delayed`
//!   a seat stays HELD until a `reservation.created` consumer releases it
//!   at its deadline (see [`super::sweepers`]).
//! - Events, `reservation.created` and `reservation.expired` (key: concert
//!   id), are written to the outbox in the hold's transaction and sent
//!   after the commit (see [`super::outbox`]).
//!
//! No Redis cache of the seat map: PostgreSQL answers a 50-seat read by
//! primary key, and a cache would have to be invalidated on every
//! confirmation to never show a CONFIRMED seat as AVAILABLE.

use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;
use tracing::warn;

use super::health::Component;
use super::messages::Held;
use super::outbox::{self, Staged};
use super::seat_lock::{conditional, free_sql, redis_lock, row_lock, Claim, SeatLockKind};
use super::StackBackend;
use crate::backend::{Queue, Seats};
use crate::concert::{
    seat_taken, ConcertSpec, ConcertView, Hold, Payment, ScheduleView, SeatEvent, SeatRef,
    SeatStatus, SeatView,
};
use crate::error::{Error, Result};
use crate::model::new_reservation_id;

impl Seats for StackBackend {
    async fn create_concert(&self, spec: &ConcertSpec) -> Result<()> {
        self.require(&[Component::Redis, Component::Postgres])?;
        let mut client = self.pg().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .execute(
                "INSERT INTO concerts (concert_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&spec.concert_id, &spec.name],
            )
            .await?;
        if inserted == 0 {
            return Err(Error::AlreadyExists(format!(
                "concert {} already exists",
                spec.concert_id
            )));
        }
        for s in &spec.schedules {
            tx.execute(
                "INSERT INTO schedules (concert_id, schedule_id, date, seat_count, price)
                 VALUES ($1, $2, $3::text::date, $4, $5)",
                &[
                    &spec.concert_id,
                    &s.schedule_id,
                    &s.date,
                    &(s.seat_count as i32),
                    &(s.price as i64),
                ],
            )
            .await?;
            tx.execute(
                "INSERT INTO seats (concert_id, schedule_id, seat_number)
                 SELECT $1, $2, n FROM generate_series(1, $3) AS n",
                &[&spec.concert_id, &s.schedule_id, &(s.seat_count as i32)],
            )
            .await?;
        }
        // The queue (Redis and the events table); ALREADY_EXISTS when an
        // event has this id. Our transaction is still open, so nothing of
        // the concert is visible until both exist.
        self.create_event(spec.queue_spec()).await?;
        if let Err(e) = tx.commit().await {
            self.drop_queue(&spec.concert_id).await;
            return Err(e.into());
        }
        Ok(())
    }

    async fn schedules(&self, concert_id: &str) -> Result<Vec<ScheduleView>> {
        self.require(&[Component::Postgres])?;
        let client = self.pg().await?;
        let free = free_sql("t.", &self.stack().seat_map.options);
        let rows = client
            .query(
                &format!(
                    "SELECT s.schedule_id, to_char(s.date, 'YYYY-MM-DD'),
                            (SELECT count(*) FROM seats t
                              WHERE t.concert_id = s.concert_id AND t.schedule_id = s.schedule_id
                                AND {free})
                     FROM schedules s WHERE s.concert_id = $1
                     ORDER BY s.date, s.schedule_id"
                ),
                &[&concert_id],
            )
            .await?;
        if rows.is_empty() {
            return Err(not_found_concert(concert_id));
        }
        Ok(rows
            .iter()
            .map(|r| ScheduleView {
                schedule_id: r.get(0),
                date: r.get(1),
                available_seats: r.get::<_, i64>(2) as u32,
            })
            .collect())
    }

    async fn concerts(&self) -> Result<Vec<ConcertView>> {
        self.list_concerts().await
    }

    async fn seats(&self, concert_id: &str, schedule_id: &str) -> Result<Vec<SeatView>> {
        self.require(&[Component::Postgres])?;
        self.cached_seats(concert_id, schedule_id).await
    }

    /// 404 unless the seat exists (naming what is missing).
    async fn check_seat(&self, at: SeatRef<'_>) -> Result<()> {
        let SeatRef {
            concert_id,
            schedule_id,
            seat,
        } = at;
        self.require(&[Component::Redis, Component::Postgres])?;
        let seat_number = seat as i32;
        {
            let client = self.pg().await?;
            let exists = client
                .query_opt(
                    "SELECT 1 FROM seats WHERE concert_id = $1 AND schedule_id = $2 AND seat_number = $3",
                    &[&concert_id, &schedule_id, &seat_number],
                )
                .await
                ?;
            if exists.is_none() {
                let schedule = client
                    .query_opt(
                        "SELECT 1 FROM schedules WHERE concert_id = $1 AND schedule_id = $2",
                        &[&concert_id, &schedule_id],
                    )
                    .await?;
                return Err(match schedule {
                    Some(_) => {
                        Error::not_found(format!("seat {seat} of schedule {schedule_id} not found"))
                    }
                    None => Self::missing(&client, concert_id, schedule_id).await,
                });
            }
        }
        Ok(())
    }

    /// The hold itself, once the seat and the token were checked: the
    /// seat is claimed by the `--seat-lock` strategy (see [`super::seat_lock`]).
    async fn hold_seat(&self, at: SeatRef<'_>, user_id: &str) -> Result<Hold> {
        let locks = &self.stack().seat_map;
        if locks.options.seat_lock != SeatLockKind::RedisLock {
            return self.hold_in_pg(at, user_id).await;
        }
        let key = redis_lock::key(&self.stack().ns, at);
        let Some(guard) =
            redis_lock::acquire(&self.stack().redis, key, &locks.options, &locks.counters).await?
        else {
            return Err(seat_taken(at.schedule_id, at.seat));
        };
        let held = async {
            let free = redis_lock::check_free(&self.pg().await?, at, &locks.options).await?;
            if !free {
                return Err(seat_taken(at.schedule_id, at.seat));
            }
            redis_lock::pause(&locks.options).await;
            self.hold_in_pg(at, user_id).await
        }
        .await;
        guard.release().await;
        held
    }
}

impl StackBackend {
    /// The seat map as PostgreSQL has it (lapsed holds read AVAILABLE
    /// under the sweeper, HELD until released under delayed expiry).
    pub(super) async fn seats_from_pg(
        &self,
        concert_id: &str,
        schedule_id: &str,
    ) -> Result<Vec<SeatView>> {
        let client = self.pg().await?;
        let free = free_sql("t.", &self.stack().seat_map.options);
        let rows = client
            .query(
                &format!(
                    "SELECT t.seat_number,
                            CASE WHEN {free} THEN 'AVAILABLE' ELSE t.status END,
                            s.price
                     FROM schedules s JOIN seats t USING (concert_id, schedule_id)
                     WHERE s.concert_id = $1 AND s.schedule_id = $2
                     ORDER BY t.seat_number"
                ),
                &[&concert_id, &schedule_id],
            )
            .await?;
        if rows.is_empty() {
            return Err(Self::missing(&client, concert_id, schedule_id).await);
        }
        Ok(rows
            .iter()
            .map(|r| SeatView {
                seat_number: r.get::<_, i32>(0) as u32,
                status: match r.get::<_, &str>(1) {
                    "HELD" => SeatStatus::Held,
                    "CONFIRMED" => SeatStatus::Confirmed,
                    _ => SeatStatus::Available,
                },
                price: r.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    /// The hold's transaction: the claim, then the reservation under the
    /// unique index, the outbox rows and the commit.
    async fn hold_in_pg(&self, at: SeatRef<'_>, user_id: &str) -> Result<Hold> {
        let SeatRef {
            concert_id,
            schedule_id,
            seat,
        } = at;
        let seat_number = seat as i32;
        let reservation_id = new_reservation_id();
        let ttl_ms = self.stack().hold_ttl.as_millis() as f64;
        let options = &self.stack().seat_map.options;
        let mut client = self.pg().await?;
        let tx = client.transaction().await?;
        let rid = reservation_id.as_str();
        let Claim {
            retired: lapsed,
            held,
        } = match options.seat_lock {
            SeatLockKind::Conditional => conditional::claim(&tx, at, rid, ttl_ms, options).await?,
            SeatLockKind::RowLock => row_lock::claim(&tx, at, rid, ttl_ms, options).await?,
            SeatLockKind::RedisLock => redis_lock::claim(&tx, at, rid, ttl_ms, options).await?,
        };
        let Some((expires_at, price)) = held else {
            // Commit the lazy release (if any); the seat is someone's.
            let staged = self.stage(&tx, &lapsed, None).await?;
            tx.commit().await?;
            drop(client);
            self.stack().publish_staged(staged).await;
            return Err(seat_taken(schedule_id, seat));
        };
        let inserted = tx
            .execute(
                "INSERT INTO seat_reservations
                   (reservation_id, concert_id, schedule_id, seat_number, user_id, price, status, expires_at)
                 SELECT $1, $2, $3, $4, $5, $6, 'HELD', hold_expires_at FROM seats
                 WHERE concert_id = $2 AND schedule_id = $3 AND seat_number = $4",
                &[
                    &reservation_id,
                    &concert_id,
                    &schedule_id,
                    &seat_number,
                    &user_id,
                    &price,
                ],
            )
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // The partial unique index caught a second active hold.
                warn!(
                    concert_id,
                    schedule_id, seat, "unique index refused a second active hold"
                );
                return Err(seat_taken(schedule_id, seat));
            }
            Err(e) => return Err(e.into()),
        }
        let created = Held {
            reservation_id: reservation_id.clone(),
            concert_id: concert_id.to_owned(),
            schedule_id: schedule_id.to_owned(),
            seat_number,
            user_id: user_id.to_owned(),
        };
        let staged = self.stage(&tx, &lapsed, Some(&created)).await?;
        tx.commit().await?;
        drop(client);
        self.stack()
            .invalidate_seat_map(concert_id, schedule_id, false)
            .await;
        self.stack().publish_staged(staged).await;
        Ok(Hold {
            reservation_id,
            status: SeatStatus::Held,
            expires_at,
        })
    }
}

impl StackBackend {
    /// Undoes `create_event` when the concert's own commit failed.
    async fn drop_queue(&self, event_id: &str) {
        let _: redis::RedisResult<()> =
            redis::AsyncCommands::del(&mut self.redis(), &self.keys(event_id).for_script()[..])
                .await;
        if let Ok(client) = self.pg().await {
            for sql in [
                "DELETE FROM event_stock WHERE event_id = $1",
                "DELETE FROM events WHERE event_id = $1",
            ] {
                let _ = client.execute(sql, &[&event_id]).await;
            }
        }
    }

    /// 404 naming what is missing: the concert or its schedule.
    async fn missing(c: &impl GenericClient, concert_id: &str, schedule_id: &str) -> Error {
        let concert = c
            .query_opt(
                "SELECT 1 FROM concerts WHERE concert_id = $1",
                &[&concert_id],
            )
            .await
            .ok()
            .flatten();
        if concert.is_none() {
            not_found_concert(concert_id)
        } else {
            Error::not_found(format!(
                "schedule {schedule_id} of concert {concert_id} not found"
            ))
        }
    }

    /// Writes the hold's events to the outbox in its transaction: the
    /// lapsed holds it retired, then the new hold (if it was made).
    async fn stage(
        &self,
        tx: &impl GenericClient,
        lapsed: &[Held],
        created: Option<&Held>,
    ) -> Result<Vec<Staged>> {
        let events: Vec<(SeatEvent, &Held, Option<&Payment>)> = lapsed
            .iter()
            .map(|h| (SeatEvent::ReservationExpired, h, None))
            .chain(created.map(|h| (SeatEvent::ReservationCreated, h, None)))
            .collect();
        Ok(outbox::stage(tx, &self.stack().topics, &events).await?)
    }
}

fn not_found_concert(concert_id: &str) -> Error {
    Error::not_found(format!("concert {concert_id} not found"))
}
