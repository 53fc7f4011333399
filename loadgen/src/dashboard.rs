//! `loadgen run --dashboard ADDR`: a page that follows a run while it goes.
//!
//! Every second the page is sent the headline transaction's last
//! one-second interval (successes per second, errors, P50/P95/P99 raw and
//! corrected) as a Server-Sent Event, from the same recorder the summary
//! is made of; when the run ends it is sent links to the run's reports,
//! which the dashboard then serves from the run's output directory (those
//! files only). The run keeps serving for `--dashboard-linger` after it
//! ends, so a person can follow the links.
//!
//! Routes: `GET /` (the page), `GET /stream` (the events), `GET
//! /files/{name}` (a linked report).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::watch;

use crate::record::Recorder;
use crate::summary::SeriesPoint;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How often the page is sent the newest second.
const TICK: Duration = Duration::from_secs(1);

/// A report the page links at the end: its label and its file in the
/// run's output directory.
#[derive(Debug, Clone)]
pub struct Link {
    pub label: String,
    pub file: String,
}

struct Shared {
    recorder: Arc<Recorder>,
    headline: String,
    out: PathBuf,
    /// The run's reports, once it ended.
    done: watch::Sender<Option<Vec<Link>>>,
}

/// The dashboard of one run; serving stops when it is dropped.
pub struct Dashboard {
    shared: Arc<Shared>,
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Dashboard {
    /// Serves the dashboard on `addr` for the run `recorder` records.
    pub async fn start(
        addr: SocketAddr,
        recorder: Arc<Recorder>,
        headline: &str,
        out: PathBuf,
    ) -> anyhow::Result<Dashboard> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--dashboard {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            recorder,
            headline: headline.to_owned(),
            out,
            done: watch::channel(None).0,
        });
        let serving = Arc::clone(&shared);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(route(&shared, req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Dashboard {
            shared,
            addr,
            server,
        })
    }

    /// The run ended: the page links `links` and the event stream ends.
    pub fn finish(&self, links: Vec<Link>) {
        self.shared.done.send_replace(Some(links));
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn route(shared: &Arc<Shared>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    if req.method() != hyper::Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only");
    }
    match req.uri().path() {
        "/" => file_response(
            "text/html; charset=utf-8",
            Bytes::from_static(include_bytes!("dashboard.html")),
        ),
        "/stream" => stream(Arc::clone(shared)),
        path => match path.strip_prefix("/files/") {
            Some(name) => linked_file(shared, name),
            None => plain(StatusCode::NOT_FOUND, "no such page"),
        },
    }
}

/// A file the page links, and only such a file (no other path of the
/// machine is reachable).
fn linked_file(shared: &Shared, name: &str) -> Response<Body> {
    let linked = shared
        .done
        .borrow()
        .as_ref()
        .is_some_and(|links| links.iter().any(|l| l.file == name));
    if !linked {
        return plain(StatusCode::NOT_FOUND, "not a report of this run");
    }
    match std::fs::read(shared.out.join(name)) {
        Ok(bytes) => {
            let kind = match name.rsplit('.').next() {
                Some("html") => "text/html; charset=utf-8",
                Some("json") => "application/json",
                Some("svg") => "image/svg+xml",
                _ => "text/plain; charset=utf-8",
            };
            file_response(kind, Bytes::from(bytes))
        }
        Err(e) => plain(StatusCode::NOT_FOUND, &format!("{name}: {e}")),
    }
}

fn file_response(kind: &'static str, body: Bytes) -> Response<Body> {
    Response::builder()
        .header(CONTENT_TYPE, kind)
        .header(CACHE_CONTROL, "no-cache")
        .body(Full::new(body).boxed_unsync())
        .expect("static headers are valid")
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(text.to_owned())).boxed_unsync())
        .expect("static headers are valid")
}

/// The events: every second already recorded (so a page opened late, or
/// reloaded, draws the whole run), then each new one, then `done`.
fn stream(shared: Arc<Shared>) -> Response<Body> {
    struct At {
        shared: Arc<Shared>,
        sent: usize,
        finished: bool,
        done: watch::Receiver<Option<Vec<Link>>>,
    }
    let done = shared.done.subscribe();
    let start = At {
        shared,
        sent: 0,
        finished: false,
        done,
    };
    let events = futures_util::stream::unfold(start, |mut at| async move {
        if at.finished {
            return None;
        }
        loop {
            let ended = at.done.borrow().clone();
            let points = series(&at.shared);
            if at.sent < points.len() {
                let text: String = points[at.sent..].iter().map(second).collect();
                at.sent = points.len();
                return Some((Ok(Frame::data(Bytes::from(text))), at));
            }
            if let Some(links) = ended {
                at.finished = true;
                let links: Vec<_> = links
                    .iter()
                    .map(|l| json!({"label": l.label, "href": format!("/files/{}", l.file)}))
                    .collect();
                let text = format!("event: done\ndata: {}\n\n", json!({ "links": links }));
                return Some((Ok(Frame::data(Bytes::from(text))), at));
            }
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                _ = at.done.changed() => {}
            }
        }
    });
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .body(BodyExt::boxed_unsync(StreamBody::new(events)))
        .expect("static headers are valid")
}

/// The headline transaction's one-second intervals so far.
fn series(shared: &Shared) -> Vec<SeriesPoint> {
    let (_, mut series) = shared.recorder.snapshot();
    series.remove(&shared.headline).unwrap_or_default()
}

/// One interval as an SSE event: latencies in ms.
fn second(p: &SeriesPoint) -> String {
    let ms = |us: u64| (us as f64 / 100.0).round() / 10.0;
    let data = json!({
        "t": p.t,
        "tps": p.tps,
        "count": p.count,
        "errors": p.errors,
        "raw": p.raw.map(ms),
        "corrected": p.corrected.map(ms),
    });
    format!("event: second\ndata: {data}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_is_one_event_in_ms() {
        let p = SeriesPoint {
            t: 2.0,
            count: 10,
            errors: 1,
            tps: 9.0,
            raw: [1500, 2500, 30_000],
            corrected: [1500, 4000, 45_000],
        };
        let text = second(&p);
        assert!(text.starts_with("event: second\ndata: {"), "{text}");
        assert!(text.ends_with("\n\n"));
        let data: serde_json::Value =
            serde_json::from_str(text.trim().strip_prefix("event: second\ndata: ").unwrap())
                .unwrap();
        assert_eq!(data["raw"], json!([1.5, 2.5, 30.0]));
        assert_eq!(data["corrected"][2], 45.0);
        assert_eq!(
            (data["tps"].as_f64(), data["errors"].as_u64()),
            (Some(9.0), Some(1))
        );
    }
}
