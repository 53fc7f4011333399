//! The embedded backend: every piece of state in this process.
//!
//! It has the shared stack's observable semantics: a FIFO line per event
//! with at most `activeCapacity` entries ACTIVE, stock decremented
//! atomically under the event's lock ([`queue`]), an asynchronous
//! persistence step (an in-process consumer of reservation events, standing
//! in for Kafka -> PostgreSQL) that turns PENDING into CONFIRMED, and the
//! seat map with points and payments ([`seats`]).
//!
//! Locks are `std::sync::Mutex`, not tokio's: critical sections are short,
//! never span an `.await`, and a std mutex is cheaper uncontended. Lock order
//! is `events` (read) -> one event's `state`, and `reservations` is only ever
//! taken alone, so there is no cycle.

mod admission;
mod queue;
mod seats;
#[cfg(test)]
mod tests;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::{BackendOptions, ComponentHealth, Operations, Payments, Seats};
use crate::backend::Queue;
use crate::concert::{
    ConcertSpec, ConcertView, Hold, PayRequest, Payment, PaymentTarget, ScheduleView, SeatRef,
    SeatView,
};
use crate::config::NegativeControls;
use crate::error::{Error, Result};
use crate::model::{EventGauges, Reservation, ReservationStatus};
use crate::token::Claims;
use queue::EventCell;
use seats::MemorySeats;

/// How often expired ACTIVE slots are reclaimed when no request touches an event.
const SWEEP_INTERVAL: Duration = Duration::from_millis(200);
/// How often the persistence consumer drains the reservation log. Polling
/// (as a Kafka consumer does) rather than waking per reservation keeps the
/// reserve path free of cross-thread wake-ups; it bounds PENDING time.
const PERSIST_INTERVAL: Duration = Duration::from_millis(5);
/// Reservation map shards: a growing map rehashes under its lock, so one big
/// map stalls every buyer at each doubling; 32 small ones stall few, briefly.
const RESERVATION_SHARDS: usize = 32;

#[derive(Clone)]
pub struct MemoryBackend {
    shared: Arc<Shared>,
}

struct Shared {
    events: RwLock<HashMap<Arc<str>, Arc<EventCell>>>,
    reservations: Box<[Mutex<HashMap<String, Reservation>>]>,
    /// The reservation event log ("ticket.reserved"): ids not yet persisted.
    log: Mutex<Vec<String>>,
    /// The concert seat map, points and payments.
    seats: MemorySeats,
    controls: NegativeControls,
}

impl MemoryBackend {
    /// Creates the backend and starts its persistence consumer and expiry
    /// sweeper; both stop by themselves when the last handle is dropped.
    pub fn start(options: BackendOptions) -> Self {
        let shared = Arc::new(Shared {
            events: RwLock::new(HashMap::new()),
            reservations: (0..RESERVATION_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            log: Mutex::new(Vec::new()),
            seats: MemorySeats::new(options.hold_ttl, options.controls.clone()),
            controls: options.controls,
        });
        tokio::spawn(persist(Arc::downgrade(&shared)));
        tokio::spawn(sweep(Arc::downgrade(&shared)));
        MemoryBackend { shared }
    }

    fn cell(&self, event_id: &str) -> Result<Arc<EventCell>> {
        let events = self.shared.events.read().expect("events lock poisoned");
        events
            .get(event_id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("event {event_id} not found")))
    }
}

impl Shared {
    /// The shard holding `reservation_id`, locked. The hasher has fixed keys
    /// so an id always maps to the same shard.
    fn reservations_of(
        &self,
        reservation_id: &str,
    ) -> MutexGuard<'_, HashMap<String, Reservation>> {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(reservation_id);
        let shard = (hash % self.reservations.len() as u64) as usize;
        self.reservations[shard]
            .lock()
            .expect("reservations lock poisoned")
    }

    fn cells(&self) -> Vec<Arc<EventCell>> {
        let events = self.events.read().expect("events lock poisoned");
        events.values().cloned().collect()
    }
}

impl Seats for MemoryBackend {
    /// A concert and its waiting line (the queue of the same id, stock 0).
    async fn create_concert(&self, spec: &ConcertSpec) -> Result<()> {
        self.create_event(spec.queue_spec()).await?;
        self.shared.seats.create(spec);
        Ok(())
    }

    async fn schedules(&self, concert_id: &str) -> Result<Vec<ScheduleView>> {
        self.shared.seats.schedules(concert_id)
    }

    async fn concerts(&self) -> Result<Vec<ConcertView>> {
        Ok(self.shared.seats.concerts())
    }

    async fn seats(&self, concert_id: &str, schedule_id: &str) -> Result<Vec<SeatView>> {
        self.shared.seats.seats(concert_id, schedule_id)
    }

    async fn check_seat(&self, at: SeatRef<'_>) -> Result<()> {
        self.shared.seats.check_seat(at)
    }

    async fn hold_seat(&self, at: SeatRef<'_>, user_id: &str) -> Result<Hold> {
        self.shared.seats.hold(at, user_id).await
    }
}

impl Payments for MemoryBackend {
    async fn replay(&self, user_id: &str, request: &PayRequest) -> Result<Option<Payment>> {
        self.shared.seats.replay(user_id, request)
    }

    async fn payment_target(&self, user_id: &str, reservation_id: &str) -> Result<PaymentTarget> {
        self.shared.seats.payment_target(user_id, reservation_id)
    }

    async fn settle(&self, user_id: &str, request: &PayRequest) -> Result<Payment> {
        self.shared.seats.pay(user_id, request)
    }

    async fn finish_token(&self, claims: &Claims) -> Result<()> {
        self.cell(&claims.event_id)?.finish(claims)
    }

    async fn points(&self, user_id: &str) -> Result<u64> {
        Ok(self.shared.seats.points(user_id))
    }

    async fn charge(&self, user_id: &str, amount: u64) -> Result<u64> {
        self.shared.seats.charge(user_id, amount)
    }
}

impl Operations for MemoryBackend {
    async fn health(&self) -> Vec<ComponentHealth> {
        vec![ComponentHealth {
            name: "memory",
            up: true,
        }]
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.shared.seats.events.register(registry);
    }

    async fn gauges(&self) -> Vec<EventGauges> {
        self.shared.cells().iter().map(|c| c.gauges()).collect()
    }
}

/// The persistence step: consumes the reservation log and marks each
async fn persist(shared: Weak<Shared>) {
    let mut interval = tokio::time::interval(PERSIST_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        std::mem::swap(
            &mut batch,
            &mut *shared.log.lock().expect("log lock poisoned"),
        );
        for id in batch.drain(..) {
            if let Some(r) = shared.reservations_of(&id).get_mut(&id) {
                r.status = ReservationStatus::Confirmed;
            }
        }
    }
}

/// Reclaims expired slots of events nobody is touching, so SSE clients see
/// admissions without traffic.
async fn sweep(shared: Weak<Shared>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let cells = shared.cells();
        shared.seats.sweep();
        drop(shared);
        let now = Instant::now();
        for cell in cells {
            cell.sweep(now);
        }
    }
}
