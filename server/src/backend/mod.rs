//! The seam between the HTTP layer and where state lives.
//!
//! What a backend must provide is stated by five traits, one per concern:
//! [`Queue`] (events and the waiting line), [`Stock`] (reserving items),
//! [`Seats`] (the concert seat map), [`Payments`] (points and payments) and
//! [`Operations`] (health, metrics, gauges). [`Store`] is all five. The
//! embedded backend ([`memory`]) and the backend over the shared stack
//! ([`stack`]) implement each with the same signatures.
//!
//! [`Backend`] is what the HTTP layer holds: an enum over the two, so
//! dispatch is a match on concrete types (their futures stay `Send` without
//! boxing), and the rules every backend shares are written once here, above
//! the traits: a token belongs to one event, a token's status decides
//! whether it may buy, hold or pay ([`rules`]), and the hold and pay flows.

pub mod admission;
pub mod memory;
pub mod rules;
pub mod stack;

use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use crate::concert::{
    ConcertSpec, ConcertView, Hold, PayRequest, Payment, PaymentTarget, ScheduleView, SeatRef,
    SeatView,
};
use crate::config::{NegativeControls, TestHooks};
use crate::error::Result;
use crate::model::{
    Entered, EntryStatus, EventGauges, EventSpec, EventView, QueueView, Reservation,
};
use crate::token::Claims;
use rules::require_active;

/// Which backend to run, chosen at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Everything in this process: atomic, fast, nothing to install.
    Memory,
    /// Redis (Lua), Kafka and PostgreSQL, shared by any number of instances.
    Real,
}

/// How long a seat hold lasts unless the server is told otherwise.
pub const DEFAULT_HOLD_TTL: Duration = Duration::from_secs(300);

/// Options every backend understands.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// Deliberate defects for the verifier's negative controls.
    pub controls: NegativeControls,
    /// How long an unpaid seat hold lasts.
    pub hold_ttl: Duration,
    /// Where the shared stack is (used by `BackendKind::Real` only).
    pub stack: Option<stack::StackOptions>,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            controls: NegativeControls::default(),
            hold_ttl: DEFAULT_HOLD_TTL,
            stack: None,
        }
    }
}

/// A live view of one queue entry for the SSE stream: the receiver yields
/// the event's admission cursor each time it moves.
pub struct QueueWatch {
    pub cursor: watch::Receiver<u64>,
    /// The entry's view when the watch began (read once, with the check
    /// that the token names an entry).
    pub current: QueueView,
}

/// State of a backend component for `/actuator/health`.
#[derive(Debug, Clone)]
pub struct ComponentHealth {
    pub name: &'static str,
    pub up: bool,
}

// `async_fn_in_trait` is allowed on these traits: they are only ever called
// on the concrete backends (through `Backend`'s match), so every future's
// `Send` is known at its call site, which is the lint's concern.

/// Events and their waiting lines.
#[allow(async_fn_in_trait)]
pub trait Queue {
    /// Creates an event; ALREADY_EXISTS when its id is taken.
    async fn create_event(&self, spec: EventSpec) -> Result<EventView>;
    /// The event's numbers; NOT_FOUND when unknown.
    async fn event(&self, event_id: &str) -> Result<EventView>;
    /// Puts the user in line, or returns their existing entry (idempotent
    /// per event and user).
    async fn enter(&self, event_id: &str, user_id: &str) -> Result<Entered>;
    /// The entry a token names; UNAUTHORIZED when it names none.
    async fn queue_status(&self, claims: &Claims) -> Result<EntryStatus>;
    /// As `queue_status`, plus a receiver of the event's admission cursor.
    async fn watch_queue(&self, claims: &Claims) -> Result<QueueWatch>;
}

/// Reserving items of an event's stock.
#[allow(async_fn_in_trait)]
pub trait Stock {
    /// Atomically: the token's entry is ACTIVE, the per-user limit and the
    /// stock allow `quantity`; then the stock falls, the token becomes DONE
    /// and a PENDING reservation exists. Reserves in `claims.event_id`.
    async fn reserve(&self, claims: &Claims, quantity: u32) -> Result<Reservation>;
    /// A reservation by id, PENDING until persisted, then CONFIRMED.
    async fn reservation(&self, reservation_id: &str) -> Result<Reservation>;
}

