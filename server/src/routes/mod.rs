//! One module per group of operations, dispatched from one place: `Route`.

mod admin;
mod admission;
mod concerts;
mod ops;
mod pages;
mod payments;
mod queue;
mod stream;
mod tickets;

pub use stream::{parse_last_event_id, SseWriter};

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use crate::error::Result;
use crate::http::{App, Body};

/// Every route of the contract. Ids taken from the path are percent-decoded
/// here (RFC 3986: a client may encode `:` as `%3A`) and validated by the
/// handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    CreateEvent,
    GetEvent(String),
    Enter,
    QueueStatus,
    QueueStream,
    Reserve,
    GetReservation(String),
    CreateConcert,
    /// Concerts with an open schedule.
    Concerts,
    Schedules(String),
    /// Concert id, schedule id.
    Seats(String, String),
    Hold(String),
    Pay,
    Points,
    ChargePoints,
    Health,
    Metrics,
    OpenApi,
    /// The operator's view of every event's admission.
    Admissions,
    /// The operator's admission controls of one event.
    SetAdmission(String),
    /// The pages for people: the waiting room's entry, one event's
    /// waiting room, the operator's console, and their assets.
    Home,
    EventPage(String),
    Console,
    Asset(String),
}

impl Route {
    /// The route a path names and the method it takes; `None` is 404.
    pub fn resolve(path: &str) -> Option<(Route, Method)> {
        let route = match path {
            "/api/v1/admin/events" => (Route::CreateEvent, Method::POST),
            "/api/v1/queue/enter" | "/api/v1/queue/token" => (Route::Enter, Method::POST),
            "/api/v1/queue/status" => (Route::QueueStatus, Method::GET),
            "/api/v1/queue/stream" => (Route::QueueStream, Method::GET),
            "/api/v1/tickets/reserve" => (Route::Reserve, Method::POST),
            "/api/v1/admin/concerts" => (Route::CreateConcert, Method::POST),
            "/api/v1/concerts" => (Route::Concerts, Method::GET),
            "/api/v1/payments" => (Route::Pay, Method::POST),
            "/api/v1/points" => (Route::Points, Method::GET),
            "/api/v1/points/charge" => (Route::ChargePoints, Method::POST),
            "/actuator/health" => (Route::Health, Method::GET),
            "/metrics" => (Route::Metrics, Method::GET),
            "/openapi.yaml" => (Route::OpenApi, Method::GET),
            "/api/v1/admin/admission" => (Route::Admissions, Method::GET),
            "/" => (Route::Home, Method::GET),
            "/admin" => (Route::Console, Method::GET),
            _ => {
                if let Some(id) = single_segment(path, "/api/v1/events/") {
                    (Route::GetEvent(decode(id)), Method::GET)
                } else if let Some(id) = single_segment(path, "/events/") {
                    (Route::EventPage(decode(id)), Method::GET)
                } else if let Some(file) = single_segment(path, "/assets/") {
                    (Route::Asset(decode(file)), Method::GET)
                } else if let Some(id) = path
                    .strip_prefix("/api/v1/admin/events/")
                    .and_then(|rest| rest.strip_suffix("/admission"))
                    .filter(|id| !id.is_empty() && !id.contains('/'))
                {
                    (Route::SetAdmission(decode(id)), Method::POST)
                } else if let Some(id) = single_segment(path, "/api/v1/tickets/") {
                    (Route::GetReservation(decode(id)), Method::GET)
                } else if let Some(rest) = path.strip_prefix("/api/v1/concerts/") {
                    let parts: Vec<&str> = rest.split('/').collect();
                    if parts.iter().any(|p| p.is_empty()) {
                        return None;
                    }
                    match parts.as_slice() {
                        [c, "schedules"] => (Route::Schedules(decode(c)), Method::GET),
                        [c, "schedules", s, "seats"] => {
                            (Route::Seats(decode(c), decode(s)), Method::GET)
                        }
                        [c, "reservations"] => (Route::Hold(decode(c)), Method::POST),
                        _ => return None,
                    }
                } else {
                    return None;
                }
            }
        };
        Some(route)
    }

