//! The pages for people: `GET /` (choose an event), `/events/{eventId}`
//! (its waiting room, then the purchase or the seat map), `/admin` (the
//! operator's console) and `/assets/{file}`.
//!
//! Every asset is compiled into the binary (`include_str!`), so a bare
//! `ticket-server` serves its pages with nothing to build or install. The
//! pages are plain HTML, CSS and JavaScript against the public API: the
//! browser's own `fetch` and `EventSource` do all the work a front-end
//! library would, so none is vendored. They run no inline script, which
//! lets the Content-Security-Policy forbid every script but our own.

use hyper::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Response, StatusCode};

use crate::error::{Error, Result};
use crate::http::{full, Body};
use crate::validate;

/// Scripts, styles, connections and images from this server only; no
/// framing (the console's buttons cannot be clickjacked).
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const HTML: &str = "text/html; charset=utf-8";

/// `(name, content type, body)` of every asset.
const ASSETS: [(&str, &str, &str); 5] = [
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/style.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/common.js"),
    ),
    (
        "home.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/home.js"),
    ),
    (
        "waiting.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/waiting.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/admin.js"),
    ),
];

pub fn home() -> Result<Response<Body>> {
    Ok(page(HTML, include_str!("../../assets/index.html")))
}

/// The waiting room of `event_id`; the page reads the id from its own
/// path, and an unknown event is said on the page (the API's 404).
pub fn event(event_id: &str) -> Result<Response<Body>> {
    validate::id("eventId", event_id)?;
    Ok(page(HTML, include_str!("../../assets/event.html")))
}

pub fn console() -> Result<Response<Body>> {
    Ok(page(HTML, include_str!("../../assets/admin.html")))
}

pub fn asset(name: &str) -> Result<Response<Body>> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| Error::not_found(format!("no asset {name}")))?;
    Ok(page(content_type, body))
}

fn page(content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, content_type)
        // Revalidate each time: a new server's pages must not mix with an
        // old server's cached scripts.
        .header(CACHE_CONTROL, "no-cache")
        .body(full(body))
        .expect("static headers are valid");
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_links_only_assets_that_exist() {
        let pages = [
            include_str!("../../assets/index.html"),
            include_str!("../../assets/event.html"),
            include_str!("../../assets/admin.html"),
        ];
        for html in pages {
            assert!(!html.contains("<script>"), "no inline script (CSP)");
            for link in html.split("/assets/").skip(1) {
                let name = &link[..link.find('"').unwrap()];
                assert!(asset(name).is_ok(), "{name} is linked but not served");
            }
        }
        assert!(asset("nope.js").is_err());
        // openapi.yaml names exactly the assets served.
        let spec = include_str!("../../../docs/openapi.yaml");
        let names: Vec<&str> = ASSETS.iter().map(|(n, _, _)| *n).collect();
        let listed = format!("enum: [{}]", names.join(", "));
        assert!(spec.contains(&listed), "openapi.yaml lacks {listed}");
        assert!(event("bad id").is_err(), "a bad id is the contract's 400");
    }
}