/// The concert seat map.
#[allow(async_fn_in_trait)]
pub trait Seats {
    /// The concert, its schedules and seats, and its waiting line (a queue
    /// of the same id).
    async fn create_concert(&self, spec: &ConcertSpec) -> Result<()>;
    async fn schedules(&self, concert_id: &str) -> Result<Vec<ScheduleView>>;
    /// Concerts with an open schedule (a seat to hold), by id; each with
    /// its open schedules, by date.
    async fn concerts(&self) -> Result<Vec<ConcertView>>;
    async fn seats(&self, concert_id: &str, schedule_id: &str) -> Result<Vec<SeatView>>;
    /// NOT_FOUND naming what is missing, unless the seat exists.
    async fn check_seat(&self, at: SeatRef<'_>) -> Result<()>;
    /// AVAILABLE (or HELD and lapsed) -> HELD by `user_id`, atomically;
    /// SEAT_TAKEN otherwise. The caller has checked the token.
    async fn hold_seat(&self, at: SeatRef<'_>, user_id: &str) -> Result<Hold>;
}

/// Points and payments.
#[allow(async_fn_in_trait)]
pub trait Payments {
    /// The payment an Idempotency-Key already made, if any; BAD_REQUEST
    /// when the key was used for another reservation or by another user.
    async fn replay(&self, user_id: &str, request: &PayRequest) -> Result<Option<Payment>>;
    /// The reservation a payment is for; NOT_FOUND when unknown or not the
    /// user's.
    async fn payment_target(&self, user_id: &str, reservation_id: &str) -> Result<PaymentTarget>;
    /// Debit, confirm the seat and record the payment in one step (a replay
    /// when a concurrent request with the same key won).
    async fn settle(&self, user_id: &str, request: &PayRequest) -> Result<Payment>;
    /// The token is used: DONE, and its slot goes to the next in line.
    async fn finish_token(&self, claims: &Claims) -> Result<()>;
    /// A user's balance (0 without an account).
    async fn points(&self, user_id: &str) -> Result<u64>;
    /// Adds to a user's balance and returns the new one.
    async fn charge(&self, user_id: &str, amount: u64) -> Result<u64>;
}

/// What operators read.
#[allow(async_fn_in_trait)]
pub trait Operations {
    async fn health(&self) -> Vec<ComponentHealth>;
    /// Adds the backend's own metrics to `/metrics`.
    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry);
    async fn gauges(&self) -> Vec<EventGauges>;
}

/// Everything a backend provides.
pub trait Store: Queue + Stock + Seats + Payments + Operations {}
impl<T: Queue + Stock + Seats + Payments + Operations> Store for T {}

#[derive(Clone)]
pub enum Backend {
    Memory(memory::MemoryBackend),
    Stack(stack::StackBackend),
}

/// Calls the same method on whichever backend this is.
macro_rules! dispatch {
    ($self:expr, $b:ident => $call:expr) => {
        match $self {
            Backend::Memory($b) => $call,
            Backend::Stack($b) => $call,
        }
    };
}

impl Backend {
    pub async fn start(
        kind: BackendKind,
        options: BackendOptions,
        hooks: TestHooks,
    ) -> anyhow::Result<Self> {
        match kind {
            BackendKind::Memory => Ok(Backend::Memory(memory::MemoryBackend::start(options))),
            BackendKind::Real => {
                anyhow::ensure!(
                    !options.controls.any_backend_control(),
                    "the unsafe negative controls exist only on the memory backend"
                );
                let stack = options.stack.ok_or_else(|| {
                    anyhow::anyhow!("the real backend needs its stack's addresses")
                })?;
                Ok(Backend::Stack(
                    stack::StackBackend::start(stack, options.hold_ttl, hooks).await?,
                ))
            }
        }
    }

    /// A secret every instance must share: the one configured, else, on the
    /// shared stack, the fleet's (created once by the first instance), else
    /// a random one for this process alone.
    pub async fn shared_secret(
        &self,
        name: &str,
        configured: Option<&str>,
    ) -> anyhow::Result<String> {
        if let Some(value) = configured.filter(|v| !v.is_empty()) {
            return Ok(value.to_owned());
        }
        let candidate = crate::config::random_hex();
        match self {
            Backend::Memory(_) => {
                warn!("no {name} configured; using a random one for this process");
                Ok(candidate)
            }
            Backend::Stack(b) => {
                let (value, created) = b.fleet_setting(name, &candidate).await.map_err(|e| {
                    anyhow::anyhow!(
                        "no {name} configured and none could be read from the shared stack: {e}"
                    )
                })?;
                if created {
                    tracing::info!("no {name} configured; created the fleet's in the shared stack");
                } else {
                    tracing::info!("no {name} configured; using the fleet's from the shared stack");
                }
                Ok(value)
            }
        }
    }

    pub async fn create_event(&self, spec: EventSpec) -> Result<EventView> {
        dispatch!(self, b => b.create_event(spec).await)
    }

    pub async fn event(&self, event_id: &str) -> Result<EventView> {
        dispatch!(self, b => b.event(event_id).await)
    }

