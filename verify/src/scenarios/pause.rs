//! The admission-control scenario behind the pause check: a line of five
//! with one slot; the operator pauses, the ACTIVE user buys (so the slot
//! is free, and must stay free), the waiting are watched, the operator
//! resumes, and each admitted user buys so the next can come in.
//!
//! It needs the reference server's admission controls
//! (`POST /api/v1/admin/events/{eventId}/admission`), which are not part
//! of the flash-sale contract every target implements: the check runs only
//! when named (`--checks pause`).

use std::time::Duration;

use serde_json::json;

use super::create_event;
use crate::client::Client;
use crate::RunError;

/// Users in line; the first is ACTIVE when the pause begins.
pub const USERS: usize = 5;
/// How long the waiting are watched while paused: several admission
/// sweeps of the reference server (every 200-250 ms), each of which would
/// admit into the free slot if the pause were ignored.
pub const HELD_WATCH: Duration = Duration::from_millis(1500);
/// How long the resumed line has to admit everyone.
const ADMIT_DEADLINE: Duration = Duration::from_secs(10);
/// The gap between rounds of status reads.
const READ_EVERY: Duration = Duration::from_millis(50);

/// The history's name of user `i`.
pub fn user(i: usize) -> String {
    format!("pause-u{i}")
}

pub async fn run(client: &Client, event_id: String) -> Result<(), RunError> {
    client.history.note(
        "scenario",
        json!({"scenario": "pause", "eventId": event_id, "users": USERS}),
    );
    create_event(
        client,
        json!({"eventId": event_id, "stock": USERS, "perUserLimit": 1, "activeCapacity": 1, "activeTtlSeconds": 600}),
    )
    .await?;
    let mut tokens = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let call = client.enter(&user(i), &event_id, &user(i)).await;
        tokens.push(call.reply.str_field("token").unwrap_or_default().to_owned());
    }
    let controls = format!("/api/v1/admin/events/{event_id}/admission");
    client
        .admin_post(&controls, "pause", json!({"paused": true}))
        .await;
    // The slot frees; while paused nobody may take it.
    client
        .reserve(&user(0), Some(&tokens[0]), &event_id, 1)
        .await;
    let until = tokio::time::Instant::now() + HELD_WATCH;
    while tokio::time::Instant::now() < until {
        for (i, token) in tokens.iter().enumerate().skip(1) {
            client.status(&user(i), token).await;
        }
        tokio::time::sleep(READ_EVERY).await;
    }
    client
        .admin_post(&controls, "resume", json!({"paused": false}))
        .await;
    // Each admitted user buys, which frees the slot for the next in line.
    let mut bought = [false; USERS];
    bought[0] = true;
    let until = tokio::time::Instant::now() + ADMIT_DEADLINE;
    while bought.contains(&false) && tokio::time::Instant::now() < until {
        for i in 1..USERS {
            if bought[i] {
                continue;
            }
            let read = client.status(&user(i), &tokens[i]).await;
            if read.reply.str_field("status") == Some("ACTIVE") {
                client
                    .reserve(&user(i), Some(&tokens[i]), &event_id, 1)
                    .await;
                bought[i] = true;
            }
        }
        tokio::time::sleep(READ_EVERY).await;
    }
    Ok(())
}