    /// The metrics label: the route's template, never the raw path.
    pub fn label(&self) -> &'static str {
        match self {
            Route::CreateEvent => "POST /api/v1/admin/events",
            Route::GetEvent(_) => "GET /api/v1/events/{eventId}",
            Route::Enter => "POST /api/v1/queue/enter",
            Route::QueueStatus => "GET /api/v1/queue/status",
            Route::QueueStream => "GET /api/v1/queue/stream",
            Route::Reserve => "POST /api/v1/tickets/reserve",
            Route::GetReservation(_) => "GET /api/v1/tickets/{reservationId}",
            Route::CreateConcert => "POST /api/v1/admin/concerts",
            Route::Concerts => "GET /api/v1/concerts",
            Route::Schedules(_) => "GET /api/v1/concerts/{concertId}/schedules",
            Route::Seats(..) => "GET /api/v1/concerts/{concertId}/schedules/{scheduleId}/seats",
            Route::Hold(_) => "POST /api/v1/concerts/{concertId}/reservations",
            Route::Pay => "POST /api/v1/payments",
            Route::Points => "GET /api/v1/points",
            Route::ChargePoints => "POST /api/v1/points/charge",
            Route::Health => "GET /actuator/health",
            Route::Metrics => "GET /metrics",
            Route::OpenApi => "GET /openapi.yaml",
            Route::Admissions => "GET /api/v1/admin/admission",
            Route::SetAdmission(_) => "POST /api/v1/admin/events/{eventId}/admission",
            Route::Home => "GET /",
            Route::EventPage(_) => "GET /events/{eventId}",
            Route::Console => "GET /admin",
            Route::Asset(_) => "GET /assets/{file}",
        }
    }

    /// Operations endpoints are never rate limited.
    pub fn rate_limited(&self) -> bool {
        !matches!(self, Route::Health | Route::Metrics | Route::OpenApi)
    }

    pub async fn call(self, app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
        match self {
            Route::CreateEvent => admin::create_event(app, req).await,
            Route::GetEvent(id) => admin::get_event(app, &id).await,
            Route::Enter => queue::enter(app, req).await,
            Route::QueueStatus => queue::status(app, req).await,
            Route::QueueStream => stream::stream(app, req).await,
            Route::Reserve => tickets::reserve(app, req).await,
            Route::GetReservation(id) => tickets::get(app, &id).await,
            Route::CreateConcert => concerts::create(app, req).await,
            Route::Concerts => concerts::list(app).await,
            Route::Schedules(c) => concerts::schedules(app, &c).await,
            Route::Seats(c, s) => concerts::seats(app, &c, &s).await,
            Route::Hold(c) => concerts::hold(app, &c, req).await,
            Route::Pay => payments::pay(app, req).await,
            Route::Points => payments::points(app, req).await,
            Route::ChargePoints => payments::charge(app, req).await,
            Route::Health => ops::health(app).await,
            Route::Metrics => ops::metrics(app).await,
            Route::OpenApi => ops::openapi(),
            Route::Admissions => admission::list(app, req).await,
            Route::SetAdmission(id) => admission::set(app, &id, req).await,
            Route::Home => pages::home(),
            Route::EventPage(id) => pages::event(&id),
            Route::Console => pages::console(),
            Route::Asset(file) => pages::asset(&file),
        }
    }
}

/// Parses and checks a request body as `route`'s handler does before it
/// touches any state: `Ok` for a body the handler would act on, the
/// contract's 400 (or 413) otherwise. For the fuzzers; routes without a
/// body accept only an empty one.
pub fn check_body(route: &Route, body: &[u8]) -> Result<()> {
    if body.len() > crate::validate::MAX_BODY_BYTES {
        return Err(crate::error::Error::PayloadTooLarge);
    }
    match route {
        Route::CreateEvent => admin::parse_create_event(body).map(drop),
        Route::Enter => queue::parse_enter(body).map(drop),
        Route::Reserve => tickets::parse_reserve(body).map(drop),
        Route::CreateConcert => concerts::parse_create(body).map(drop),
        Route::Hold(_) => concerts::parse_hold(body).map(drop),
        Route::Pay => payments::parse_pay(body).map(drop),
        Route::ChargePoints => payments::parse_charge(body).map(drop),
        Route::SetAdmission(_) => crate::backend::admission::AdmissionChange::parse(body).map(drop),
        _ if body.is_empty() => Ok(()),
        _ => Err(crate::error::Error::bad_request("this route takes no body")),
    }
}