    pub async fn enter(&self, event_id: &str, user_id: &str) -> Result<Entered> {
        dispatch!(self, b => b.enter(event_id, user_id).await)
    }

    pub async fn queue_status(&self, claims: &Claims) -> Result<EntryStatus> {
        dispatch!(self, b => b.queue_status(claims).await)
    }

    pub async fn watch_queue(&self, claims: &Claims) -> Result<QueueWatch> {
        dispatch!(self, b => b.watch_queue(claims).await)
    }

    /// A purchase. A token of another event is refused after the checks a
    /// request of this event would meet first (the event exists, 404; the
    /// quantity is within its limit, 400); the backend decides the rest.
    pub async fn reserve(
        &self,
        claims: &Claims,
        event_id: &str,
        quantity: u32,
    ) -> Result<Reservation> {
        if claims.event_id != event_id {
            let limit = self.event(event_id).await?.per_user_limit;
            crate::validate::range("quantity", quantity, 1, limit)?;
            return Err(rules::other_event());
        }
        dispatch!(self, b => b.reserve(claims, quantity).await)
    }

    pub async fn reservation(&self, reservation_id: &str) -> Result<Reservation> {
        dispatch!(self, b => b.reservation(reservation_id).await)
    }

    pub async fn create_concert(&self, spec: ConcertSpec) -> Result<()> {
        dispatch!(self, b => b.create_concert(&spec).await)
    }

    pub async fn schedules(&self, concert_id: &str) -> Result<Vec<ScheduleView>> {
        dispatch!(self, b => b.schedules(concert_id).await)
    }

    pub async fn concerts(&self) -> Result<Vec<ConcertView>> {
        dispatch!(self, b => b.concerts().await)
    }

    pub async fn seats(&self, concert_id: &str, schedule_id: &str) -> Result<Vec<SeatView>> {
        dispatch!(self, b => b.seats(concert_id, schedule_id).await)
    }

    /// A seat hold: the seat must exist (404), the token be ACTIVE for
    /// this concert (403), then the backend holds it atomically.
    pub async fn hold(
        &self,
        claims: &Claims,
        concert_id: &str,
        schedule_id: &str,
        seat: u32,
    ) -> Result<Hold> {
        let at = SeatRef {
            concert_id,
            schedule_id,
            seat,
        };
        dispatch!(self, b => b.check_seat(at).await)?;
        if claims.event_id != concert_id {
            return Err(rules::other_event());
        }
        require_active(self.queue_status(claims).await?.view.status)?;
        let user = claims.user_id.as_str();
        dispatch!(self, b => b.hold_seat(at, user).await)
    }

    /// A payment. A repeat of a completed one (same key, or the same
    /// reservation) returns it without a token check; otherwise the token
    /// must be ACTIVE for the reservation's concert, the backend debits,
    /// confirms and records in one step, and the token becomes DONE.
    pub async fn pay(&self, claims: &Claims, request: &PayRequest) -> Result<Payment> {
        let user = claims.user_id.as_str();
        if let Some(done) = dispatch!(self, b => b.replay(user, request).await)? {
            return Ok(done);
        }
        let target = self.payment_target(user, &request.reservation_id).await?;
        if claims.event_id != target.concert_id {
            return Err(rules::other_event());
        }
        if let Some(paid) = target.paid {
            return Ok(paid);
        }
        if let Err(e) = require_active(self.queue_status(claims).await?.view.status) {
            // A concurrent retry may have paid and used the token meanwhile.
            let again = self.payment_target(user, &request.reservation_id).await?;
            return again.paid.ok_or(e);
        }
        let payment = dispatch!(self, b => b.settle(user, request).await)?;
        // The payment is committed whatever happens to the token: a failure
        // here leaves it ACTIVE until its active time runs out.
        if let Err(e) = dispatch!(self, b => b.finish_token(claims).await) {
            warn!(error = %e, user, "paid, but the token could not be marked DONE");
        }
        Ok(payment)
    }

    async fn payment_target(&self, user_id: &str, reservation_id: &str) -> Result<PaymentTarget> {
        dispatch!(self, b => b.payment_target(user_id, reservation_id).await)
    }

    pub async fn points(&self, user_id: &str) -> Result<u64> {
        dispatch!(self, b => b.points(user_id).await)
    }

    pub async fn charge(&self, user_id: &str, amount: u64) -> Result<u64> {
        dispatch!(self, b => b.charge(user_id, amount).await)
    }

    pub async fn health(&self) -> Vec<ComponentHealth> {
        dispatch!(self, b => b.health().await)
    }

    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        dispatch!(self, b => b.register_metrics(registry))
    }

    pub async fn gauges(&self) -> Vec<EventGauges> {
        dispatch!(self, b => b.gauges().await)
    }
}
