//! The embedded backend: every piece of state in this process.
//!
//! It has the real stack's observable semantics: a FIFO line per event with at
//! most `activeCapacity` entries ACTIVE, stock decremented atomically under the
//! event's lock, and an asynchronous persistence step (an in-process consumer
//! of reservation events, standing in for Kafka -> PostgreSQL) that turns
//! PENDING into CONFIRMED.
//!
//! Locks are `std::sync::Mutex`, not tokio's: critical sections are short,
//! never span an `.await`, and a std mutex is cheaper uncontended. Lock order
//! is `events` (read) -> one event's `state`, and `reservations` is only ever
//! taken alone, so there is no cycle.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::memory_seats::MemorySeats;
use super::{BackendOptions, QueueWatch};
use crate::concert::{
    ConcertSpec, Hold, PayRequest, Payment, PaymentTarget, ScheduleView, SeatView,
};
use crate::error::{Error, Result};
use crate::model::{
    new_reservation_id, now_rfc3339, now_unix, Entered, EventGauges, EventSpec, EventView,
    QueueStatus, QueueView, Reservation, ReservationStatus,
};
use crate::token::Claims;

/// Admissions remembered per event to estimate the admission rate.
const RATE_WINDOW: usize = 64;
/// How often expired ACTIVE slots are reclaimed when no request touches an event.
const SWEEP_INTERVAL: Duration = Duration::from_millis(200);
/// How often the persistence consumer drains the reservation log. Polling
/// (as a Kafka consumer does) rather than waking per reservation keeps the
/// reserve path free of cross-thread wake-ups; it bounds PENDING time.
const PERSIST_INTERVAL: Duration = Duration::from_millis(5);
/// Reservation map shards: a growing map rehashes under its lock, so one big
/// map stalls every buyer at each doubling; 32 small ones stall few, briefly.
const RESERVATION_SHARDS: usize = 32;
/// The unsafe mode's gap between reading and writing the stock.
const UNSAFE_RACE_WINDOW: Duration = Duration::from_millis(2);

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
    unsafe_race: bool,
    unsafe_fifo: bool,
}

struct EventCell {
    spec: EventSpec,
    ttl: Duration,
    state: Mutex<EventState>,
    /// The admission cursor, for SSE streams. Only ever moves forward.
    cursor: watch::Sender<u64>,
    /// Negative control: admit the newest waiting entry first.
    lifo: bool,
}

#[derive(Default)]
struct EventState {
    remaining: u64,
    sold: u64,
    /// Every entry ever made, indexed by its sequence number.
    entries: Vec<Entry>,
    by_user: HashMap<Arc<str>, u64>,
    /// Entries `0..head` have been admitted; in FIFO order `head..` are
    /// all WAITING (the LIFO negative control admits from the back).
    head: u64,
    /// Entries admitted so far: the SSE cursor.
    admitted: u64,
    waiting: u64,
    active: u64,
    /// ACTIVE deadlines in admission order, hence in deadline order.
    expiries: VecDeque<(Instant, u64)>,
    admissions: VecDeque<Instant>,
}

struct Entry {
    user: Arc<str>,
    issued_at: u64,
    state: EntryState,
    bought: u32,
}

#[derive(Clone, Copy)]
enum EntryState {
    Waiting,
    Active,
    Done,
    Expired,
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
            seats: MemorySeats::new(options.hold_ttl, options.unsafe_hold),
            unsafe_race: options.unsafe_race,
            unsafe_fifo: options.unsafe_fifo,
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

    pub fn create_event(&self, spec: EventSpec) -> Result<EventView> {
        let mut events = self.shared.events.write().expect("events lock poisoned");
        if events.contains_key(spec.event_id.as_str()) {
            return Err(Error::AlreadyExists(format!(
                "event {} already exists",
                spec.event_id
            )));
        }
        let cell = Arc::new(EventCell {
            ttl: Duration::from_secs(spec.active_ttl_seconds.into()),
            state: Mutex::new(EventState {
                remaining: spec.stock,
                ..EventState::default()
            }),
            cursor: watch::Sender::new(0),
            lifo: self.shared.unsafe_fifo,
            spec,
        });
        let view = cell.view(&cell.lock());
        events.insert(cell.spec.event_id.as_str().into(), cell);
        Ok(view)
    }

