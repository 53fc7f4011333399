//! `POST /api/v1/admin/events` and `GET /api/v1/events/{eventId}`.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::http::{json_response, App, Body};
use crate::model::EventSpec;
use crate::validate::{self, MAX_STOCK};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateEvent {
    event_id: String,
    name: Option<String>,
    stock: u64,
    per_user_limit: Option<u32>,
    active_capacity: Option<u32>,
    active_ttl_seconds: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    event_id: &'a str,
    stock: u64,
}

pub async fn create_event(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    app.require_admin(&req)?;
    let spec = parse_create_event(&app.read_body(req).await?)?;
    let view = app.backend.create_event(spec).await?;
    json_response(
        StatusCode::CREATED,
        &Created {
            event_id: &view.event_id,
            stock: view.stock,
        },
    )
}

/// The body of create-event, parsed and checked (400 otherwise).
pub(super) fn parse_create_event(bytes: &[u8]) -> Result<EventSpec> {
    let body: CreateEvent = validate::json(bytes)?;
    validate::id("eventId", &body.event_id)?;
    validate::range("stock", body.stock, 0, MAX_STOCK)?;
    if let Some(name) = &body.name {
        validate::name("name", name, 200)?;
    }
    let spec = EventSpec {
        event_id: body.event_id,
        name: body.name,
        stock: body.stock,
        per_user_limit: body.per_user_limit.unwrap_or(1),
        active_capacity: body.active_capacity.unwrap_or(5000),
        active_ttl_seconds: body.active_ttl_seconds.unwrap_or(300),
    };
    validate::range("perUserLimit", spec.per_user_limit, 1, 10_000)?;
    validate::range("activeCapacity", spec.active_capacity, 1, 1_000_000)?;
    validate::range("activeTtlSeconds", spec.active_ttl_seconds, 1, 86_400)?;
    Ok(spec)
}

pub async fn get_event(app: &App, event_id: &str) -> Result<Response<Body>> {
    validate::id("eventId", event_id)?;
    json_response(StatusCode::OK, &app.backend.event(event_id).await?)
}
