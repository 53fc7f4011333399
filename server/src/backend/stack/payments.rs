//! Points and payments on the shared stack, in PostgreSQL.
//!
//! A payment is one transaction: lock the reservation, confirm the seat
//! only if the hold is still valid and the payer's, debit the points
//! (`CHECK (balance >= 0)` refuses an overdraft), insert the payment
//! (unique per reservation and per idempotency key), and write
//! `payment.completed` to the outbox; it is sent after the commit (see
//! [`super::outbox`]).

use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;

use super::health::Component;
use super::lua::CompleteReply;
use super::messages::Held;
use super::outbox::{self, Staged};
use super::StackBackend;
use crate::backend::Payments;
use crate::concert::{
    hold_expired, new_payment_id, not_found_reservation, PayRequest, Payment, PaymentTarget,
    SeatEvent, MAX_BALANCE,
};
use crate::error::{Error, Result};
use crate::token::Claims;

impl Payments for StackBackend {
    /// The payment a key already made; 400 when the key was used for
    /// another reservation or by another user.
    async fn replay(&self, user: &str, request: &PayRequest) -> Result<Option<Payment>> {
        self.require(&[Component::Postgres])?;
        replay_on(&self.pg().await?, user, request).await
    }

    /// The reservation's concert and its payment, if made: 404 when the
    /// reservation is unknown or not the user's.
    async fn payment_target(&self, user: &str, reservation_id: &str) -> Result<PaymentTarget> {
        self.require(&[Component::Postgres])?;
        payment_target_on(&self.pg().await?, user, reservation_id).await
    }

    /// Debit, confirm and record (a replay if a concurrent request won),
    /// then send `payment.completed` for a payment this call made.
    async fn settle(&self, user: &str, request: &PayRequest) -> Result<Payment> {
        // pay_tx has given its connection back: sending marks the outbox
        // row with another one.
        let (payment, staged) = self.pay_tx(user, request).await?;
        self.stack().publish_staged(staged).await;
        Ok(payment)
    }

    /// The token is used: DONE, and its slot goes to the next in line.
    async fn finish_token(&self, claims: &Claims) -> Result<()> {
        let _: CompleteReply = self
            .stack()
            .scripts
            .complete
            .on(&self.keys(&claims.event_id))
            .arg(claims.seq)
            .arg(&claims.user_id)
            .run(&mut self.redis())
            .await?;
        Ok(())
    }

    async fn points(&self, user_id: &str) -> Result<u64> {
        self.require(&[Component::Postgres])?;
        balance_on(&self.pg().await?, user_id).await
    }

    async fn charge(&self, user_id: &str, amount: u64) -> Result<u64> {
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
            Err(e) => Err(e.into()),
        }
    }
}

impl StackBackend {
    /// The payment transaction. Returns the payment and, when this call
    /// made it (not a replay), its `payment.completed` event, committed to
    /// the outbox with it.
    async fn pay_tx(&self, user: &str, request: &PayRequest) -> Result<(Payment, Vec<Staged>)> {
        let mut client = self.pg().await?;
        let tx = client.transaction().await?;
        let r = tx
            .query_opt(
                "SELECT concert_id, schedule_id, seat_number, price, status, expires_at > now()
                 FROM seat_reservations WHERE reservation_id = $1 AND user_id = $2 FOR UPDATE",
                &[&request.reservation_id, &user],
            )
            .await?
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
                .map(|p| (p, Vec::new()))
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
            .await?;
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
                tx.rollback().await?;
                return Err(Error::InsufficientPoints {
                    balance: balance_on(&client, user).await?,
                    price: price as u64,
                });
            }
            Err(e) => return Err(e.into()),
        };
        tx.execute(
            "UPDATE seat_reservations SET status = 'CONFIRMED' WHERE reservation_id = $1",
            &[&request.reservation_id],
        )
        .await?;
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
                tx.rollback().await?;
                return match replay_on(&client, user, request).await? {
                    Some(p) => Ok((p, Vec::new())),
                    None => Err(e.into()),
                };
            }
            Err(e) => return Err(e.into()),
        }
        let staged = outbox::stage(
            &tx,
            &self.stack().topics,
            &[(SeatEvent::PaymentCompleted, &held, Some(&payment))],
        )
        .await?;
        tx.commit().await?;
        self.stack()
            .invalidate_seat_map(&held.concert_id, &held.schedule_id, false)
            .await;
        Ok((payment, staged))
    }
}

/// A user's balance (0 without an account).
async fn balance_on(c: &impl GenericClient, user_id: &str) -> Result<u64> {
    let row = c
        .query_opt("SELECT balance FROM points WHERE user_id = $1", &[&user_id])
        .await?;
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
        .await?;
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
        .await?
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
