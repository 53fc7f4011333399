//! Rules every backend shares, written once: what a token's status means
//! for a request, the errors that name a token's problem, and the wait
//! estimate shown to a waiting user.

use crate::error::{Error, Result};
use crate::model::QueueStatus;

/// Buying, holding and paying need the token ACTIVE; the error says why it
/// is not.
pub fn require_active(status: QueueStatus) -> Result<()> {
    match status {
        QueueStatus::Active => Ok(()),
        other => Err(not_active(other)),
    }
}

/// NOT_ACTIVE for a token in `status` (anything but ACTIVE).
pub fn not_active(status: QueueStatus) -> Error {
    Error::NotActive(match status {
        QueueStatus::Waiting => "queue token is still waiting",
        QueueStatus::Done => "queue token was already used",
        QueueStatus::Expired | QueueStatus::Active => "active time of this token ran out",
    })
}

/// A token used on another event's operation.
pub fn other_event() -> Error {
    Error::NotActive("queue token was issued for another event")
}

/// A well-signed token whose entry does not exist (or is another user's).
pub fn unknown_entry() -> Error {
    Error::Unauthorized("queue token does not match any entry")
}

/// How many admissions were seen recently, and over how long.
#[derive(Debug, Clone, Copy)]
pub struct RecentAdmissions {
    pub count: usize,
    /// From the oldest of them until now.
    pub span_secs: f64,
}

/// Seconds until `position` is admitted, from the recent admission rate,
/// or, before two admissions have been seen, from capacity turning over
/// once per active TTL.
pub fn estimate_wait_seconds(
    position: u64,
    recent: RecentAdmissions,
    active_capacity: u32,
    active_ttl_secs: f64,
) -> u64 {
    if position == 0 {
        return 0;
    }
    let per_second = if recent.count >= 2 {
        recent.count as f64 / recent.span_secs.max(1.0)
    } else {
        f64::from(active_capacity) / active_ttl_secs.max(1.0)
    };
    (position as f64 / per_second).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_follows_the_recent_rate_once_there_is_one() {
        let none = RecentAdmissions {
            count: 1,
            span_secs: 0.0,
        };
        // 10 slots turning over every 60 s: 1/6 per second.
        assert_eq!(estimate_wait_seconds(5, none, 10, 60.0), 30);
        let busy = RecentAdmissions {
            count: 40,
            span_secs: 2.0,
        };
        assert_eq!(estimate_wait_seconds(100, busy, 10, 60.0), 5);
        // A span under a second counts as one second.
        let burst = RecentAdmissions {
            count: 4,
            span_secs: 0.01,
        };
        assert_eq!(estimate_wait_seconds(9, burst, 10, 60.0), 3);
        assert_eq!(estimate_wait_seconds(0, busy, 10, 60.0), 0);
    }

    #[test]
    fn only_an_active_token_may_act() {
        assert!(require_active(QueueStatus::Active).is_ok());
        for (status, why) in [
            (QueueStatus::Waiting, "still waiting"),
            (QueueStatus::Done, "already used"),
            (QueueStatus::Expired, "ran out"),
        ] {
            let e = require_active(status).unwrap_err();
            assert_eq!(e.code(), "NOT_ACTIVE");
            assert!(e.to_string().contains(why), "{status:?}: {e}");
        }
    }
}
