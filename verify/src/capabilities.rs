//! What the target implements, found by probing it, so that a check the
//! target cannot run is reported as not applicable (with the reason)
//! rather than failing the set-up of the whole run.
//!
//! The contract has two parts: the flash sale (events, queue, tickets)
//! that every check but the seat map's needs, and the concert seat map
//! (concerts, holds, payments, points). Many servers implement only the
//! first. The probe is recorded in the history like any request, so an
//! offline re-judge sees the same capabilities.

use serde_json::{json, Value};

use crate::client::{Client, Reply};
use crate::history::{Op, OpKind};
use crate::options::CheckName;
use crate::RunError;

/// The history's name for the probe of the concert admin endpoint.
pub const PROBE_CONCERTS: &str = "probe-concerts";

/// What the target implements; each capability it lacks carries the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Why the target has no concert seat map, if it has none.
    pub no_seat_map: Option<String>,
}

impl Capabilities {
    /// Why the target cannot run `check`, if it cannot.
    pub fn lacks(&self, check: CheckName) -> Option<&str> {
        match check {
            CheckName::Seatmap => self.no_seat_map.as_deref(),
            _ => None,
        }
    }

    /// Reads the capabilities off the probe's answer as the history
    /// recorded it (`{"status": …, "body": …}` or `{"error": …}`).
    pub fn from_answer(kind: OpKind, answer: &Value) -> Self {
        // An unknown path is 404 and a known path with another method 405
        // (CONTRACT.md): either way the route is not there. A server with
        // the seat map refuses the empty body (400) and creates nothing.
        let status = answer["status"].as_u64();
        let no_seat_map = match (kind, status) {
            (OpKind::Fail, Some(s @ (404 | 405))) => Some(format!(
                "the target has no concert seat map: POST /api/v1/admin/concerts answered {s}"
            )),
            _ => None,
        };
        Capabilities { no_seat_map }
    }

    /// The capabilities a recorded run found: the probe's completion in
    /// `ops`, or everything when the history has no probe.
    pub fn from_history(ops: &[Op]) -> Self {
        ops.iter()
            .find(|op| op.f == PROBE_CONCERTS && op.kind != OpKind::Invoke)
            .map(|op| Self::from_answer(op.kind, &op.value))
            .unwrap_or_default()
    }
}

/// Probes the target: the concert admin endpoint with an empty body, which
/// a server with the seat map refuses (400) without creating anything.
pub async fn probe(client: &Client) -> Result<Capabilities, RunError> {
    let call = client
        .admin_post("/api/v1/admin/concerts", PROBE_CONCERTS, json!({}))
        .await;
    if let Reply::Transport(e) = &call.reply {
        return Err(RunError::Unreachable(format!("{}: {e}", client.base())));
    }
    Ok(Capabilities::from_answer(
        call.reply.kind(),
        &call.reply.to_value(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_route_means_no_seat_map() {
        let of = |kind, status: u16| {
            Capabilities::from_answer(kind, &json!({"status": status, "body": {}}))
        };
        for missing in [404, 405] {
            let caps = of(OpKind::Fail, missing);
            let why = caps.lacks(CheckName::Seatmap).unwrap();
            assert!(why.contains(&format!("answered {missing}")), "{why}");
            assert_eq!(caps.lacks(CheckName::Oversell), None);
        }
        // Refused for its empty body, or for the admin token: the route is
        // there (a wrong token fails the set-up later, with its own reason).
        for present in [400, 401] {
            assert_eq!(of(OpKind::Fail, present), Capabilities::default());
        }
        assert_eq!(
            Capabilities::from_answer(OpKind::Info, &json!({"error": "timeout"})),
            Capabilities::default()
        );
    }
}
