//! The open model: iterations start on a fixed schedule (slot i at
//! `start + i / rate`, `start` being the measured window's opening),
//! whatever the target does. A goose user claims the
//! next slot when it is free, sleeps until the slot's time and starts; an
//! iteration that could only start late (every user was busy) is measured
//! from its slot, which is what "corrected for coordinated omission" means
//! here (as in wrk2).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Later than this after its slot, an iteration counts as late.
pub const LATE: Duration = Duration::from_millis(10);

pub struct Pacer {
    interval_ns: f64,
    planned: u64,
    next: AtomicU64,
    /// Slots already past when claimed: every user was busy.
    late_busy: AtomicU64,
    /// Slots claimed in time whose sleep overran: the generator was starved.
    late_wakeup: AtomicU64,
    max_lag_us: AtomicU64,
}

/// A claimed slot.
pub struct Slot {
    /// When the iteration should have started.
    pub intended: Instant,
    /// What coordinated omission would hide: how late the iteration starts
    /// because no user was free at its time. Zero when a user was waiting
    /// for the slot (a timer waking a millisecond late is the generator's
    /// own jitter, not the target's, and is counted as `late_wakeup`).
    pub lag: Duration,
}

impl Pacer {
    pub fn new(rate: f64, duration: Duration) -> Self {
        Pacer {
            interval_ns: 1e9 / rate,
            planned: (rate * duration.as_secs_f64()).round() as u64,
            next: AtomicU64::new(0),
            late_busy: AtomicU64::new(0),
            late_wakeup: AtomicU64::new(0),
            max_lag_us: AtomicU64::new(0),
        }
    }

    pub fn planned(&self) -> u64 {
        self.planned
    }

    /// Claims the next slot of the schedule starting at `start` and waits
    /// for its time; `None` once the run's slots are all given out. A slot
    /// claimed after the window closed still starts (late, and measured
    /// from its slot): its completion counts as backlog.
    pub async fn next_slot(&self, start: Instant) -> Option<Slot> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i >= self.planned {
            return None;
        }
        let intended = start + Duration::from_nanos((i as f64 * self.interval_ns) as u64);
        let claimed = Instant::now();
        if claimed > intended + LATE {
            self.late_busy.fetch_add(1, Ordering::Relaxed);
        }
        if claimed < intended {
            tokio::time::sleep_until(intended.into()).await;
        }
        let late = intended.elapsed();
        let busy = claimed > intended;
        if late > LATE && !busy {
            self.late_wakeup.fetch_add(1, Ordering::Relaxed);
        }
        let late_us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.max_lag_us.fetch_max(late_us, Ordering::Relaxed);
        Some(Slot {
            intended,
            lag: if busy { late } else { Duration::ZERO },
        })
    }

    /// (late because every user was busy, late because the generator
    /// overslept, largest lag in µs)
    pub fn lateness(&self) -> (u64, u64, u64) {
        (
            self.late_busy.load(Ordering::Relaxed),
            self.late_wakeup.load(Ordering::Relaxed),
            self.max_lag_us.load(Ordering::Relaxed),
        )
    }
}
