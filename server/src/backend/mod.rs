//! The seam between the HTTP layer and where state lives.
//!
//! `Backend` is an enum rather than a trait object: dispatch is a match, the
//! async methods need no boxing, and adding the real stack (Redis, Kafka,
//! PostgreSQL) is one more variant that the HTTP layer never sees.

pub mod memory;
mod memory_seats;
pub mod real;

use std::time::Duration;

use tokio::sync::watch;

use crate::concert::{
    ConcertSpec, Hold, PayRequest, Payment, PaymentTarget, ScheduleView, SeatView,
};
use crate::error::{Error, Result};
use crate::model::{
    Entered, EventGauges, EventSpec, EventView, QueueStatus, QueueView, Reservation,
};
use crate::token::Claims;

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
    /// Negative control for the verifier: read stock, yield, write.
    pub unsafe_race: bool,
    /// Negative control for the verifier: admit the newest entry first.
    pub unsafe_fifo: bool,
    /// Negative control for the verifier: read a seat, yield, write a hold.
    pub unsafe_hold: bool,
    /// How long an unpaid seat hold lasts.
    pub hold_ttl: Duration,
    /// Where the real stack is (used by `BackendKind::Real` only).
    pub real: Option<real::RealOptions>,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            unsafe_race: false,
            unsafe_fifo: false,
            unsafe_hold: false,
            hold_ttl: DEFAULT_HOLD_TTL,
            real: None,
        }
    }
}