/// A path segment percent-decoded. Invalid UTF-8 after decoding keeps the
/// raw segment, whose `%` the id check then refuses (400), as it refuses a
/// decoded `/`.
fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_or_else(|_| segment.to_owned(), |s| s.into_owned())
}

/// `rest` when `path` is `prefix` followed by one non-empty segment.
fn single_segment<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_templates_and_rejects_extra_segments() {
        assert_eq!(
            Route::resolve("/api/v1/events/e-1"),
            Some((Route::GetEvent("e-1".into()), Method::GET))
        );
        assert_eq!(
            Route::resolve("/api/v1/queue/token").map(|r| r.0),
            Some(Route::Enter)
        );
        assert_eq!(
            Route::resolve("/api/v1/tickets/reserve").map(|r| r.0),
            Some(Route::Reserve)
        );
        assert_eq!(
            Route::resolve("/api/v1/concerts/c1/schedules/s1/seats"),
            Some((Route::Seats("c1".into(), "s1".into()), Method::GET))
        );
        assert_eq!(
            Route::resolve("/api/v1/concerts/c1/reservations"),
            Some((Route::Hold("c1".into()), Method::POST))
        );
        assert_eq!(
            Route::resolve("/api/v1/events/0%3A5p"),
            Some((Route::GetEvent("0:5p".into()), Method::GET)),
            "segments are percent-decoded"
        );
        assert_eq!(
            Route::resolve("/api/v1/concerts/c%3A1/schedules/s%2D1/seats"),
            Some((Route::Seats("c:1".into(), "s-1".into()), Method::GET))
        );
        assert_eq!(
            Route::resolve("/api/v1/tickets/a%2Fb"),
            Some((Route::GetReservation("a/b".into()), Method::GET)),
            "an encoded slash stays in the id (which the handler refuses)"
        );
        assert_eq!(
            Route::resolve("/api/v1/tickets/%FF"),
            Some((Route::GetReservation("%FF".into()), Method::GET)),
            "not UTF-8 once decoded: kept raw"
        );
        assert_eq!(Route::resolve("/api/v1/concerts//schedules"), None);
        assert_eq!(Route::resolve("/api/v1/concerts/c1/schedules/s1"), None);
        assert_eq!(
            Route::resolve("/api/v1/concerts/c1/schedules/s1/seats/"),
            None
        );
        assert_eq!(Route::resolve("/api/v1/events/"), None);
        assert_eq!(Route::resolve("/api/v1/events/a/b"), None);
        assert_eq!(Route::resolve("/nope"), None);
        assert_eq!(
            Route::resolve("/api/v1/admin/events/e%3A1/admission"),
            Some((Route::SetAdmission("e:1".into()), Method::POST))
        );
        assert_eq!(Route::resolve("/api/v1/admin/events//admission"), None);
        assert_eq!(Route::resolve("/api/v1/admin/events/a/b/admission"), None);
        assert_eq!(
            Route::resolve("/events/c1"),
            Some((Route::EventPage("c1".into()), Method::GET))
        );
        assert_eq!(Route::resolve("/events/c1/x"), None);
        assert_eq!(Route::resolve("/"), Some((Route::Home, Method::GET)));
    }

    #[test]
    fn check_body_is_the_handlers_parse() {
        let ok: [(Route, &str); 4] = [
            (Route::Enter, r#"{"eventId":"e:1","userId":"u"}"#),
            (Route::Reserve, r#"{"eventId":"e","quantity":2}"#),
            (Route::ChargePoints, r#"{"userId":"u","amount":5}"#),
            (
                Route::CreateConcert,
                r#"{"concertId":"c","schedules":[{"scheduleId":"d","date":"2026-02-28","price":1}]}"#,
            ),
        ];
        for (route, body) in ok {
            assert!(
                check_body(&route, body.as_bytes()).is_ok(),
                "{route:?} {body}"
            );
        }
        // Controls: each refused as its handler refuses it.
        let bad: [(Route, &str); 5] = [
            (Route::Enter, r#"{"eventId":"e 1","userId":"u"}"#),
            (Route::Reserve, r#"{"eventId":"e","quantity":-1}"#),
            (Route::ChargePoints, r#"{"userId":"u","amount":0}"#),
            (
                Route::CreateConcert,
                r#"{"concertId":"c","schedules":[{"scheduleId":"d","date":"2026-02-30","price":1}]}"#,
            ),
            (Route::Health, "{}"),
        ];
        for (route, body) in bad {
            assert!(
                check_body(&route, body.as_bytes()).is_err(),
                "{route:?} {body}"
            );
        }
        let big = vec![b' '; crate::validate::MAX_BODY_BYTES + 1];
        assert!(matches!(
            check_body(&Route::Enter, &big),
            Err(crate::error::Error::PayloadTooLarge)
        ));
    }

    /// One value of every `Route` variant, in declaration order, walked
    /// from the first through `after`, whose `match` has no wildcard arm: a
    /// new variant does not compile until it has an arm here, and adding it
    /// means saying which variant comes after it and linking it from the
    /// one before.
    fn every_route() -> Vec<Route> {
        fn after(route: &Route) -> Option<Route> {
            let s = String::new;
            match route {
                Route::CreateEvent => Some(Route::GetEvent(s())),
                Route::GetEvent(_) => Some(Route::Enter),
                Route::Enter => Some(Route::QueueStatus),
                Route::QueueStatus => Some(Route::QueueStream),
                Route::QueueStream => Some(Route::Reserve),
                Route::Reserve => Some(Route::GetReservation(s())),
                Route::GetReservation(_) => Some(Route::CreateConcert),
                Route::CreateConcert => Some(Route::Concerts),
                Route::Concerts => Some(Route::Schedules(s())),
                Route::Schedules(_) => Some(Route::Seats(s(), s())),
                Route::Seats(..) => Some(Route::Hold(s())),
                Route::Hold(_) => Some(Route::Pay),
                Route::Pay => Some(Route::Points),
                Route::Points => Some(Route::ChargePoints),
                Route::ChargePoints => Some(Route::Health),
                Route::Health => Some(Route::Metrics),
                Route::Metrics => Some(Route::OpenApi),
                Route::OpenApi => Some(Route::Admissions),
                Route::Admissions => Some(Route::SetAdmission(s())),
                Route::SetAdmission(_) => Some(Route::Home),
                Route::Home => Some(Route::EventPage(s())),
                Route::EventPage(_) => Some(Route::Console),
                Route::Console => Some(Route::Asset(s())),
                Route::Asset(_) => None,
            }
        }
        let mut all = vec![Route::CreateEvent];
        while let Some(next) = after(all.last().unwrap()) {
            // A variant named twice would loop the chain (or skip others).
            assert!(
                !all.contains(&next),
                "{next:?} comes twice in the chain: {all:?}"
            );
            all.push(next);
        }
        all
    }

    #[test]
    fn openapi_documents_every_route() {
        let spec = include_str!("../../../docs/openapi.yaml");
        for route in every_route() {
            let (method, path) = route.label().split_once(' ').unwrap();
            let needle = format!("\n  {path}:\n");
            let at = spec
                .find(&needle)
                .unwrap_or_else(|| panic!("{path} missing from docs/openapi.yaml"));
            let section = &spec[at + needle.len()..];
            let section = format!(
                "\n{}",
                &section[..section.find("\n  /").unwrap_or(section.len())]
            );
            let op = format!("\n    {}:", method.to_lowercase());
            let at = section
                .find(&op)
                .unwrap_or_else(|| panic!("{method} {path} missing from docs/openapi.yaml"));
            // The operation: its lines up to the next key at its own indent.
            let rest = &section[at + op.len()..];
            let operation = rest
                .split('\n')
                .skip(1)
                .take_while(|line| !line.starts_with("    ") || line.starts_with("     "))
                .collect::<Vec<_>>()
                .join("\n");
            assert_eq!(
                operation.contains("'429':"),
                route.rate_limited(),
                "{method} {path}: docs/openapi.yaml must list 429 exactly when the route is rate limited"
            );
        }
        assert!(
            spec.contains("\n  /api/v1/queue/token:\n"),
            "the token alias is documented"
        );
    }
}
