//! The embedded backend's events and waiting lines: a FIFO line per event
//! with at most `activeCapacity` entries ACTIVE, and the stock, decremented
//! under the event's lock.
//!
//! Each event has its own `std::sync::Mutex` (see the parent module for
//! why not tokio's); every access first runs `tick`, which expires ACTIVE
//! entries whose time ran out and admits from the head of the line.

mod controls;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::MemoryBackend;
use crate::backend::admission::AdmissionControls;
use crate::backend::rules::{
    estimate_wait_seconds, require_active, unknown_entry, RecentAdmissions,
};
use crate::backend::{Queue, QueueWatch, Stock};
use crate::config::NegativeControls;
use crate::error::{Error, Result};
use crate::model::{
    new_reservation_id, now_rfc3339, now_unix, Entered, EntryStatus, EventGauges, EventSpec,
    EventView, QueueStatus, QueueView, Reservation, ReservationStatus,
};
use crate::token::Claims;

/// Admissions remembered per event to estimate the admission rate.
const RATE_WINDOW: usize = 64;
/// The unsafe mode's gap between reading and writing the stock.
const UNSAFE_RACE_WINDOW: Duration = Duration::from_millis(2);

pub(super) struct EventCell {
    pub(super) spec: EventSpec,
    ttl: Duration,
    state: Mutex<EventState>,
    /// The admission cursor, for SSE streams. Only ever moves forward.
    cursor: watch::Sender<u64>,
    /// Deliberate defects (negative controls), all off in real use.
    controls: NegativeControls,
}

#[derive(Default)]
pub(super) struct EventState {
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
    /// The operator's controls (capacity starts as the spec's).
    controls: AdmissionControls,
    /// The release rate's token bucket: admissions it allows now, and
    /// when it was last filled.
    release_allowance: f64,
    release_at: Option<Instant>,
}

struct Entry {
    user: Arc<str>,
    issued_at: u64,
    state: EntryState,
    bought: u32,
    /// When its active time runs out, once admitted (kept here, not
    /// looked up in `expiries`, which may hold a million entries).
    active_until: Option<Instant>,
}

#[derive(Clone, Copy)]
enum EntryState {
    Waiting,
    Active,
    Done,
    Expired,
}

impl EntryState {
    fn status(self) -> QueueStatus {
        match self {
            EntryState::Waiting => QueueStatus::Waiting,
            EntryState::Active => QueueStatus::Active,
            EntryState::Done => QueueStatus::Done,
            EntryState::Expired => QueueStatus::Expired,
        }
    }
}

