//! The concert seat map: `POST /api/v1/admin/concerts`, the list of open
//! concerts, schedules, seats,
//! and `POST /api/v1/concerts/{concertId}/reservations` (a seat hold).

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::concert::{
    valid_date, ConcertSpec, ScheduleSpec, DEFAULT_SEAT_COUNT, MAX_PRICE, MAX_SCHEDULES,
    MAX_SEAT_COUNT,
};
use crate::error::{Error, Result};
use crate::http::{json_response, App, Body};
use crate::validate;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateConcert {
    concert_id: String,
    name: Option<String>,
    schedules: Vec<CreateSchedule>,
    active_capacity: Option<u32>,
    active_ttl_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateSchedule {
    schedule_id: String,
    date: String,
    seat_count: Option<u32>,
    price: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    concert_id: &'a str,
    schedules: usize,
}

pub async fn create(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    app.require_admin(&req)?;
    let spec = parse_create(&app.read_body(req).await?)?;
    let count = spec.schedules.len();
    let concert_id = spec.concert_id.clone();
    app.backend.create_concert(spec).await?;
    json_response(
        StatusCode::CREATED,
        &Created {
            concert_id: &concert_id,
            schedules: count,
        },
    )
}

/// The body of create-concert, parsed and checked (400 otherwise).
pub(super) fn parse_create(bytes: &[u8]) -> Result<ConcertSpec> {
    let body: CreateConcert = validate::json(bytes)?;
    validate::id("concertId", &body.concert_id)?;
    if let Some(name) = &body.name {
        validate::name("name", name, 200)?;
    }
    validate::range(
        "number of schedules",
        body.schedules.len(),
        1,
        MAX_SCHEDULES,
    )?;
    let mut schedules: Vec<ScheduleSpec> = Vec::with_capacity(body.schedules.len());
    for s in body.schedules {
        validate::id("scheduleId", &s.schedule_id)?;
        if schedules.iter().any(|o| o.schedule_id == s.schedule_id) {
            return Err(Error::bad_request(format!(
                "scheduleId {} appears twice",
                s.schedule_id
            )));
        }
        if !valid_date(&s.date) {
            return Err(Error::bad_request(format!(
                "date must be a calendar date YYYY-MM-DD, got {:?}",
                s.date
            )));
        }
        let seat_count = s.seat_count.unwrap_or(DEFAULT_SEAT_COUNT);
        validate::range("seatCount", seat_count, 1, MAX_SEAT_COUNT)?;
        validate::range("price", s.price, 0, MAX_PRICE)?;
        schedules.push(ScheduleSpec {
            schedule_id: s.schedule_id,
            date: s.date,
            seat_count,
            price: s.price,
        });
    }
    let spec = ConcertSpec {
        concert_id: body.concert_id,
        name: body.name,
        schedules,
        active_capacity: body.active_capacity.unwrap_or(5000),
        active_ttl_seconds: body.active_ttl_seconds.unwrap_or(300),
    };
    validate::range("activeCapacity", spec.active_capacity, 1, 1_000_000)?;
    validate::range("activeTtlSeconds", spec.active_ttl_seconds, 1, 86_400)?;
    Ok(spec)
}

pub async fn list(app: &App) -> Result<Response<Body>> {
    json_response(StatusCode::OK, &app.backend.concerts().await?)
}

pub async fn schedules(app: &App, concert_id: &str) -> Result<Response<Body>> {
    validate::id("concertId", concert_id)?;
    json_response(StatusCode::OK, &app.backend.schedules(concert_id).await?)
}

pub async fn seats(app: &App, concert_id: &str, schedule_id: &str) -> Result<Response<Body>> {
    validate::id("concertId", concert_id)?;
    validate::id("scheduleId", schedule_id)?;
    json_response(
        StatusCode::OK,
        &app.backend.seats(concert_id, schedule_id).await?,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct HoldSeat {
    schedule_id: String,
    seat_number: u32,
}

/// The body of a seat hold, parsed and checked (400 otherwise).
pub(super) fn parse_hold(bytes: &[u8]) -> Result<HoldSeat> {
    let body: HoldSeat = validate::json(bytes)?;
    validate::id("scheduleId", &body.schedule_id)?;
    validate::range("seatNumber", body.seat_number, 1, MAX_SEAT_COUNT)?;
    Ok(body)
}

pub async fn hold(app: &App, concert_id: &str, req: Request<Incoming>) -> Result<Response<Body>> {
    let outcome = try_hold(app, concert_id, req).await;
    app.metrics.observe_hold(&outcome);
    outcome
}

async fn try_hold(app: &App, concert_id: &str, req: Request<Incoming>) -> Result<Response<Body>> {
    validate::id("concertId", concert_id)?;
    let claims = app.queue_claims(&req, false)?;
    let body = parse_hold(&app.read_body(req).await?)?;
    let hold = app
        .backend
        .hold(&claims, concert_id, &body.schedule_id, body.seat_number)
        .await?;
    json_response(StatusCode::CREATED, &hold)
}
