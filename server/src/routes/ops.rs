//! `GET /actuator/health`, `GET /metrics`, `GET /openapi.yaml`.

use std::collections::BTreeMap;

use hyper::header::CONTENT_TYPE;
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::error::Result;
use crate::http::{full, json_response, App, Body};

#[derive(Serialize)]
struct Health {
    status: &'static str,
    backends: BTreeMap<&'static str, &'static str>,
}

pub async fn health(app: &App) -> Result<Response<Body>> {
    let components = app.backend.health().await;
    let all_up = components.iter().all(|c| c.up);
    let backends = components
        .iter()
        .map(|c| (c.name, if c.up { "UP" } else { "DOWN" }))
        .collect();
    let (status, code) = if all_up {
        ("UP", StatusCode::OK)
    } else {
        ("DOWN", StatusCode::SERVICE_UNAVAILABLE)
    };
    json_response(code, &Health { status, backends })
}

pub async fn metrics(app: &App) -> Result<Response<Body>> {
    let text = app.metrics.render(&app.backend.gauges().await);
    Ok(Response::builder()
        .header(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(full(text))
        .expect("static headers are valid"))
}

pub fn openapi() -> Result<Response<Body>> {
    Ok(Response::builder()
        .header(CONTENT_TYPE, "application/yaml")
        .body(full(include_str!("../../../docs/openapi.yaml")))
        .expect("static headers are valid"))
}