impl Queue for MemoryBackend {
    async fn create_event(&self, spec: EventSpec) -> Result<EventView> {
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
                controls: AdmissionControls::open(spec.active_capacity),
                release_allowance: 0.0,
                release_at: None,
                ..EventState::default()
            }),
            cursor: watch::Sender::new(0),
            controls: self.shared.controls.clone(),
            spec,
        });
        let view = cell.view(&cell.lock());
        events.insert(cell.spec.event_id.as_str().into(), cell);
        Ok(view)
    }

    async fn event(&self, event_id: &str) -> Result<EventView> {
        let cell = self.cell(event_id)?;
        let mut st = cell.lock();
        cell.tick(&mut st, Instant::now());
        Ok(cell.view(&st))
    }

    async fn enter(&self, event_id: &str, user_id: &str) -> Result<Entered> {
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
                    active_until: None,
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

    async fn queue_status(&self, claims: &Claims) -> Result<EntryStatus> {
        let cell = self.cell(&claims.event_id).map_err(|_| unknown_entry())?;
        let now = Instant::now();
        let mut st = cell.lock();
        cell.tick(&mut st, now);
        let seq = st.entry_of(claims)?;
        let entry = &st.entries[seq as usize];
        let active_remaining_seconds = match (entry.state, entry.active_until) {
            (EntryState::Active, Some(until)) => until
                .saturating_duration_since(now)
                .as_millis()
                .div_ceil(1000) as u64,
            _ => 0,
        };
        Ok(EntryStatus {
            view: cell.queue_view(&st, seq, now),
            active_remaining_seconds,
        })
    }

    async fn watch_queue(&self, claims: &Claims) -> Result<QueueWatch> {
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
}

impl Stock for MemoryBackend {
    async fn reserve(&self, claims: &Claims, quantity: u32) -> Result<Reservation> {
        let event_id = claims.event_id.as_str();
        let cell = self.cell(event_id)?;
        let limit = cell.spec.per_user_limit;
        crate::validate::range("quantity", quantity, 1, limit)?;

        let seq = if self.shared.controls.race {
            // Deliberately wrong (negative control): read the stock, let other
            // buyers run, then write back what was read minus the quantity.
            let seen = {
                let mut st = cell.lock();
                cell.tick(&mut st, Instant::now());
                let seq = st.entry_of(claims)?;
                st.check_can_buy(seq, quantity, limit, &cell.controls)?;
                st.remaining
            };
            tokio::time::sleep(UNSAFE_RACE_WINDOW).await;
            let mut st = cell.lock();
            cell.tick(&mut st, Instant::now());
            let seq = st.entry_of(claims)?;
            st.check_can_buy(seq, quantity, limit, &cell.controls)?;
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
            st.check_can_buy(seq, quantity, limit, &cell.controls)?;
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

    async fn reservation(&self, reservation_id: &str) -> Result<Reservation> {
        self.shared
            .reservations_of(reservation_id)
            .get(reservation_id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("reservation {reservation_id} not found")))
    }
}

impl EventCell {
    /// Expiry and admission for an event nobody is touching (the sweeper).
    pub(super) fn sweep(&self, now: Instant) {
        let mut st = self.lock();
        self.tick(&mut st, now);
    }

    pub(super) fn gauges(&self) -> EventGauges {
        let mut st = self.lock();
        self.tick(&mut st, Instant::now());
        EventGauges {
            event_id: self.spec.event_id.clone(),
            remaining: st.remaining,
            waiting: st.waiting,
            active: st.active,
        }
    }

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
        // Negative control: room for twice as many as allowed.
        let over = if self.controls.capacity { 2 } else { 1 };
        let capacity = u64::from(st.controls.active_capacity) * over;
        let mut allowance = st.release_allowance(now);
        // Negative control: a pause (or queue-everyone) is shown, not obeyed.
        let holding = st.controls.holding() && !self.controls.pause;
        loop {
            // `head` stays "everything before it has left WAITING".
            while (st.head as usize) < st.entries.len()
                && !matches!(st.entries[st.head as usize].state, EntryState::Waiting)
            {
                st.head += 1;
            }
            if holding
                || allowance < 1.0
                || st.active >= capacity
                || st.head as usize >= st.entries.len()
            {
                break;
            }
            allowance -= 1.0;
            let seq = if self.controls.fifo {
                st.newest_waiting()
            } else {
                st.head
            };
            let entry = &mut st.entries[seq as usize];
            entry.state = EntryState::Active;
            entry.active_until = Some(now + self.ttl);
            st.expiries.push_back((now + self.ttl, seq));
            st.active += 1;
            st.admitted += 1;
            st.waiting -= 1;
            if st.admissions.len() == RATE_WINDOW {
                st.admissions.pop_front();
            }
            st.admissions.push_back(now);
        }
        if allowance.is_finite() {
            st.release_allowance = allowance;
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

    /// A token used by a payment: DONE, and its slot goes to the next in line.
    pub(super) fn finish(&self, claims: &Claims) -> Result<()> {
        let mut st = self.lock();
        let seq = st.entry_of(claims)?;
        if matches!(st.entries[seq as usize].state, EntryState::Active) {
            self.complete_purchase(&mut st, seq, 0);
        }
        Ok(())
    }

    fn complete_purchase(&self, st: &mut EventState, seq: u64, quantity: u32) {
        st.sold += u64::from(quantity);
        let entry = &mut st.entries[seq as usize];
        entry.bought += quantity;
        let was = std::mem::replace(&mut entry.state, EntryState::Done);
        match was {
            EntryState::Active => st.active -= 1,
            // Only the early-buy and token-reuse negative controls get here.
            EntryState::Waiting => st.waiting -= 1,
            EntryState::Done | EntryState::Expired => {}
        }
        // The freed slot goes to the next in line at once.
        self.tick(st, Instant::now());
    }

    fn queue_view(&self, st: &EventState, seq: u64, now: Instant) -> QueueView {
        let status = st.entries[seq as usize].state.status();
        let position = match status {
            QueueStatus::Waiting => seq - st.head + 1,
            _ => 0,
        };
        QueueView {
            status,
            position,
            estimated_wait_seconds: self.estimate(st, position, now),
            paused: st.controls.holding(),
            cursor: st.admitted,
        }
    }

    fn estimate(&self, st: &EventState, position: u64, now: Instant) -> u64 {
        estimate_wait_seconds(
            position,
            st.recent(now),
            st.controls.active_capacity,
            self.ttl.as_secs_f64(),
        )
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
            active_capacity: st.controls.active_capacity,
            active_ttl_seconds: spec.active_ttl_seconds,
        }
    }
}

impl EventState {
    /// Admissions the release rate allows now (unbounded without a rate):
    /// a bucket of one second's releases (at least one), filled at the rate.
    fn release_allowance(&mut self, now: Instant) -> f64 {
        let rate = self.controls.release_rate_per_minute;
        let last = self.release_at.replace(now);
        if rate == 0 {
            return f64::INFINITY;
        }
        let per_sec = f64::from(rate) / 60.0;
        let burst = per_sec.max(1.0);
        let filled = last.map_or(burst, |at| {
            self.release_allowance + now.duration_since(at).as_secs_f64() * per_sec
        });
        filled.min(burst)
    }

    fn recent(&self, now: Instant) -> RecentAdmissions {
        RecentAdmissions {
            count: self.admissions.len(),
            span_secs: self
                .admissions
                .front()
                .map_or(0.0, |&oldest| now.duration_since(oldest).as_secs_f64()),
        }
    }

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

    fn check_can_buy(
        &self,
        seq: u64,
        quantity: u32,
        limit: u32,
        controls: &NegativeControls,
    ) -> Result<()> {
        let entry = &self.entries[seq as usize];
        match entry.state {
            // Negative controls: a used token buys again, unlimited; a
            // waiting one buys before its turn.
            EntryState::Done if controls.token_reuse => return Ok(()),
            EntryState::Waiting if controls.early_buy => {}
            state => require_active(state.status())?,
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