    pub fn event(&self, event_id: &str) -> Result<EventView> {
        let cell = self.cell(event_id)?;
        let mut st = cell.lock();
        cell.tick(&mut st, Instant::now());
        Ok(cell.view(&st))
    }

    pub fn enter(&self, event_id: &str, user_id: &str) -> Result<Entered> {
        let cell = self.cell(event_id)?;
        let now = Instant::now();
        let mut st = cell.lock();
        let seq = match st.by_user.get(user_id) {
            Some(&seq) => seq,
            None => {
                let seq = st.entries.len() as u64;
                let user: Arc<str> = user_id.into();
                st.entries.push(Entry {
                    user: user.clone(),
                    issued_at: now_unix(),
                    state: EntryState::Waiting,
                    bought: 0,
                });
                st.by_user.insert(user, seq);
                st.waiting += 1;
                seq
            }
        };
        cell.tick(&mut st, now);
        Ok(Entered {
            seq,
            issued_at: st.entries[seq as usize].issued_at,
            view: cell.queue_view(&st, seq, now),
        })
    }

    pub fn queue_status(&self, claims: &Claims) -> Result<QueueView> {
        let cell = self.cell(&claims.event_id).map_err(|_| unknown_entry())?;
        let now = Instant::now();
        let mut st = cell.lock();
        cell.tick(&mut st, now);
        let seq = st.entry_of(claims)?;
        Ok(cell.queue_view(&st, seq, now))
    }

    pub fn watch_queue(&self, claims: &Claims) -> Result<QueueWatch> {
        let cell = self.cell(&claims.event_id).map_err(|_| unknown_entry())?;
        let now = Instant::now();
        let mut st = cell.lock();
        cell.tick(&mut st, now);
        let seq = st.entry_of(claims)?;
        Ok(QueueWatch {
            cursor: cell.cursor.subscribe(),
            current: cell.queue_view(&st, seq, now),
        })
    }

    pub async fn reserve(
        &self,
        claims: &Claims,
        event_id: &str,
        quantity: u32,
    ) -> Result<Reservation> {
        let cell = self.cell(event_id)?;
        let limit = cell.spec.per_user_limit;
        crate::validate::range("quantity", quantity, 1, limit)?;
        if claims.event_id != event_id {
            return Err(Error::NotActive("queue token was issued for another event"));
        }

        let seq = if self.shared.unsafe_race {
            // Deliberately wrong (negative control): read the stock, let other
            // buyers run, then write back what was read minus the quantity.
            let seen = {
                let mut st = cell.lock();
                cell.tick(&mut st, Instant::now());
                let seq = st.entry_of(claims)?;
                st.check_can_buy(seq, quantity, limit)?;
                st.remaining
            };
            tokio::time::sleep(UNSAFE_RACE_WINDOW).await;
            let mut st = cell.lock();
            cell.tick(&mut st, Instant::now());
            let seq = st.entry_of(claims)?;
            st.check_can_buy(seq, quantity, limit)?;
            if seen < u64::from(quantity) {
                return Err(Error::SoldOut {
                    requested: quantity,
                    remaining: seen,
                });
            }
            st.remaining = seen - u64::from(quantity);
            cell.complete_purchase(&mut st, seq, quantity);
            seq
        } else {
            let mut st = cell.lock();
            cell.tick(&mut st, Instant::now());
            let seq = st.entry_of(claims)?;
            st.check_can_buy(seq, quantity, limit)?;
            if st.remaining < u64::from(quantity) {
                return Err(Error::SoldOut {
                    requested: quantity,
                    remaining: st.remaining,
                });
            }
            st.remaining -= u64::from(quantity);
            cell.complete_purchase(&mut st, seq, quantity);
            seq
        };
        debug_assert_eq!(seq, claims.seq);

        let reservation = Reservation {
            reservation_id: new_reservation_id(),
            event_id: event_id.to_owned(),
            user_id: claims.user_id.clone(),
            quantity,
            status: ReservationStatus::Pending,
            created_at: now_rfc3339(),
        };
        self.shared
            .reservations_of(&reservation.reservation_id)
            .insert(reservation.reservation_id.clone(), reservation.clone());
        self.shared
            .log
            .lock()
            .expect("log lock poisoned")
            .push(reservation.reservation_id.clone());
        Ok(reservation)
    }

