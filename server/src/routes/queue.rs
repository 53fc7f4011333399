//! `POST /api/v1/queue/enter` (alias `/queue/token`) and `GET /api/v1/queue/status`.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::http::{json_response, App, Body};
use crate::model::{EntryStatus, QueueStatus};
use crate::token::Claims;
use crate::validate;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Enter {
    event_id: String,
    user_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entered {
    token: String,
    position: u64,
    estimated_wait_seconds: u64,
    status: QueueStatus,
}

/// The body of enter, parsed and checked (400 otherwise).
pub(super) fn parse_enter(bytes: &[u8]) -> Result<Enter> {
    let body: Enter = validate::json(bytes)?;
    validate::id("eventId", &body.event_id)?;
    validate::id("userId", &body.user_id)?;
    Ok(body)
}

pub async fn enter(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    let body = parse_enter(&app.read_body(req).await?)?;
    app.check_user_rate(&body.user_id)?;
    let entered = app.backend.enter(&body.event_id, &body.user_id).await?;
    let token = app.signer.sign(&Claims {
        event_id: body.event_id,
        user_id: body.user_id,
        seq: entered.seq,
        issued_at: entered.issued_at,
    });
    json_response(
        StatusCode::OK,
        &Entered {
            token,
            position: entered.view.position,
            estimated_wait_seconds: entered.view.estimated_wait_seconds,
            status: entered.view.status,
        },
    )
}

pub async fn status(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    let claims = app.queue_claims(&req, true)?;
    let status: EntryStatus = app.backend.queue_status(&claims).await?;
    json_response(StatusCode::OK, &status)
}
