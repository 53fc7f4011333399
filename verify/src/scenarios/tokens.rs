//! The token-rules scenario behind check 5: requests that must be refused,
//! each with the stock read before and after.

use std::time::Duration;

use serde_json::json;

use super::{create_event, until_active, Watch};
use crate::client::{Client, Reply};
use crate::RunError;

/// The refusals, in the order they are tried: the case, the status and
/// the code the contract calls for. The last follows tok-alice's one
/// legitimate purchase.
pub const CASES: [(&str, u16, &str); 6] = [
    ("no token", 401, "UNAUTHORIZED"),
    ("forged token (one byte changed)", 401, "UNAUTHORIZED"),
    ("malformed token", 401, "UNAUTHORIZED"),
    ("waiting token", 403, "NOT_ACTIVE"),
    ("token of another event", 403, "NOT_ACTIVE"),
    ("used token", 403, "NOT_ACTIVE"),
];

#[derive(Debug, Clone)]
pub struct TokenCase {
    pub name: &'static str,
    pub expected_status: u16,
    pub expected_code: &'static str,
    pub reply: Reply,
    pub remaining_before: Option<u64>,
    pub remaining_after: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct TokensRun {
    pub event_id: String,
    pub cases: Vec<TokenCase>,
    /// Set-up steps that did not go as the contract says (e.g. the legit
    /// purchase between the cases was refused).
    pub problems: Vec<String>,
}

pub async fn run(
    client: &Client,
    event_id: String,
    other_event_id: String,
    watch: Watch,
) -> Result<TokensRun, RunError> {
    client.history.note(
        "scenario",
        json!({"scenario": "tokens", "eventId": event_id, "otherEventId": other_event_id}),
    );
    for id in [&event_id, &other_event_id] {
        create_event(
            client,
            json!({"eventId": id, "stock": 10, "perUserLimit": 1, "activeCapacity": 1, "activeTtlSeconds": 600}),
        )
        .await?;
    }
    let mut problems = Vec::new();
    let alice = active_token(client, &event_id, "tok-alice", watch, &mut problems).await;
    let bob = client.enter("tok-bob", &event_id, "tok-bob").await;
    if bob.reply.str_field("status") != Some("WAITING") {
        problems.push(format!(
            "tok-bob should be WAITING behind tok-alice (activeCapacity 1), enter answered {} {:?}",
            bob.reply.short(),
            bob.reply.str_field("status")
        ));
    }
    let bob = bob.reply.str_field("token").unwrap_or_default().to_owned();
    let carol = active_token(client, &other_event_id, "tok-carol", watch, &mut problems).await;

    let forged = forge(&alice);
    let mut cases = Vec::new();
    let tokens = [
        None,
        Some(forged.as_str()),
        Some("not-a-token"),
        Some(&bob),
        Some(&carol),
    ];
    for ((name, status, code), token) in CASES.into_iter().zip(tokens) {
        cases.push(attempt(client, &event_id, name, token, status, code).await);
    }
    let legit = client
        .reserve("tok-alice", Some(&alice), &event_id, 1)
        .await;
    if !legit.reply.is_success() {
        problems.push(format!(
            "tok-alice, ACTIVE, could not buy: reserve answered {}",
            legit.reply.short()
        ));
    }
    let (name, status, code) = CASES[5];
    cases.push(attempt(client, &event_id, name, Some(&alice), status, code).await);
    Ok(TokensRun {
        event_id,
        cases,
        problems,
    })
}

async fn active_token(
    client: &Client,
    event_id: &str,
    user: &str,
    watch: Watch,
    problems: &mut Vec<String>,
) -> String {
    let call = client.enter(user, event_id, user).await;
    let token = call.reply.str_field("token").unwrap_or_default().to_owned();
    if call.reply.str_field("status") != Some("ACTIVE") {
        if let Err(e) =
            until_active(client, user, &token, watch, Duration::from_secs(30), |_| {}).await
        {
            problems.push(format!("{user} never became ACTIVE: {e}"));
        }
    }
    token
}

/// The token with one byte in the middle changed (to another base64url
/// character, so only the signature can tell).
pub fn forge(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    if bytes.is_empty() {
        return "x".into();
    }
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn remaining(client: &Client, event_id: &str) -> Option<u64> {
    let call = client.event("checker", event_id).await;
    call.reply.body().and_then(|b| b["remaining"].as_u64())
}

async fn attempt(
    client: &Client,
    event_id: &str,
    name: &'static str,
    token: Option<&str>,
    expected_status: u16,
    expected_code: &'static str,
) -> TokenCase {
    let remaining_before = remaining(client, event_id).await;
    let call = client.reserve("tok-attacker", token, event_id, 1).await;
    let remaining_after = remaining(client, event_id).await;
    TokenCase {
        name,
        expected_status,
        expected_code,
        reply: call.reply,
        remaining_before,
        remaining_after,
    }
}