    pub fn reservation(&self, reservation_id: &str) -> Result<Reservation> {
        self.shared
            .reservations_of(reservation_id)
            .get(reservation_id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("reservation {reservation_id} not found")))
    }

    /// A concert and its waiting line (the queue of the same id, stock 0).
    pub fn create_concert(&self, spec: &ConcertSpec) -> Result<()> {
        self.create_event(spec.queue_spec())?;
        self.shared.seats.create(spec);
        Ok(())
    }

    pub fn schedules(&self, concert_id: &str) -> Result<Vec<ScheduleView>> {
        self.shared.seats.schedules(concert_id)
    }

    pub fn seats(&self, concert_id: &str, schedule_id: &str) -> Result<Vec<SeatView>> {
        self.shared.seats.seats(concert_id, schedule_id)
    }

    pub fn check_seat(&self, concert_id: &str, schedule_id: &str, seat: u32) -> Result<()> {
        self.shared.seats.check_seat(concert_id, schedule_id, seat)
    }

    pub async fn hold_seat(
        &self,
        concert_id: &str,
        schedule_id: &str,
        seat: u32,
        user_id: &str,
    ) -> Result<Hold> {
        self.shared
            .seats
            .hold(concert_id, schedule_id, seat, user_id)
            .await
    }

    pub fn replay(&self, user_id: &str, request: &PayRequest) -> Result<Option<Payment>> {
        self.shared.seats.replay(user_id, request)
    }

    pub fn payment_target(&self, user_id: &str, reservation_id: &str) -> Result<PaymentTarget> {
        self.shared.seats.payment_target(user_id, reservation_id)
    }

    pub fn settle(&self, user_id: &str, request: &PayRequest) -> Result<Payment> {
        self.shared.seats.pay(user_id, request)
    }

    /// The token is used: DONE, and its slot goes to the next in line.
    pub fn finish_token(&self, claims: &Claims) -> Result<()> {
        let cell = self.cell(&claims.event_id)?;
        let mut st = cell.lock();
        let seq = st.entry_of(claims)?;
        if matches!(st.entries[seq as usize].state, EntryState::Active) {
            cell.complete_purchase(&mut st, seq, 0);
        }
        Ok(())
    }

    pub fn points(&self, user_id: &str) -> u64 {
        self.shared.seats.points(user_id)
    }

    pub fn charge(&self, user_id: &str, amount: u64) -> Result<u64> {
        self.shared.seats.charge(user_id, amount)
    }

    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.shared.seats.events.register(registry);
    }

    pub fn gauges(&self) -> Vec<EventGauges> {
        let cells: Vec<_> = {
            let events = self.shared.events.read().expect("events lock poisoned");
            events.values().cloned().collect()
        };
        cells
            .iter()
            .map(|cell| {
                let mut st = cell.lock();
                cell.tick(&mut st, Instant::now());
                EventGauges {
                    event_id: cell.spec.event_id.clone(),
                    remaining: st.remaining,
                    waiting: st.waiting,
                    active: st.active,
                }
            })
            .collect()
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
}

fn unknown_entry() -> Error {
    Error::Unauthorized("queue token does not match any entry")
}