/// Holds and payments need the token ACTIVE; the error says why it is not.
pub(crate) fn require_active(status: QueueStatus) -> Result<()> {
    match status {
        QueueStatus::Active => Ok(()),
        QueueStatus::Waiting => Err(Error::NotActive("queue token is still waiting")),
        QueueStatus::Done => Err(Error::NotActive("queue token was already used")),
        QueueStatus::Expired => Err(Error::NotActive("active time of this token ran out")),
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

#[derive(Clone)]
pub enum Backend {
    Memory(memory::MemoryBackend),
    Real(real::RealBackend),
}

impl Backend {
    pub async fn start(kind: BackendKind, options: BackendOptions) -> anyhow::Result<Self> {
        match kind {
            BackendKind::Memory => Ok(Backend::Memory(memory::MemoryBackend::start(options))),
            BackendKind::Real => {
                anyhow::ensure!(
                    !options.unsafe_race && !options.unsafe_fifo && !options.unsafe_hold,
                    "the unsafe negative controls exist only on the memory backend"
                );
                let real = options.real.ok_or_else(|| {
                    anyhow::anyhow!("the real backend needs its stack's addresses")
                })?;
                Ok(Backend::Real(
                    real::RealBackend::start(real, options.hold_ttl).await?,
                ))
            }
        }
    }

    pub async fn create_event(&self, spec: EventSpec) -> Result<EventView> {
        match self {
            Backend::Memory(b) => b.create_event(spec),
            Backend::Real(b) => b.create_event(spec).await,
        }
    }

    pub async fn event(&self, event_id: &str) -> Result<EventView> {
        match self {
            Backend::Memory(b) => b.event(event_id),
            Backend::Real(b) => b.event(event_id).await,
        }
    }

    pub async fn enter(&self, event_id: &str, user_id: &str) -> Result<Entered> {
        match self {
            Backend::Memory(b) => b.enter(event_id, user_id),
            Backend::Real(b) => b.enter(event_id, user_id).await,
        }
    }

    pub async fn queue_status(&self, claims: &Claims) -> Result<QueueView> {
        match self {
            Backend::Memory(b) => b.queue_status(claims),
            Backend::Real(b) => b.queue_status(claims).await,
        }
    }

    pub async fn watch_queue(&self, claims: &Claims) -> Result<QueueWatch> {
        match self {
            Backend::Memory(b) => b.watch_queue(claims),
            Backend::Real(b) => b.watch_queue(claims).await,
        }
    }

    pub async fn reserve(
        &self,
        claims: &Claims,
        event_id: &str,
        quantity: u32,
    ) -> Result<Reservation> {
        match self {
            Backend::Memory(b) => b.reserve(claims, event_id, quantity).await,
            Backend::Real(b) => b.reserve(claims, event_id, quantity).await,
        }
    }

    pub async fn reservation(&self, reservation_id: &str) -> Result<Reservation> {
        match self {
            Backend::Memory(b) => b.reservation(reservation_id),
            Backend::Real(b) => b.reservation(reservation_id).await,
        }
    }

    pub async fn create_concert(&self, spec: ConcertSpec) -> Result<()> {
        match self {
            Backend::Memory(b) => b.create_concert(&spec),
            Backend::Real(b) => b.create_concert(&spec).await,
        }
    }

    pub async fn schedules(&self, concert_id: &str) -> Result<Vec<ScheduleView>> {
        match self {
            Backend::Memory(b) => b.schedules(concert_id),
            Backend::Real(b) => b.schedules(concert_id).await,
        }
    }

    pub async fn seats(&self, concert_id: &str, schedule_id: &str) -> Result<Vec<SeatView>> {
        match self {
            Backend::Memory(b) => b.seats(concert_id, schedule_id),
            Backend::Real(b) => b.seats(concert_id, schedule_id).await,
        }
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
        match self {
            Backend::Memory(b) => b.check_seat(concert_id, schedule_id, seat)?,
            Backend::Real(b) => b.check_seat(concert_id, schedule_id, seat).await?,
        }
        if claims.event_id != concert_id {
            return Err(Error::NotActive("queue token was issued for another event"));
        }
        require_active(self.queue_status(claims).await?.status)?;
        let user = claims.user_id.as_str();
        match self {
            Backend::Memory(b) => b.hold_seat(concert_id, schedule_id, seat, user).await,
            Backend::Real(b) => b.hold_seat(concert_id, schedule_id, seat, user).await,
        }
    }

    /// A payment. A repeat of a completed one (same key, or the same
    /// reservation) returns it without a token check; otherwise the token
    /// must be ACTIVE for the reservation's concert, the backend debits,
    /// confirms and records in one step, and the token becomes DONE.
    pub async fn pay(&self, claims: &Claims, request: &PayRequest) -> Result<Payment> {
        let user = claims.user_id.as_str();
        if let Some(done) = self.replay(user, request).await? {
            return Ok(done);
        }
        let target = self.payment_target(user, &request.reservation_id).await?;
        if claims.event_id != target.concert_id {
            return Err(Error::NotActive("queue token was issued for another event"));
        }
        if let Some(paid) = target.paid {
            return Ok(paid);
        }
        if let Err(e) = require_active(self.queue_status(claims).await?.status) {
            // A concurrent retry may have paid and used the token meanwhile.
            let again = self.payment_target(user, &request.reservation_id).await?;
            return again.paid.ok_or(e);
        }
        let payment = match self {
            Backend::Memory(b) => b.settle(user, request)?,
            Backend::Real(b) => b.settle(user, request).await?,
        };
        match self {
            Backend::Memory(b) => b.finish_token(claims)?,
            Backend::Real(b) => b.finish_token(claims).await,
        }
        Ok(payment)
    }

    async fn replay(&self, user_id: &str, request: &PayRequest) -> Result<Option<Payment>> {
        match self {
            Backend::Memory(b) => b.replay(user_id, request),
            Backend::Real(b) => b.replay(user_id, request).await,
        }
    }

    async fn payment_target(&self, user_id: &str, reservation_id: &str) -> Result<PaymentTarget> {
        match self {
            Backend::Memory(b) => b.payment_target(user_id, reservation_id),
            Backend::Real(b) => b.payment_target(user_id, reservation_id).await,
        }
    }

    pub async fn points(&self, user_id: &str) -> Result<u64> {
        match self {
            Backend::Memory(b) => Ok(b.points(user_id)),
            Backend::Real(b) => b.points(user_id).await,
        }
    }

    pub async fn charge(&self, user_id: &str, amount: u64) -> Result<u64> {
        match self {
            Backend::Memory(b) => b.charge(user_id, amount),
            Backend::Real(b) => b.charge(user_id, amount).await,
        }
    }

    pub async fn health(&self) -> Vec<ComponentHealth> {
        match self {
            Backend::Memory(_) => vec![ComponentHealth {
                name: "memory",
                up: true,
            }],
            Backend::Real(b) => b.health(),
        }
    }

    /// Lets a backend add metrics of its own to `/metrics`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        match self {
            Backend::Memory(b) => b.register_metrics(registry),
            Backend::Real(b) => b.register_metrics(registry),
        }
    }

    pub async fn gauges(&self) -> Vec<EventGauges> {
        match self {
            Backend::Memory(b) => b.gauges(),
            Backend::Real(b) => b.gauges().await,
        }
    }
}
