//! `flash_sale`: a buyer enters the queue, waits until ACTIVE (SSE or
//! polling), and reserves one item. One iteration is one purchase.

use std::time::{Duration, Instant};

use goose::goose::{GooseMethod, GooseUser, TransactionError};
use serde_json::json;

use super::{call, Ctx, Req, Wait};

/// How long a buyer waits for admission before the iteration fails.
const ADMISSION_DEADLINE: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(20);

/// One purchase; `Ok(true)` when a reservation was accepted.
pub async fn iteration(
    user: &mut GooseUser,
    ctx: &Ctx,
    lag: Duration,
) -> Result<bool, Box<TransactionError>> {
    let event = ctx.prepared.event_id.clone();
    let user_id = ctx.next_user_id();
    let Some(token) = enter_active(user, ctx, &event, &user_id, lag).await? else {
        return Ok(false);
    };
    let reserved = call(
        user,
        ctx,
        Req {
            name: "reserve",
            method: GooseMethod::Post,
            path: "/api/v1/tickets/reserve",
            body: Some(&json!({"eventId": event, "quantity": 1})),
            token: Some(&token),
            key: None,
            lag: Duration::ZERO,
        },
    )
    .await?;
    Ok(reserved.ok())
}

/// Enters `event`'s queue as `user_id` and waits for admission: the queue
/// token once ACTIVE, `None` when the enter was refused or admission never
/// came.
pub(super) async fn enter_active(
    user: &mut GooseUser,
    ctx: &Ctx,
    event: &str,
    user_id: &str,
    lag: Duration,
) -> Result<Option<String>, Box<TransactionError>> {
    let entered = call(
        user,
        ctx,
        Req {
            name: "enter",
            method: GooseMethod::Post,
            path: "/api/v1/queue/enter",
            body: Some(&json!({"eventId": event, "userId": user_id})),
            token: None,
            key: None,
            lag,
        },
    )
    .await?
    .json();
    let Some(token) = entered["token"].as_str().map(str::to_owned) else {
        return Ok(None);
    };
    let active = match entered["status"].as_str() {
        Some("ACTIVE") => true,
        Some("WAITING") => wait_active(user, ctx, &token).await?,
        _ => false,
    };
    Ok(active.then_some(token))
}

/// Waits for admission; recorded as the `wait` transaction.
async fn wait_active(
    user: &mut GooseUser,
    ctx: &Ctx,
    token: &str,
) -> Result<bool, Box<TransactionError>> {
    let started = Instant::now();
    let admitted = match ctx.wait {
        Wait::Poll => poll(user, ctx, token).await?,
        Wait::Sse => sse(user, ctx, token).await,
    };
    let took = started.elapsed();
    ctx.recorder.record("wait", took, took, admitted);
    Ok(admitted)
}

async fn poll(user: &mut GooseUser, ctx: &Ctx, token: &str) -> Result<bool, Box<TransactionError>> {
    let deadline = Instant::now() + ADMISSION_DEADLINE;
    while Instant::now() < deadline {
        let status = call(
            user,
            ctx,
            Req {
                name: "status",
                method: GooseMethod::Get,
                path: "/api/v1/queue/status",
                body: None,
                token: Some(token),
                key: None,
                lag: Duration::ZERO,
            },
        )
        .await?;
        match status.field("status").as_deref() {
            Some("ACTIVE") => return Ok(true),
            Some("WAITING") => tokio::time::sleep(POLL_EVERY).await,
            _ => return Ok(false),
        }
    }
    Ok(false)
}

/// Reads the SSE stream until `event: active` (or a final status).
async fn sse(user: &mut GooseUser, ctx: &Ctx, token: &str) -> bool {
    let Ok(url) = user.build_url(&format!("/api/v1/queue/stream?token={token}")) else {
        return false;
    };
    let read = async {
        let mut response = user
            .client
            .get(url)
            .header("Accept", "text/event-stream")
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            if response.status().as_u16() == 429 {
                ctx.recorder.rate_limited();
            }
            return Some(false);
        }
        let mut buffer = String::new();
        while let Some(chunk) = response.chunk().await.ok()? {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if frame.lines().any(|l| l.trim() == "event: active") {
                    return Some(true);
                }
                if frame.contains("\"DONE\"") || frame.contains("\"EXPIRED\"") {
                    return Some(false);
                }
            }
        }
        Some(false)
    };
    tokio::time::timeout(ADMISSION_DEADLINE, read)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