impl EventCell {
    fn lock(&self) -> MutexGuard<'_, EventState> {
        self.state.lock().expect("event lock poisoned")
    }

    /// Reclaims expired ACTIVE slots and admits waiting entries into free
    /// ones, in entry order. Called on every access, and by the sweeper.
    fn tick(&self, st: &mut EventState, now: Instant) {
        while let Some(&(deadline, seq)) = st.expiries.front() {
            if deadline > now {
                break;
            }
            st.expiries.pop_front();
            let entry = &mut st.entries[seq as usize];
            if matches!(entry.state, EntryState::Active) {
                entry.state = EntryState::Expired;
                st.active -= 1;
            }
        }
        let before = st.admitted;
        let capacity = u64::from(self.spec.active_capacity);
        while st.active < capacity && (st.head as usize) < st.entries.len() {
            let seq = if self.lifo {
                st.newest_waiting()
            } else {
                st.head
            };
            st.entries[seq as usize].state = EntryState::Active;
            st.expiries.push_back((now + self.ttl, seq));
            st.active += 1;
            st.admitted += 1;
            st.waiting -= 1;
            // `head` stays "everything before it has been admitted".
            while (st.head as usize) < st.entries.len()
                && !matches!(st.entries[st.head as usize].state, EntryState::Waiting)
            {
                st.head += 1;
            }
            if st.admissions.len() == RATE_WINDOW {
                st.admissions.pop_front();
            }
            st.admissions.push_back(now);
        }
        if st.admitted != before {
            let admitted = st.admitted;
            self.cursor.send_if_modified(|cursor| {
                let moved = *cursor < admitted;
                *cursor = (*cursor).max(admitted);
                moved
            });
        }
    }

    fn complete_purchase(&self, st: &mut EventState, seq: u64, quantity: u32) {
        st.sold += u64::from(quantity);
        let entry = &mut st.entries[seq as usize];
        entry.bought += quantity;
        entry.state = EntryState::Done;
        st.active -= 1;
        // The freed slot goes to the next in line at once.
        self.tick(st, Instant::now());
    }

    fn queue_view(&self, st: &EventState, seq: u64, now: Instant) -> QueueView {
        let (status, position) = match st.entries[seq as usize].state {
            EntryState::Waiting => (QueueStatus::Waiting, seq - st.head + 1),
            EntryState::Active => (QueueStatus::Active, 0),
            EntryState::Done => (QueueStatus::Done, 0),
            EntryState::Expired => (QueueStatus::Expired, 0),
        };
        QueueView {
            status,
            position,
            estimated_wait_seconds: self.estimate(st, position, now),
            cursor: st.admitted,
        }
    }

    /// Seconds until `position` is admitted, from the recent admission rate,
    /// or, before any has been seen, from capacity turning over once per TTL.
    fn estimate(&self, st: &EventState, position: u64, now: Instant) -> u64 {
        if position == 0 {
            return 0;
        }
        let per_second = match st.admissions.front() {
            Some(&oldest) if st.admissions.len() >= 2 => {
                let span = now.duration_since(oldest).as_secs_f64().max(1.0);
                st.admissions.len() as f64 / span
            }
            _ => f64::from(self.spec.active_capacity) / self.ttl.as_secs_f64().max(1.0),
        };
        (position as f64 / per_second).ceil() as u64
    }

    fn view(&self, st: &EventState) -> EventView {
        let spec = &self.spec;
        EventView {
            event_id: spec.event_id.clone(),
            name: spec.name.clone(),
            stock: spec.stock,
            remaining: st.remaining,
            sold: st.sold,
            waiting: st.waiting,
            active: st.active,
            per_user_limit: spec.per_user_limit,
            active_capacity: spec.active_capacity,
            active_ttl_seconds: spec.active_ttl_seconds,
        }
    }
}

impl EventState {
    /// The last waiting entry (LIFO negative control only).
    fn newest_waiting(&self) -> u64 {
        (self.head..self.entries.len() as u64)
            .rev()
            .find(|&seq| matches!(self.entries[seq as usize].state, EntryState::Waiting))
            .expect("called only while an entry is waiting")
    }

    /// The entry a token names; the token's user must be the entry's.
    fn entry_of(&self, claims: &Claims) -> Result<u64> {
        match self.entries.get(claims.seq as usize) {
            Some(entry) if *entry.user == *claims.user_id => Ok(claims.seq),
            _ => Err(unknown_entry()),
        }
    }

    fn check_can_buy(&self, seq: u64, quantity: u32, limit: u32) -> Result<()> {
        let entry = &self.entries[seq as usize];
        match entry.state {
            EntryState::Active => {}
            EntryState::Waiting => return Err(Error::NotActive("queue token is still waiting")),
            EntryState::Done => return Err(Error::NotActive("queue token was already used")),
            EntryState::Expired => {
                return Err(Error::NotActive("active time of this token ran out"))
            }
        }
        if entry.bought + quantity > limit {
            return Err(Error::LimitExceeded {
                limit,
                held: entry.bought,
            });
        }
        Ok(())
    }
}

