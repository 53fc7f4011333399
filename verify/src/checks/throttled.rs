//! A run the target rate-limited is not judged. A request refused with 429
//! changed nothing, so a buyer refused that way looks like one that lost
//! the race, a refused status poll like a stalled queue, a refused set-up
//! like a missing feature: the checks would blame the contract for the
//! limiter. verify drives many buyers from one address, faster than a
//! deployment's limits (ticket-server's default is 10 a second per IP and
//! per user), so the refusal says which limits to raise or turn off.

use crate::history::{Op, OpKind, VERIFY};

/// `Err` naming the refused requests when any of the clients' requests was
/// answered 429; `Ok` otherwise.
pub fn refuse(ops: &[Op]) -> Result<(), String> {
    let answered: Vec<&Op> = ops
        .iter()
        .filter(|op| op.kind != OpKind::Invoke && op.process != VERIFY)
        .filter(|op| op.value.get("status").is_some())
        .collect();
    let limited: Vec<&&Op> = answered
        .iter()
        .filter(|op| op.value["status"] == 429)
        .collect();
    let Some(first) = limited.first() else {
        return Ok(());
    };
    let code = first.value["body"]["error"]
        .as_str()
        .unwrap_or("no error code");
    Err(format!(
        "the target rate-limited the run: {} of {} answered requests were refused with 429 \
         (the first: {} of {}, {code}). A refused request changed nothing, so the checks \
         cannot tell a throttled buyer from one that lost: the run is not judged. Raise the \
         target's request rate limits above the run's rate, or turn them off for the run \
         (ticket-server: --rate-limit-rps 0 --user-rate-limit-rps 0), and run again.",
        limited.len(),
        answered.len(),
        first.f,
        first.process,
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn op(index: u64, kind: OpKind, process: &str, f: &str, value: Value) -> Op {
        Op {
            index,
            kind,
            time: index,
            process: process.into(),
            f: f.into(),
            value,
        }
    }

    fn run(reserve_status: u16) -> Vec<Op> {
        let body = if reserve_status == 429 {
            json!({"error": "RATE_LIMITED", "message": "slow down"})
        } else {
            json!({"reservationId": "r1", "status": "PENDING"})
        };
        let kind = if reserve_status == 200 {
            OpKind::Ok
        } else {
            OpKind::Fail
        };
        vec![
            op(0, OpKind::Info, VERIFY, "race", json!({"buyers": 2})),
            op(1, OpKind::Invoke, "buyer-0", "enter", json!({})),
            op(
                2,
                OpKind::Ok,
                "buyer-0",
                "enter",
                json!({"status": 200, "body": {}}),
            ),
            op(3, OpKind::Invoke, "buyer-0", "reserve", json!({})),
            op(
                4,
                kind,
                "buyer-0",
                "reserve",
                json!({"status": reserve_status, "body": body}),
            ),
            op(5, OpKind::Invoke, "buyer-1", "reserve", json!({})),
            op(
                6,
                OpKind::Info,
                "buyer-1",
                "reserve",
                json!({"error": "timed out"}),
            ),
        ]
    }

    #[test]
    fn a_history_with_a_429_is_refused_with_what_to_change() {
        let err = refuse(&run(429)).unwrap_err();
        assert!(err.contains("1 of 2 answered requests"), "{err}");
        assert!(err.contains("reserve of buyer-0, RATE_LIMITED"), "{err}");
        assert!(
            err.contains("--rate-limit-rps 0 --user-rate-limit-rps 0"),
            "{err}"
        );
    }

    #[test]
    fn control_other_refusals_and_successes_are_judged() {
        assert_eq!(refuse(&run(200)), Ok(()));
        // A contract refusal (409) is the checks' business, not a limiter.
        assert_eq!(refuse(&run(409)), Ok(()));
    }
}
