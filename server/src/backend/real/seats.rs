//! The concert seat map on the real stack, as seeds 001 and 002 decide:
//! PostgreSQL is the authority for seats, holds, points and payments.
//!
//! - A hold is one conditional UPDATE of the seat row (AVAILABLE, or HELD
//!   and lapsed, to HELD) in a transaction that also marks the lapsed hold
//!   it replaces EXPIRED and inserts the new reservation; the unique partial
//!   index `seat_reservations_one_active` (one HELD or CONFIRMED reservation
//!   per seat) is the last line of defence.
//! - A payment is one transaction: lock the reservation, confirm the seat
//!   only if the hold is still valid and the payer's, debit the points
//!   (`CHECK (balance >= 0)` refuses an overdraft), insert the payment
//!   (unique per reservation and per idempotency key).
//! - Lapsed holds read as AVAILABLE at once; the sweeper (every instance,
//!   `SKIP LOCKED`) releases them for good and publishes `reservation.expired`.
//! - Events go to Kafka after the commit: `reservation.created`,
//!   `payment.completed`, `reservation.expired` (key: concert id).
//!
//! No Redis cache of the seat map: PostgreSQL answers a 50-seat read by
//! primary key, and a cache would have to be invalidated on every
//! confirmation to never show a CONFIRMED seat as AVAILABLE.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use rdkafka::producer::FutureRecord;
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tracing::warn;

use super::{delayed_interval, next_tick, pg_down, Component, RealBackend, Worker};
use crate::concert::{
    hold_expired, new_payment_id, not_found_reservation, seat_taken, ConcertSpec, Hold, PayRequest,
    Payment, PaymentTarget, ScheduleView, SeatEvent, SeatStatus, SeatView, MAX_BALANCE,
};
use crate::error::{Error, Result};
use crate::model::new_reservation_id;
use crate::token::Claims;

/// How often the sweeper looks for lapsed holds.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// Most holds one sweep releases.
const SWEEP_BATCH: i64 = 500;
/// RFC 3339 UTC with milliseconds, as PostgreSQL formats it.
const RFC3339: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

/// One seat-map event as published.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct EventRecord<'a> {
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

/// A reservation's seat and owner, as events need them.
struct Held {
    reservation_id: String,
    concert_id: String,
    schedule_id: String,
    seat_number: i32,
    user_id: String,
}

