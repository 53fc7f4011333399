//! The operator's admission controls: `GET /api/v1/admin/admission` (every
//! event's numbers and controls, for the console) and
//! `POST /api/v1/admin/events/{eventId}/admission` (change them live).
//! Both need the admin token.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use crate::backend::admission::{AdmissionChange, AdmissionView};
use crate::error::Result;
use crate::http::{json_response, App, Body};
use crate::validate;

#[derive(Serialize)]
struct Admissions {
    events: Vec<AdmissionView>,
}

pub async fn list(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    app.require_admin(&req)?;
    let events = app.backend.admissions().await;
    json_response(StatusCode::OK, &Admissions { events })
}

pub async fn set(app: &App, event_id: &str, req: Request<Incoming>) -> Result<Response<Body>> {
    app.require_admin(&req)?;
    validate::id("eventId", event_id)?;
    let change = AdmissionChange::parse(&app.read_body(req).await?)?;
    let view = app.backend.set_admission(event_id, &change).await?;
    json_response(StatusCode::OK, &view)
}
