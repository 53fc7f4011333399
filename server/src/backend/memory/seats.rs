//! The embedded backend's seat map, points and payments, in process.
//!
//! One mutex guards it all: every critical section is a few map operations
//! and never spans an `.await`, so a hold or a payment is atomic by
//! construction (the real stack gets the same from PostgreSQL). The queue
//! token checks happen in `MemoryBackend`, outside this lock.
//!
//! Holds lapse by time: a HELD seat whose deadline passed reads as
//! AVAILABLE at once (lazily), may be held again, and is released for good
//! (its reservation EXPIRED, `reservation.expired` counted) by whichever
//! comes first, the next hold of that seat or the sweeper.

mod list;

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::concert::{
    hold_expired, new_payment_id, not_found_reservation, rfc3339_after, seat_taken, ConcertSpec,
    Hold, PayRequest, Payment, PaymentTarget, ScheduleView, SeatEvent, SeatEventCounts, SeatRef,
    SeatStatus, SeatView, MAX_BALANCE,
};
use crate::config::NegativeControls;
use crate::error::{Error, Result};
use crate::model::new_reservation_id;

/// The unsafe mode's gap between reading a seat and writing it.
const UNSAFE_HOLD_WINDOW: Duration = Duration::from_millis(2);

pub struct MemorySeats {
    inner: Mutex<Store>,
    ttl: Duration,
    controls: NegativeControls,
    pub events: SeatEventCounts,
}

#[derive(Default)]
struct Store {
    concerts: HashMap<String, Concert>,
    reservations: HashMap<String, SeatReservation>,
    /// Reservation ids in hold order; with one TTL that is deadline order.
    holds: VecDeque<(Instant, String)>,
    points: HashMap<String, u64>,
    payments: HashMap<String, Payment>,
    payment_by_key: HashMap<String, String>,
}

struct Concert {
    name: Option<String>,
    /// In creation order (the order the admin gave).
    schedules: Vec<Schedule>,
}

struct Schedule {
    id: String,
    date: String,
    price: u64,
    /// Index `n - 1` is seat `n`.
    seats: Vec<Seat>,
}