impl RealBackend {
    /// The concert's rows and its waiting line (a queue of the same id).
    pub async fn create_concert(&self, spec: &ConcertSpec) -> Result<()> {
        self.require(&[Component::Redis, Component::Postgres])?;
        let mut client = self.pg().await?;
        let tx = client.transaction().await.map_err(pg_down)?;
        let inserted = tx
            .execute(
                "INSERT INTO concerts (concert_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&spec.concert_id, &spec.name],
            )
            .await
            .map_err(pg_down)?;
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
            .await
            .map_err(pg_down)?;
            tx.execute(
                "INSERT INTO seats (concert_id, schedule_id, seat_number)
                 SELECT $1, $2, n FROM generate_series(1, $3) AS n",
                &[&spec.concert_id, &s.schedule_id, &(s.seat_count as i32)],
            )
            .await
            .map_err(pg_down)?;
        }
        // The queue (Redis and the events table); ALREADY_EXISTS when an
        // event has this id. Our transaction is still open, so nothing of
        // the concert is visible until both exist.
        self.create_event(spec.queue_spec()).await?;
        if let Err(e) = tx.commit().await {
            self.drop_queue(&spec.concert_id).await;
            return Err(pg_down(e));
        }
        Ok(())
    }

    /// Undoes `create_event` when the concert's own commit failed.
    async fn drop_queue(&self, event_id: &str) {
        let _: redis::RedisResult<()> =
            redis::AsyncCommands::del(&mut self.redis(), &self.keys(event_id)[..]).await;
        if let Ok(client) = self.pg().await {
            for sql in [
                "DELETE FROM event_stock WHERE event_id = $1",
                "DELETE FROM events WHERE event_id = $1",
            ] {
                let _ = client.execute(sql, &[&event_id]).await;
            }
        }
    }

    pub async fn schedules(&self, concert_id: &str) -> Result<Vec<ScheduleView>> {
        self.require(&[Component::Postgres])?;
        let client = self.pg().await?;
        let rows = client
            .query(
                "SELECT s.schedule_id, to_char(s.date, 'YYYY-MM-DD'),
                        (SELECT count(*) FROM seats t
                          WHERE t.concert_id = s.concert_id AND t.schedule_id = s.schedule_id
                            AND (t.status = 'AVAILABLE'
                                 OR (t.status = 'HELD' AND t.hold_expires_at <= now())))
                 FROM schedules s WHERE s.concert_id = $1
                 ORDER BY s.date, s.schedule_id",
                &[&concert_id],
            )
            .await
            .map_err(pg_down)?;
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

    pub async fn seats(&self, concert_id: &str, schedule_id: &str) -> Result<Vec<SeatView>> {
        self.require(&[Component::Postgres])?;
        let client = self.pg().await?;
        let rows = client
            .query(
                "SELECT t.seat_number,
                        CASE WHEN t.status = 'HELD' AND t.hold_expires_at <= now()
                             THEN 'AVAILABLE' ELSE t.status END,
                        s.price
                 FROM schedules s JOIN seats t USING (concert_id, schedule_id)
                 WHERE s.concert_id = $1 AND s.schedule_id = $2
                 ORDER BY t.seat_number",
                &[&concert_id, &schedule_id],
            )
            .await
            .map_err(pg_down)?;
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

    /// 404 unless the seat exists (naming what is missing).
    pub async fn check_seat(&self, concert_id: &str, schedule_id: &str, seat: u32) -> Result<()> {
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
                .map_err(pg_down)?;
            if exists.is_none() {
                let schedule = client
                    .query_opt(
                        "SELECT 1 FROM schedules WHERE concert_id = $1 AND schedule_id = $2",
                        &[&concert_id, &schedule_id],
                    )
                    .await
                    .map_err(pg_down)?;
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

    /// The hold itself, once the seat and the token were checked.
    pub async fn hold_seat(
        &self,
        concert_id: &str,
        schedule_id: &str,
        seat: u32,
        user_id: &str,
    ) -> Result<Hold> {
        let seat_number = seat as i32;
        let reservation_id = new_reservation_id();
        let ttl_ms = self.shared.stack.hold_ttl.as_millis() as f64;
        let mut client = self.pg().await?;
        let tx = client.transaction().await.map_err(pg_down)?;
        // Lazily release a lapsed hold of this seat, if there is one.
        let lapsed = tx
            .query(
                "UPDATE seat_reservations SET status = 'EXPIRED'
                 WHERE concert_id = $1 AND schedule_id = $2 AND seat_number = $3
                   AND status = 'HELD' AND expires_at <= now()
                 RETURNING reservation_id, user_id",
                &[&concert_id, &schedule_id, &seat_number],
            )
            .await
            .map_err(pg_down)?;
        // The hold itself: only an AVAILABLE or lapsed seat changes.
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE seats SET status = 'HELD', reservation_id = $4,
                            hold_expires_at = now() + $5 * interval '1 millisecond'
                     WHERE concert_id = $1 AND schedule_id = $2 AND seat_number = $3
                       AND (status = 'AVAILABLE' OR (status = 'HELD' AND hold_expires_at <= now()))
                     RETURNING to_char(hold_expires_at AT TIME ZONE 'UTC', {RFC3339}),
                               (SELECT price FROM schedules
                                 WHERE concert_id = $1 AND schedule_id = $2)"
                ),
                &[
                    &concert_id,
                    &schedule_id,
                    &seat_number,
                    &reservation_id,
                    &ttl_ms,
                ],
            )
            .await
            .map_err(pg_down)?;
        let Some(row) = row else {
            // Commit the lazy release (if any); the seat is someone's.
            tx.commit().await.map_err(pg_down)?;
            self.publish_lapsed(concert_id, schedule_id, seat_number, &lapsed)
                .await;
            return Err(seat_taken(schedule_id, seat));
        };
        let expires_at: String = row.get(0);
        let price: i64 = row.get(1);
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
            Err(e) => return Err(pg_down(e)),
        }
        tx.commit().await.map_err(pg_down)?;
        self.publish_lapsed(concert_id, schedule_id, seat_number, &lapsed)
            .await;
        self.publish(
            SeatEvent::ReservationCreated,
            &Held {
                reservation_id: reservation_id.clone(),
                concert_id: concert_id.to_owned(),
                schedule_id: schedule_id.to_owned(),
                seat_number,
                user_id: user_id.to_owned(),
            },
            None,
        )
        .await;
        Ok(Hold {
            reservation_id,
            status: SeatStatus::Held,
            expires_at,
        })
    }

    async fn publish_lapsed(
        &self,
        concert_id: &str,
        schedule_id: &str,
        seat_number: i32,
        lapsed: &[tokio_postgres::Row],
    ) {
        for r in lapsed {
            let held = Held {
                reservation_id: r.get(0),
                concert_id: concert_id.to_owned(),
                schedule_id: schedule_id.to_owned(),
                seat_number,
                user_id: r.get(1),
            };
            self.publish(SeatEvent::ReservationExpired, &held, None)
                .await;
        }
    }

    async fn publish(&self, event: SeatEvent, held: &Held, payment: Option<&Payment>) {
        self.shared.stack.publish(event, held, payment).await;
    }

    /// Debit, confirm and record (a replay if a concurrent request won),
    /// then publish `payment.completed` for a payment this call made.
    pub async fn settle(&self, user: &str, request: &PayRequest) -> Result<Payment> {
        let (payment, held) = self.pay_tx(user, request).await?;
        if let Some(held) = held {
            self.publish(SeatEvent::PaymentCompleted, &held, Some(&payment))
                .await;
        }
        Ok(payment)
    }

    /// The token is used: DONE, and its slot goes to the next in line.
    /// The payment is committed whatever Redis says: a failure here leaves
    /// the token ACTIVE until its active time runs out.
    pub async fn finish_token(&self, claims: &Claims) {
        let done: redis::RedisResult<Vec<String>> = self
            .shared
            .stack
            .scripts
            .complete
            .key(&self.keys(&claims.event_id)[..])
            .arg(claims.seq)
            .arg(&claims.user_id)
            .invoke_async(&mut self.redis())
            .await;
        if let Err(e) = done {
            warn!(error = %e, user = %claims.user_id, "paid, but the token could not be marked DONE");
        }
    }

    /// The payment a key already made; 400 when the key was used for
    /// another reservation or by another user.
    pub async fn replay(&self, user: &str, request: &PayRequest) -> Result<Option<Payment>> {
        self.require(&[Component::Postgres])?;
        replay_on(&self.pg().await?, user, request).await
    }

    /// The reservation's concert and its payment, if made: 404 when the
    /// reservation is unknown or not the user's.
    pub async fn payment_target(&self, user: &str, reservation_id: &str) -> Result<PaymentTarget> {
        self.require(&[Component::Postgres])?;
        payment_target_on(&self.pg().await?, user, reservation_id).await
    }

    /// The payment transaction. Returns the payment and, when this call
    /// made it (not a replay), the seat for the event.
    async fn pay_tx(&self, user: &str, request: &PayRequest) -> Result<(Payment, Option<Held>)> {
        let mut client = self.pg().await?;
        let tx = client.transaction().await.map_err(pg_down)?;
        let r = tx
            .query_opt(
                "SELECT concert_id, schedule_id, seat_number, price, status, expires_at > now()
                 FROM seat_reservations WHERE reservation_id = $1 AND user_id = $2 FOR UPDATE",
                &[&request.reservation_id, &user],
            )
            .await
            .map_err(pg_down)?
            .ok_or_else(|| not_found_reservation(&request.reservation_id))?;
        let held = Held {
            reservation_id: request.reservation_id.clone(),
            concert_id: r.get(0),
            schedule_id: r.get(1),
            seat_number: r.get(2),
            user_id: user.to_owned(),
        };
        let price: i64 = r.get(3);
        let status: &str = r.get(4);
        let valid: bool = r.get(5);
        if status == "CONFIRMED" {
            // A concurrent request paid it while we waited for the lock.
            // (Read on this connection: a second one from the pool could
            // wait for ever when every connection is such a waiter.)
            let paid = payment_target_on(&tx, user, &request.reservation_id)
                .await?
                .paid;
            return paid
                .map(|p| (p, None))
                .ok_or_else(|| Error::Internal("confirmed reservation without payment".into()));
        }
        if status != "HELD" || !valid {
            return Err(hold_expired(&request.reservation_id));
        }
        let confirmed = tx
            .execute(
                "UPDATE seats SET status = 'CONFIRMED', hold_expires_at = NULL
                 WHERE concert_id = $1 AND schedule_id = $2 AND seat_number = $3
                   AND status = 'HELD' AND reservation_id = $4 AND hold_expires_at > now()",
                &[
                    &held.concert_id,
                    &held.schedule_id,
                    &held.seat_number,
                    &request.reservation_id,
                ],
            )
            .await
            .map_err(pg_down)?;
        if confirmed != 1 {
            return Err(hold_expired(&request.reservation_id));
        }
        let balance = match tx
            .query_opt(
                "UPDATE points SET balance = balance - $2 WHERE user_id = $1 RETURNING balance",
                &[&user, &price],
            )
            .await
        {
            Ok(Some(row)) => row.get::<_, i64>(0),
            Ok(None) if price == 0 => 0,
            Ok(None) => {
                return Err(Error::InsufficientPoints {
                    balance: 0,
                    price: price as u64,
                })
            }
            Err(e) if e.code() == Some(&SqlState::CHECK_VIOLATION) => {
                // CHECK (balance >= 0) refused the debit.
                tx.rollback().await.map_err(pg_down)?;
                return Err(Error::InsufficientPoints {
                    balance: balance_on(&client, user).await?,
                    price: price as u64,
                });
            }
            Err(e) => return Err(pg_down(e)),
        };
        tx.execute(
            "UPDATE seat_reservations SET status = 'CONFIRMED' WHERE reservation_id = $1",
            &[&request.reservation_id],
        )
        .await
        .map_err(pg_down)?;
        let payment = Payment {
            payment_id: new_payment_id(),
            reservation_id: request.reservation_id.clone(),
            amount: price as u64,
            balance: balance as u64,
            status: "COMPLETED",
        };
        let inserted = tx
            .execute(
                "INSERT INTO payments (payment_id, reservation_id, user_id, amount, balance_after, idempotency_key)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &payment.payment_id,
                    &payment.reservation_id,
                    &user,
                    &price,
                    &balance,
                    &request.idempotency_key,
                ],
            )
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // The key was taken by a concurrent payment meanwhile.
                tx.rollback().await.map_err(pg_down)?;
                return match replay_on(&client, user, request).await? {
                    Some(p) => Ok((p, None)),
                    None => Err(pg_down(e)),
                };
            }
            Err(e) => return Err(pg_down(e)),
        }
        tx.commit().await.map_err(pg_down)?;
        Ok((payment, Some(held)))
    }

    pub async fn points(&self, user_id: &str) -> Result<u64> {
        self.require(&[Component::Postgres])?;
        balance_on(&self.pg().await?, user_id).await
    }

    pub async fn charge(&self, user_id: &str, amount: u64) -> Result<u64> {
        self.require(&[Component::Postgres])?;
        let client = self.pg().await?;
        let row = client
            .query_one(
                "INSERT INTO points (user_id, balance) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET balance = points.balance + excluded.balance
                 RETURNING balance",
                &[&user_id, &(amount as i64)],
            )
            .await;
        match row {
            Ok(row) => Ok(row.get::<_, i64>(0) as u64),
            Err(e) if e.code() == Some(&SqlState::CHECK_VIOLATION) => Err(Error::bad_request(
                format!("a balance may not exceed {MAX_BALANCE}"),
            )),
            Err(e) => Err(pg_down(e)),
        }
    }
}

