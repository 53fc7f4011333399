//! `POST /api/v1/payments`, `GET /api/v1/points` and `POST /api/v1/points/charge`.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::concert::{valid_idempotency_key, PayRequest, MAX_PRICE};
use crate::error::{Error, Result};
use crate::http::{json_response, query_param, App, Body};
use crate::validate;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Pay {
    reservation_id: String,
}

/// The body of a payment, parsed and checked (400 otherwise).
pub(super) fn parse_pay(bytes: &[u8]) -> Result<Pay> {
    let body: Pay = validate::json(bytes)?;
    validate::id("reservationId", &body.reservation_id)?;
    Ok(body)
}

pub async fn pay(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    let outcome = try_pay(app, req).await;
    app.metrics.observe_payment(&outcome);
    outcome
}

async fn try_pay(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    let claims = app.queue_claims(&req, false)?;
    let idempotency_key = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if valid_idempotency_key(k) => Some(k.to_owned()),
            _ => {
                return Err(Error::bad_request(
                    "Idempotency-Key must be 1..=128 visible ASCII characters",
                ))
            }
        },
    };
    let body = parse_pay(&app.read_body(req).await?)?;
    let request = PayRequest {
        reservation_id: body.reservation_id,
        idempotency_key,
    };
    json_response(StatusCode::OK, &app.backend.pay(&claims, &request).await?)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Points<'a> {
    user_id: &'a str,
    balance: u64,
}

pub async fn points(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    let user_id = query_param(req.uri().query(), "userId")
        .ok_or_else(|| Error::bad_request("query parameter userId is required"))?;
    validate::id("userId", &user_id)?;
    app.check_user_rate(&user_id)?;
    let balance = app.backend.points(&user_id).await?;
    json_response(
        StatusCode::OK,
        &Points {
            user_id: &user_id,
            balance,
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Charge {
    user_id: String,
    amount: u64,
}

/// The body of a points charge, parsed and checked (400 otherwise).
pub(super) fn parse_charge(bytes: &[u8]) -> Result<Charge> {
    let body: Charge = validate::json(bytes)?;
    validate::id("userId", &body.user_id)?;
    validate::range("amount", body.amount, 1, MAX_PRICE)?;
    Ok(body)
}

pub async fn charge(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    let body = parse_charge(&app.read_body(req).await?)?;
    app.check_user_rate(&body.user_id)?;
    let balance = app.backend.charge(&body.user_id, body.amount).await?;
    json_response(
        StatusCode::OK,
        &Points {
            user_id: &body.user_id,
            balance,
        },
    )
}
