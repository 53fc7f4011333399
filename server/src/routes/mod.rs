//! One module per group of operations, dispatched from one place: `Route`.

mod admin;
mod ops;
mod queue;
mod stream;
mod tickets;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use crate::error::Result;
use crate::http::{App, Body};

/// Every route of the contract. Ids taken from the path are validated by the
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
    Health,
    Metrics,
    OpenApi,
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
            "/actuator/health" => (Route::Health, Method::GET),
            "/metrics" => (Route::Metrics, Method::GET),
            "/openapi.yaml" => (Route::OpenApi, Method::GET),
            _ => {
                if let Some(id) = single_segment(path, "/api/v1/events/") {
                    (Route::GetEvent(id.to_owned()), Method::GET)
                } else if let Some(id) = single_segment(path, "/api/v1/tickets/") {
                    (Route::GetReservation(id.to_owned()), Method::GET)
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
            Route::Health => "GET /actuator/health",
            Route::Metrics => "GET /metrics",
            Route::OpenApi => "GET /openapi.yaml",
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
            Route::Health => ops::health(app).await,
            Route::Metrics => ops::metrics(app).await,
            Route::OpenApi => ops::openapi(),
        }
    }
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
        assert_eq!(Route::resolve("/api/v1/events/"), None);
        assert_eq!(Route::resolve("/api/v1/events/a/b"), None);
        assert_eq!(Route::resolve("/nope"), None);
    }

    #[test]
    fn openapi_documents_every_route() {
        let spec = include_str!("../../../docs/openapi.yaml");
        for route in [
            Route::CreateEvent,
            Route::GetEvent(String::new()),
            Route::Enter,
            Route::QueueStatus,
            Route::QueueStream,
            Route::Reserve,
            Route::GetReservation(String::new()),
            Route::Health,
            Route::Metrics,
            Route::OpenApi,
        ] {
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
            assert!(
                section.contains(&format!("\n    {}:", method.to_lowercase())),
                "{method} {path} missing from docs/openapi.yaml"
            );
        }
        assert!(
            spec.contains("\n  /api/v1/queue/token:\n"),
            "the token alias is documented"
        );
    }
}