impl Worker {
    /// Publishes a seat-map event after its commit. A failed send is logged
    /// and counted as not published: PostgreSQL already holds the truth.
    async fn publish(&self, event: SeatEvent, held: &Held, payment: Option<&Payment>) {
        let record = EventRecord {
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
        let topic = self.seat_topic(event);
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

    /// Releases lapsed holds for good, a batch per tick, from any instance.
    pub(super) async fn hold_sweep_loop(self, mut stop: watch::Receiver<bool>) {
        let mut interval = delayed_interval(SWEEP_EVERY);
        while next_tick(&mut interval, &mut stop).await {
            match self.sweep_holds().await {
                Ok(released) => {
                    for held in &released {
                        self.publish(SeatEvent::ReservationExpired, held, None)
                            .await;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "hold sweep"),
            }
        }
    }

    async fn sweep_holds(&self) -> std::result::Result<Vec<Held>, String> {
        let client = self.pg.get().await.map_err(|e| e.to_string())?;
        let rows = client
            .query(
                "WITH lapsed AS (
                     UPDATE seat_reservations SET status = 'EXPIRED'
                     WHERE reservation_id IN (
                         SELECT reservation_id FROM seat_reservations
                         WHERE status = 'HELD' AND expires_at <= now()
                         ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                     RETURNING reservation_id, concert_id, schedule_id, seat_number, user_id),
                 freed AS (
                     UPDATE seats s SET status = 'AVAILABLE', reservation_id = NULL, hold_expires_at = NULL
                     FROM lapsed l
                     WHERE s.concert_id = l.concert_id AND s.schedule_id = l.schedule_id
                       AND s.seat_number = l.seat_number AND s.reservation_id = l.reservation_id
                       AND s.status = 'HELD')
                 SELECT reservation_id, concert_id, schedule_id, seat_number, user_id FROM lapsed",
                &[&SWEEP_BATCH],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|r| Held {
                reservation_id: r.get(0),
                concert_id: r.get(1),
                schedule_id: r.get(2),
                seat_number: r.get(3),
                user_id: r.get(4),
            })
            .collect())
    }
}

/// A user's balance (0 without an account).
async fn balance_on(c: &impl GenericClient, user_id: &str) -> Result<u64> {
    let row = c
        .query_opt("SELECT balance FROM points WHERE user_id = $1", &[&user_id])
        .await
        .map_err(pg_down)?;
    Ok(row.map(|r| r.get::<_, i64>(0) as u64).unwrap_or(0))
}

/// The payment a key already made; 400 when the key was used for another
/// reservation or by another user.
async fn replay_on(
    c: &impl GenericClient,
    user: &str,
    request: &PayRequest,
) -> Result<Option<Payment>> {
    let Some(key) = &request.idempotency_key else {
        return Ok(None);
    };
    let row = c
        .query_opt(
            "SELECT payment_id, reservation_id, amount, balance_after, user_id
             FROM payments WHERE idempotency_key = $1",
            &[key],
        )
        .await
        .map_err(pg_down)?;
    let Some(row) = row else { return Ok(None) };
    let payment = payment_of(&row);
    if payment.reservation_id != request.reservation_id || row.get::<_, &str>(4) != user {
        return Err(Error::bad_request(
            "Idempotency-Key was already used for another payment",
        ));
    }
    Ok(Some(payment))
}

/// The reservation's concert and its payment, if made: 404 when the
/// reservation is unknown or not the user's.
async fn payment_target_on(
    c: &impl GenericClient,
    user: &str,
    reservation_id: &str,
) -> Result<PaymentTarget> {
    let row = c
        .query_opt(
            "SELECT r.concert_id, p.payment_id, p.reservation_id, p.amount, p.balance_after
             FROM seat_reservations r LEFT JOIN payments p USING (reservation_id)
             WHERE r.reservation_id = $1 AND r.user_id = $2",
            &[&reservation_id, &user],
        )
        .await
        .map_err(pg_down)?
        .ok_or_else(|| not_found_reservation(reservation_id))?;
    let paid = row.get::<_, Option<String>>(1).map(|payment_id| Payment {
        payment_id,
        reservation_id: row.get(2),
        amount: row.get::<_, i64>(3) as u64,
        balance: row.get::<_, i64>(4) as u64,
        status: "COMPLETED",
    });
    Ok(PaymentTarget {
        concert_id: row.get(0),
        paid,
    })
}

fn payment_of(row: &tokio_postgres::Row) -> Payment {
    Payment {
        payment_id: row.get(0),
        reservation_id: row.get(1),
        amount: row.get::<_, i64>(2) as u64,
        balance: row.get::<_, i64>(3) as u64,
        status: "COMPLETED",
    }
}

fn not_found_concert(concert_id: &str) -> Error {
    Error::not_found(format!("concert {concert_id} not found"))
}
