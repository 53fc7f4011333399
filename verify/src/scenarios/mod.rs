//! Scenarios drive the target and record what happened; checks judge it.

pub mod pause;
pub mod queue;
pub mod race;
pub mod seatmap;
pub mod tokens;

use std::fmt::Display;
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::{Call, Client, Reply};
use crate::RunError;

/// A position a client was shown, and when.
#[derive(Debug, Clone)]
pub struct Shown {
    pub at: u64,
    pub position: u64,
    pub estimated_wait_seconds: Option<u64>,
    pub id: Option<String>,
}

/// How a client learns it was admitted.
#[derive(Debug, Clone, Copy)]
pub enum Watch {
    Sse,
    Poll,
}

/// Follows `token` until ACTIVE, calling `shown` for every position seen.
/// Returns the time ACTIVE was seen, or why it never was.
pub async fn until_active(
    client: &Client,
    process: &str,
    token: &str,
    how: Watch,
    deadline: Duration,
    mut shown: impl FnMut(Shown),
) -> Result<u64, String> {
    let until = tokio::time::Instant::now() + deadline;
    let left = || until.saturating_duration_since(tokio::time::Instant::now());
    match how {
        Watch::Poll => loop {
            let call = client.status(process, token).await;
            match &call.reply {
                Reply::Http { status: 200, body } => match body["status"].as_str() {
                    Some("ACTIVE") => return Ok(call.completed),
                    Some("WAITING") => shown(Shown {
                        at: call.completed,
                        position: body["position"].as_u64().unwrap_or(0),
                        estimated_wait_seconds: body["estimatedWaitSeconds"].as_u64(),
                        id: None,
                    }),
                    other => return Err(format!("status became {other:?} before ACTIVE")),
                },
                other => return Err(format!("status answered {}", other.short())),
            }
            if left().is_zero() {
                return Err(format!("not ACTIVE within {deadline:?}"));
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        },
        Watch::Sse => {
            let mut last_id: Option<String> = None;
            // A stream may end before ACTIVE (server restart, proxy): resume
            // with Last-Event-ID a few times.
            for _attempt in 0..5 {
                let mut stream = client
                    .stream(process, token, last_id.as_deref())
                    .await
                    .map_err(|r| format!("stream refused: {}", r.short()))?;
                loop {
                    if left().is_zero() {
                        return Err(format!("not ACTIVE within {deadline:?}"));
                    }
                    match stream.next(left()).await {
                        Ok(Some(ev)) => {
                            if ev.id.is_some() {
                                last_id.clone_from(&ev.id);
                            }
                            match ev.event.as_str() {
                                "active" => return Ok(ev.at),
                                "position" => shown(Shown {
                                    at: ev.at,
                                    position: ev.data["position"].as_u64().unwrap_or(0),
                                    estimated_wait_seconds: ev.data["estimatedWaitSeconds"]
                                        .as_u64(),
                                    id: ev.id,
                                }),
                                other => {
                                    return Err(format!(
                                        "stream sent {other} {} before ACTIVE",
                                        ev.data
                                    ))
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            Err("stream kept ending before ACTIVE".into())
        }
    }
}

/// Creates an event through the admin API; a refusal means the run cannot
/// be carried out.
pub async fn create_event(client: &Client, body: Value) -> Result<(), RunError> {
    let call = client.create_event(body.clone()).await;
    created(client, &call, format_args!("event {}", body["eventId"]))
}

/// Whether an admin API creation (of `what`) was answered 201; anything
/// else means the run cannot be carried out.
pub(crate) fn created(client: &Client, call: &Call, what: impl Display) -> Result<(), RunError> {
    match &call.reply {
        Reply::Http { status: 201, .. } => Ok(()),
        Reply::Transport(e) => Err(RunError::Unreachable(format!("{}: {e}", client.base()))),
        other => Err(RunError::SetupRefused(format!(
            "creating {what} answered {} {}",
            other.short(),
            other
                .body()
                .map(|b| b["message"].clone())
                .unwrap_or(json!(null))
        ))),
    }
}

/// Why a user never became ACTIVE.
pub struct NotAdmitted {
    /// The queue token, when the enter was accepted.
    pub token: Option<String>,
    pub why: String,
}

/// Enters `event_id`'s queue as `user` and waits, for up to a minute, until
/// ACTIVE; returns the queue token.
pub async fn enter_active(
    client: &Client,
    user: &str,
    event_id: &str,
    watch: Watch,
) -> Result<String, NotAdmitted> {
    let entered = client.enter(user, event_id, user).await;
    let Some(token) = entered
        .reply
        .str_field("token")
        .filter(|_| entered.reply.status() == Some(200))
        .map(str::to_owned)
    else {
        return Err(NotAdmitted {
            token: None,
            why: format!("enter answered {}", entered.reply.short()),
        });
    };
    if entered.reply.str_field("status") != Some("ACTIVE") {
        let waited =
            until_active(client, user, &token, watch, Duration::from_secs(60), |_| {}).await;
        if let Err(e) = waited {
            return Err(NotAdmitted {
                token: Some(token),
                why: format!("never ACTIVE: {e}"),
            });
        }
    }
    Ok(token)
}