/// The persistence step: consumes the reservation log and marks each
/// reservation CONFIRMED, a batch per poll.
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
        let cells: Vec<_> = {
            let events = shared.events.read().expect("events lock poisoned");
            events.values().cloned().collect()
        };
        shared.seats.sweep();
        drop(shared);
        let now = Instant::now();
        for cell in cells {
            let mut st = cell.lock();
            cell.tick(&mut st, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, stock: u64, capacity: u32) -> EventSpec {
        EventSpec {
            event_id: id.into(),
            name: None,
            stock,
            per_user_limit: 2,
            active_capacity: capacity,
            active_ttl_seconds: 300,
        }
    }

    fn claims(event: &str, user: &str, e: &Entered) -> Claims {
        Claims {
            event_id: event.into(),
            user_id: user.into(),
            seq: e.seq,
            issued_at: e.issued_at,
        }
    }

    #[tokio::test]
    async fn admission_is_fifo_and_bounded_by_capacity() {
        let b = MemoryBackend::start(BackendOptions::default());
        b.create_event(spec("e", 10, 2)).unwrap();
        let entered: Vec<_> = (0..5)
            .map(|i| b.enter("e", &format!("u{i}")).unwrap())
            .collect();
        let statuses: Vec<_> = entered
            .iter()
            .map(|e| (e.view.status, e.view.position))
            .collect();
        assert_eq!(
            statuses,
            vec![
                (QueueStatus::Active, 0),
                (QueueStatus::Active, 0),
                (QueueStatus::Waiting, 1),
                (QueueStatus::Waiting, 2),
                (QueueStatus::Waiting, 3),
            ]
        );
        // A purchase frees a slot for the next in line, not anyone else.
        b.reserve(&claims("e", "u0", &entered[0]), "e", 1)
            .await
            .unwrap();
        let v2 = b.queue_status(&claims("e", "u2", &entered[2])).unwrap();
        let v3 = b.queue_status(&claims("e", "u3", &entered[3])).unwrap();
        assert_eq!(
            (v2.status, v3.status, v3.position),
            (QueueStatus::Active, QueueStatus::Waiting, 1)
        );
        assert_eq!(b.event("e").unwrap().active, 2);
    }

    #[tokio::test]
    async fn the_lifo_negative_control_admits_the_newest_first() {
        let b = MemoryBackend::start(BackendOptions {
            unsafe_fifo: true,
            ..BackendOptions::default()
        });
        b.create_event(spec("e", 10, 1)).unwrap();
        let entered: Vec<_> = (0..4)
            .map(|i| b.enter("e", &format!("u{i}")).unwrap())
            .collect();
        b.reserve(&claims("e", "u0", &entered[0]), "e", 1)
            .await
            .unwrap();
        let status = |i: usize| {
            b.queue_status(&claims("e", &format!("u{i}"), &entered[i]))
                .unwrap()
                .status
        };
        assert_eq!(status(3), QueueStatus::Active, "the newest jumped the line");
        assert_eq!(
            (status(1), status(2)),
            (QueueStatus::Waiting, QueueStatus::Waiting)
        );
        let v = b.event("e").unwrap();
        assert_eq!((v.waiting, v.active), (2, 1));
    }

    #[tokio::test]
    async fn enter_is_idempotent() {
        let b = MemoryBackend::start(BackendOptions::default());
        b.create_event(spec("e", 10, 1)).unwrap();
        let first = b.enter("e", "a").unwrap();
        b.enter("e", "b").unwrap();
        let again = b.enter("e", "a").unwrap();
        assert_eq!((first.seq, first.issued_at), (again.seq, again.issued_at));
        assert_eq!(b.event("e").unwrap().waiting, 1);
    }

    #[tokio::test]
    async fn a_failed_reserve_changes_nothing() {
        let b = MemoryBackend::start(BackendOptions::default());
        b.create_event(spec("e", 1, 10)).unwrap();
        let a = b.enter("e", "a").unwrap();
        let err = b.reserve(&claims("e", "a", &a), "e", 2).await.unwrap_err();
        assert_eq!(err.code(), "SOLD_OUT");
        let v = b.event("e").unwrap();
        assert_eq!((v.remaining, v.sold, v.active), (1, 0, 1));
        // The token is still ACTIVE and can buy what is there.
        b.reserve(&claims("e", "a", &a), "e", 1).await.unwrap();
        assert_eq!(b.event("e").unwrap().remaining, 0);
    }
}
