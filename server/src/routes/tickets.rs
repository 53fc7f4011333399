//! `POST /api/v1/tickets/reserve` and `GET /api/v1/tickets/{reservationId}`.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http::{json_response, App, Body};
use crate::model::ReservationStatus;
use crate::validate;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Reserve {
    event_id: String,
    quantity: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Reserved {
    reservation_id: String,
    status: ReservationStatus,
}

pub async fn reserve(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    let outcome = try_reserve(app, req).await;
    app.metrics.observe_reservation(match &outcome {
        Ok(_) => "ok",
        Err(Error::SoldOut { .. }) => "sold_out",
        Err(Error::LimitExceeded { .. }) => "limit_exceeded",
        Err(Error::NotActive(_)) => "not_active",
        Err(Error::Unauthorized(_)) => "unauthorized",
        Err(Error::Unavailable(_)) => "unavailable",
        Err(_) => "rejected",
    });
    outcome
}

/// The body of a reserve, parsed and checked (400 otherwise; the quantity's
/// bound is the event's and is checked by the backend).
pub(super) fn parse_reserve(bytes: &[u8]) -> Result<Reserve> {
    let body: Reserve = validate::json(bytes)?;
    validate::id("eventId", &body.event_id)?;
    Ok(body)
}

async fn try_reserve(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    let claims = app.queue_claims(&req, false)?;
    let body = parse_reserve(&app.read_body(req).await?)?;
    let reservation = app
        .backend
        .reserve(&claims, &body.event_id, body.quantity)
        .await?;
    json_response(
        StatusCode::OK,
        &Reserved {
            reservation_id: reservation.reservation_id,
            status: reservation.status,
        },
    )
}

pub async fn get(app: &App, reservation_id: &str) -> Result<Response<Body>> {
    validate::id("reservationId", reservation_id)?;
    json_response(
        StatusCode::OK,
        &app.backend.reservation(reservation_id).await?,
    )
}