#[derive(Clone)]
enum Seat {
    Available,
    Held { reservation: String, until: Instant },
    Confirmed,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HoldState {
    Held,
    Confirmed,
    Expired,
}

struct SeatReservation {
    concert_id: String,
    schedule: usize,
    seat: u32,
    user_id: String,
    price: u64,
    state: HoldState,
    until: Instant,
    payment_id: Option<String>,
}

impl Seat {
    fn status(&self, now: Instant) -> SeatStatus {
        match self {
            Seat::Available => SeatStatus::Available,
            Seat::Held { until, .. } if *until <= now => SeatStatus::Available,
            Seat::Held { .. } => SeatStatus::Held,
            Seat::Confirmed => SeatStatus::Confirmed,
        }
    }
}

impl MemorySeats {
    pub fn new(ttl: Duration, controls: NegativeControls) -> Self {
        MemorySeats {
            inner: Mutex::new(Store::default()),
            ttl,
            controls,
            events: SeatEventCounts::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.inner.lock().expect("seat store poisoned")
    }

    /// Adds a concert; the caller has made sure its id is free.
    pub fn create(&self, spec: &ConcertSpec) {
        let schedules = spec
            .schedules
            .iter()
            .map(|s| Schedule {
                id: s.schedule_id.clone(),
                date: s.date.clone(),
                price: s.price,
                seats: vec![Seat::Available; s.seat_count as usize],
            })
            .collect();
        self.lock().concerts.insert(
            spec.concert_id.clone(),
            Concert {
                name: spec.name.clone(),
                schedules,
            },
        );
    }

    pub fn schedules(&self, concert_id: &str) -> Result<Vec<ScheduleView>> {
        let now = Instant::now();
        let store = self.lock();
        let concert = store.concert(concert_id)?;
        Ok(concert.schedules.iter().map(|s| s.view(now)).collect())
    }

    pub fn seats(&self, concert_id: &str, schedule_id: &str) -> Result<Vec<SeatView>> {
        let now = Instant::now();
        let store = self.lock();
        let (_, schedule) = store.schedule(concert_id, schedule_id)?;
        Ok(schedule
            .seats
            .iter()
            .enumerate()
            .map(|(i, seat)| SeatView {
                seat_number: i as u32 + 1,
                status: seat.status(now),
                price: schedule.price,
            })
            .collect())
    }

    /// Checks that the seat exists (404 otherwise), before any token check.
    pub fn check_seat(&self, at: SeatRef<'_>) -> Result<()> {
        let store = self.lock();
        let (_, schedule) = store.schedule(at.concert_id, at.schedule_id)?;
        seat_index(schedule, at.seat).map(|_| ())
    }

    /// AVAILABLE (or HELD and lapsed) -> HELD by `user_id`, atomically; in
    /// the unsafe mode, read, yield, then write whatever was read.
    pub async fn hold(&self, at: SeatRef<'_>, user_id: &str) -> Result<Hold> {
        let SeatRef {
            concert_id,
            schedule_id,
            seat,
        } = at;
        if self.controls.hold {
            {
                let store = self.lock();
                let (_, schedule) = store.schedule(concert_id, schedule_id)?;
                let i = seat_index(schedule, seat)?;
                if schedule.seats[i].status(Instant::now()) != SeatStatus::Available {
                    return Err(seat_taken(schedule_id, seat));
                }
            }
            tokio::time::sleep(UNSAFE_HOLD_WINDOW).await;
            let mut store = self.lock();
            return Ok(self.write_hold(&mut store, concert_id, schedule_id, seat, user_id));
        }
        let now = Instant::now();
        let mut store = self.lock();
        let (_, schedule) = store.schedule(concert_id, schedule_id)?;
        let i = seat_index(schedule, seat)?;
        if schedule.seats[i].status(now) != SeatStatus::Available {
            return Err(seat_taken(schedule_id, seat));
        }
        Ok(self.write_hold(&mut store, concert_id, schedule_id, seat, user_id))
    }

    /// Writes a hold without looking at the seat (the caller has).
    fn write_hold(
        &self,
        store: &mut Store,
        concert_id: &str,
        schedule_id: &str,
        seat: u32,
        user_id: &str,
    ) -> Hold {
        let now = Instant::now();
        let until = now + self.ttl;
        let reservation_id = new_reservation_id();
        let (schedule_ix, price, previous) = {
            let concert = store.concerts.get_mut(concert_id).expect("checked");
            let (ix, schedule) = concert
                .schedules
                .iter_mut()
                .enumerate()
                .find(|(_, s)| s.id == schedule_id)
                .expect("checked");
            let slot = &mut schedule.seats[seat as usize - 1];
            let previous = match slot {
                Seat::Held { reservation, .. } => Some(reservation.clone()),
                _ => None,
            };
            // Negative control: the seat reads AVAILABLE (and can be held
            // again) halfway through a hold that is still in force.
            let shown_until = if self.controls.early_release {
                now + self.ttl / 2
            } else {
                until
            };
            *slot = Seat::Held {
                reservation: reservation_id.clone(),
                until: shown_until,
            };
            (ix, schedule.price, previous)
        };
        // A lapsed hold taken over is released for good now.
        if let Some(previous) = previous {
            if let Some(r) = store.reservations.get_mut(&previous) {
                if r.state == HoldState::Held {
                    r.state = HoldState::Expired;
                    self.events.published(SeatEvent::ReservationExpired, 1);
                }
            }
        }
        store.reservations.insert(
            reservation_id.clone(),
            SeatReservation {
                concert_id: concert_id.to_owned(),
                schedule: schedule_ix,
                seat,
                user_id: user_id.to_owned(),
                price,
                state: HoldState::Held,
                until,
                payment_id: None,
            },
        );
        store.holds.push_back((until, reservation_id.clone()));
        self.events.published(SeatEvent::ReservationCreated, 1);
        Hold {
            reservation_id,
            status: SeatStatus::Held,
            expires_at: rfc3339_after(self.ttl),
        }
    }

    /// The stored payment for a key, if the key was used. A key used for
    /// another reservation, or by another user, is refused.
    pub fn replay(&self, user_id: &str, request: &PayRequest) -> Result<Option<Payment>> {
        let Some(key) = &request.idempotency_key else {
            return Ok(None);
        };
        let mut store = self.lock();
        let store = &mut *store;
        let Some(payment) = store
            .payment_by_key
            .get(key)
            .and_then(|id| store.payments.get(id))
        else {
            return Ok(None);
        };
        let owner = store
            .reservations
            .get(&payment.reservation_id)
            .map(|r| r.user_id.as_str());
        if payment.reservation_id != request.reservation_id || owner != Some(user_id) {
            return Err(Error::bad_request(
                "Idempotency-Key was already used for another payment",
            ));
        }
        if self.controls.double_charge {
            return Ok(Some(charge_again(store, user_id, payment.clone())));
        }
        Ok(Some(payment.clone()))
    }

    /// The reservation a payment is for: 404 when unknown or not the user's.
    pub fn payment_target(&self, user_id: &str, reservation_id: &str) -> Result<PaymentTarget> {
        let store = self.lock();
        let r = store
            .reservations
            .get(reservation_id)
            .filter(|r| r.user_id == user_id)
            .ok_or_else(|| not_found_reservation(reservation_id))?;
        Ok(PaymentTarget {
            concert_id: r.concert_id.clone(),
            paid: r
                .payment_id
                .as_ref()
                .and_then(|id| store.payments.get(id))
                .cloned(),
        })
    }

    /// Debit, confirm and record in one step: nothing changes unless all do.
    pub fn pay(&self, user_id: &str, request: &PayRequest) -> Result<Payment> {
        let now = Instant::now();
        let mut guard = self.lock();
        let store = &mut *guard;
        if let Some(payment) = request
            .idempotency_key
            .as_ref()
            .and_then(|k| store.payment_by_key.get(k))
            .and_then(|id| store.payments.get(id))
        {
            // A concurrent request with the same key won the race.
            if payment.reservation_id == request.reservation_id {
                return Ok(payment.clone());
            }
            return Err(Error::bad_request(
                "Idempotency-Key was already used for another payment",
            ));
        }
        let r = store
            .reservations
            .get(&request.reservation_id)
            .filter(|r| r.user_id == user_id)
            .ok_or_else(|| not_found_reservation(&request.reservation_id))?;
        if let Some(paid) = r.payment_id.as_ref().and_then(|id| store.payments.get(id)) {
            return Ok(paid.clone());
        }
        let seat = &store.concerts[&r.concert_id].schedules[r.schedule].seats[r.seat as usize - 1];
        let holds_seat = matches!(seat, Seat::Held { reservation, .. } if *reservation == request.reservation_id);
        if r.state != HoldState::Held || r.until <= now || !holds_seat {
            return Err(hold_expired(&request.reservation_id));
        }
        let balance = store.points.get(user_id).copied().unwrap_or(0);
        if balance < r.price {
            return Err(Error::InsufficientPoints {
                balance,
                price: r.price,
            });
        }
        // Negative control: one point more than the price goes.
        let debit = r.price + u64::from(self.controls.balance && balance > r.price);
        let payment = Payment {
            payment_id: new_payment_id(),
            reservation_id: request.reservation_id.clone(),
            amount: r.price,
            balance: balance - debit,
            status: "COMPLETED",
        };
        let (concert_id, schedule, seat_no) = (r.concert_id.clone(), r.schedule, r.seat);
        store.points.insert(user_id.to_owned(), payment.balance);
        store
            .concerts
            .get_mut(&concert_id)
            .expect("exists")
            .schedules[schedule]
            .seats[seat_no as usize - 1] = Seat::Confirmed;
        let r = store
            .reservations
            .get_mut(&request.reservation_id)
            .expect("exists");
        r.state = HoldState::Confirmed;
        r.payment_id = Some(payment.payment_id.clone());
        if let Some(key) = &request.idempotency_key {
            store
                .payment_by_key
                .insert(key.clone(), payment.payment_id.clone());
        }
        store
            .payments
            .insert(payment.payment_id.clone(), payment.clone());
        self.events.published(SeatEvent::PaymentCompleted, 1);
        Ok(payment)
    }

    pub fn points(&self, user_id: &str) -> u64 {
        self.lock().points.get(user_id).copied().unwrap_or(0)
    }

    pub fn charge(&self, user_id: &str, amount: u64) -> Result<u64> {
        let mut store = self.lock();
        let balance = store.points.get(user_id).copied().unwrap_or(0);
        let after = balance + amount;
        if after > MAX_BALANCE {
            return Err(Error::bad_request(format!(
                "a balance may not exceed {MAX_BALANCE}"
            )));
        }
        store.points.insert(user_id.to_owned(), after);
        Ok(after)
    }

    /// Releases every hold whose time ran out (the sweeper).
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut guard = self.lock();
        let store = &mut *guard;
        while let Some((until, _)) = store.holds.front() {
            if *until > now {
                break;
            }
            let (_, id) = store.holds.pop_front().expect("peeked");
            let Some(r) = store.reservations.get_mut(&id) else {
                continue;
            };
            if r.state != HoldState::Held {
                continue;
            }
            r.state = HoldState::Expired;
            let seat = &mut store
                .concerts
                .get_mut(&r.concert_id)
                .expect("exists")
                .schedules[r.schedule]
                .seats[r.seat as usize - 1];
            if matches!(seat, Seat::Held { reservation, .. } if *reservation == id) {
                *seat = Seat::Available;
            }
            self.events.published(SeatEvent::ReservationExpired, 1);
        }
    }
}

impl Store {
    fn concert(&self, concert_id: &str) -> Result<&Concert> {
        self.concerts
            .get(concert_id)
            .ok_or_else(|| Error::not_found(format!("concert {concert_id} not found")))
    }

    fn schedule(&self, concert_id: &str, schedule_id: &str) -> Result<(usize, &Schedule)> {
        self.concert(concert_id)?
            .schedules
            .iter()
            .enumerate()
            .find(|(_, s)| s.id == schedule_id)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "schedule {schedule_id} of concert {concert_id} not found"
                ))
            })
    }
}

fn seat_index(schedule: &Schedule, seat: u32) -> Result<usize> {
    if seat >= 1 && seat as usize <= schedule.seats.len() {
        Ok(seat as usize - 1)
    } else {
        Err(Error::not_found(format!(
            "seat {seat} not found (schedule {} has seats 1..={})",
            schedule.id,
            schedule.seats.len()
        )))
    }
}

/// The double-charge negative control: a retry debits the price again and
/// answers as a new payment.
fn charge_again(store: &mut Store, user_id: &str, first: Payment) -> Payment {
    let balance = store.points.get(user_id).copied().unwrap_or(0);
    if balance < first.amount {
        return first;
    }
    let again = Payment {
        payment_id: new_payment_id(),
        balance: balance - first.amount,
        ..first
    };
    store.points.insert(user_id.to_owned(), again.balance);
    store
        .payments
        .insert(again.payment_id.clone(), again.clone());
    again
}
