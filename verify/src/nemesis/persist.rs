//! Buyers under faults. The race's buyers are released together; under a
//! nemesis they are paced over `--release-over-ms` (buyer i starts its
//! purchase i/N of the way through), so the faults land while purchases
//! go on and the purchase rate before, during and after each can be
//! compared. A buyer whose answer is not definitive (no answer, 5xx) tries
//! again until the recovery deadline: a fault may make a purchase wait,
//! it must not lose or double it.
//!
//! Every attempt is in the history; [`effective`] is the one that decides
//! the buyer's outcome, live and when re-judged.

use std::time::Duration;

use tokio::time::Instant;

use super::actions::Nemesis;
use crate::client::{Call, Client};
use crate::history::OpKind;

/// Pause between a buyer's attempts while its answers are not definitive.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// How the race's buyers behave: paced, and (under a nemesis) persistent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan {
    /// Buyers' purchases are spread over this long after the release.
    pub release_over: Duration,
    /// Under a nemesis: how long after the release buyers keep trying, and
    /// unknown outcomes are resolved (the schedule's end plus the recovery
    /// deadline).
    pub retry_for: Option<Duration>,
}

impl Plan {
    pub fn new(nemesis: Option<&Nemesis>, release_over: Duration, recovery: Duration) -> Plan {
        let retry_for = nemesis.map(|n| {
            let end = n
                .schedule
                .iter()
                .map(|f| f.start + f.duration)
                .max()
                .unwrap_or_default();
            release_over.max(end) + recovery
        });
        Plan {
            release_over,
            retry_for,
        }
    }
}

/// Buyer `index` of `buyers`: waits for its turn, reserves, and (when the
/// plan retries) tries again while the answer is not definitive.
#[allow(clippy::too_many_arguments)]
pub async fn reserve(
    client: &Client,
    plan: Plan,
    released: Instant,
    index: usize,
    buyers: usize,
    user: &str,
    token: &str,
    event_id: &str,
    quantity: u32,
) -> Vec<Call> {
    if !plan.release_over.is_zero() && buyers > 0 {
        let offset = plan.release_over.mul_f64(index as f64 / buyers as f64);
        tokio::time::sleep_until(released + offset).await;
    }
    let give_up = plan.retry_for.map(|d| released + d);
    let mut attempts = Vec::new();
    loop {
        let call = client.reserve(user, Some(token), event_id, quantity).await;
        let settled = call.reply.kind() != OpKind::Info;
        attempts.push(call);
        let Some(give_up) = give_up else {
            return attempts;
        };
        if settled || Instant::now() + RETRY_EVERY >= give_up {
            return attempts;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// The attempt that decides a buyer's outcome: its success if one
/// succeeded; else its last unknown one if any was unknown (resolved from
/// the token's state, which says whether any of them happened); else its
/// last answer.
pub fn effective(attempts: &[Call]) -> Option<&Call> {
    attempts
        .iter()
        .find(|c| c.reply.kind() == OpKind::Ok)
        .or_else(|| {
            attempts
                .iter()
                .rev()
                .find(|c| c.reply.kind() == OpKind::Info)
        })
        .or_else(|| attempts.last())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::client::Reply;

    fn call(status: Option<u16>, at: u64) -> Call {
        let reply = match status {
            Some(status) => Reply::Http {
                status,
                body: json!({}),
            },
            None => Reply::Transport("reset".into()),
        };
        Call {
            reply,
            invoked: at,
            completed: at + 1,
        }
    }

    #[test]
    fn the_deciding_attempt_is_the_success_else_the_last_unknown_else_the_last() {
        let single = [call(Some(409), 1)];
        assert_eq!(effective(&single).unwrap().invoked, 1);
        let retried = [call(None, 1), call(Some(503), 2), call(Some(200), 3)];
        assert_eq!(effective(&retried).unwrap().invoked, 3);
        // The token's state decides whether an unknown attempt happened: a
        // later refusal (the token is used) does not hide it.
        let used = [call(Some(503), 1), call(None, 2), call(Some(409), 3)];
        assert_eq!(effective(&used).unwrap().invoked, 2);
        assert!(effective(&[]).is_none());
    }
}
