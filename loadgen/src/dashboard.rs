//! `loadgen run|scale|job --dashboard ADDR`: a page that follows the load
//! while it goes.
//!
//! A command's load runs are its stages (one for `run`; each step of a
//! scaling run; the job's load runs and its scaling run's steps). Every
//! second the page is sent the current stage's headline transaction's last
//! one-second interval (successes per second, errors, P50/P95/P99 raw and
//! corrected) as a Server-Sent Event, from the same recorder the summary
//! is made of; a new stage is announced with its label (for a scaling
//! step: its hosts and rate), and what the command is doing between load
//! runs (verify, the scaling run's progress) as a status line. When the
//! command ends the page is sent links to its reports, which the dashboard
//! then serves from the output directory (those files only). The command
//! keeps serving for `--dashboard-linger` after it ends, so a person can
//! follow the links.
//!
//! The load runs of a command find its dashboard in a task-local
//! ([`within`], [`current`]): the scaling run's steps and the job's runs
//! call `run::run` as they always did.
//!
//! Routes: `GET /` (the page), `GET /stream` (the events), `GET
//! /files/{name}` (a linked report).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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

/// A report the page links at the end: its label and its file, relative
/// to the command's output directory.
#[derive(Debug, Clone)]
pub struct Link {
    pub label: String,
    pub file: String,
}

/// One load run of the command.
struct Stage {
    label: String,
    recorder: Arc<Recorder>,
    headline: String,
}

struct Shared {
    out: PathBuf,
    // std Mutexes: held for a copy, never across an await.
    stages: Mutex<Vec<Stage>>,
    status: Mutex<String>,
    /// Bumped on a new stage or status, so streams wake at once.
    changed: watch::Sender<u64>,
    /// The command's reports, once it ended.
    done: watch::Sender<Option<Vec<Link>>>,
}

/// What the command and its load runs tell the page. Cloning is cheap.
#[derive(Clone)]
pub struct Live {
    shared: Arc<Shared>,
}

tokio::task_local! {
    static CURRENT: Live;
}

/// Runs `f` with `live` (if any) as the dashboard its load runs report to.
pub async fn within<F: Future>(live: Option<Live>, f: F) -> F::Output {
    match live {
        Some(live) => CURRENT.scope(live, f).await,
        None => f.await,
    }
}

/// The dashboard of the command this task runs for, if it has one.
pub fn current() -> Option<Live> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Tells the current dashboard (if any) what the command is doing.
pub fn say(text: &str) {
    if let Some(live) = current() {
        live.status(text);
    }
}

impl Live {
    /// A load run starts: the page follows `recorder`'s `headline` from now.
    pub fn stage(&self, label: String, recorder: Arc<Recorder>, headline: &str) {
        self.shared
            .stages
            .lock()
            .expect("dashboard lock")
            .push(Stage {
                label,
                recorder,
                headline: headline.to_owned(),
            });
        self.shared.changed.send_modify(|n| *n += 1);
    }

    /// What the command does now (shown above the numbers).
    pub fn status(&self, text: &str) {
        *self.shared.status.lock().expect("dashboard lock") = text.to_owned();
        self.shared.changed.send_modify(|n| *n += 1);
    }

    /// The command ended: the page links `links` and the event stream ends.
    pub fn finish(&self, links: Vec<Link>) {
        self.shared.done.send_replace(Some(links));
    }
}

/// The dashboard of one command; serving stops when it is dropped.
pub struct Dashboard {
    pub live: Live,
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Dashboard {
    /// Serves the dashboard on `addr`; linked reports are read from `out`.
    /// Says where on standard error (the line the browser suite reads).
    pub async fn start(addr: SocketAddr, out: PathBuf) -> anyhow::Result<Dashboard> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--dashboard {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            out,
            stages: Mutex::new(Vec::new()),
            status: Mutex::new(String::new()),
            changed: watch::channel(0).0,
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
        eprintln!("loadgen: live dashboard on http://{addr}/");
        Ok(Dashboard {
            live: Live { shared },
            addr,
            server,
        })
    }

    /// The command ended: links `links`, then keeps serving `linger`
    /// seconds so they can be followed.
    pub async fn finish(self, links: Vec<Link>, linger: f64) {
        self.live.finish(links);
        tokio::time::sleep(Duration::from_secs_f64(linger.max(0.0))).await;
    }

    /// The end of `loadgen run`: the run's own report written into `out`
    /// and linked first, then goose's and the summary. A report that
    /// cannot be drawn is said and left out: the run itself completed.
    pub async fn finish_run(self, summary: &crate::summary::RunSummary, out: &Path, linger: f64) {
        if let Err(e) = crate::report::write_run(summary, out) {
            eprintln!("loadgen: the run's report was not written: {e:#}");
        }
        let links = existing(
            out,
            &[
                ("HTML report", "report.html"),
                ("HTML report (goose)", "goose-report.html"),
                ("summary.json", "summary.json"),
            ],
        );
        self.finish(links, linger).await;
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The links among `candidates` (label, file under `out`) whose files
/// exist.
pub fn existing(out: &std::path::Path, candidates: &[(&str, &str)]) -> Vec<Link> {
    candidates
        .iter()
        .filter(|(_, file)| out.join(file).is_file())
        .map(|(label, file)| Link {
            label: (*label).to_owned(),
            file: (*file).to_owned(),
        })
        .collect()
}

/// How the page names a load run among the command's: its id, what it
/// offers and to how many hosts (a scaling step's fleet size).
pub fn stage_label(run_id: &str, args: &crate::run::RunArgs, hosts: usize) -> String {
    let load = match args.rate {
        Some(rate) => format!("{rate:.0}/s offered"),
        None => format!("closed model, {} users", args.users()),
    };
    format!(
        "{run_id}: {} at {load}, {:.0} s, {hosts} host(s)",
        args.scenario.name(),
        args.duration
    )
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

/// The events: every stage and second already recorded (so a page opened
/// late, or reloaded, draws the whole command), then each new one, the
/// status when it changes, then `done`.
fn stream(shared: Arc<Shared>) -> Response<Body> {
    struct At {
        shared: Arc<Shared>,
        cursor: Cursor,
        finished: bool,
        changed: watch::Receiver<u64>,
        done: watch::Receiver<Option<Vec<Link>>>,
    }
    let start = At {
        cursor: Cursor::default(),
        finished: false,
        changed: shared.changed.subscribe(),
        done: shared.done.subscribe(),
        shared,
    };
    let events = futures_util::stream::unfold(start, |mut at| async move {
        if at.finished {
            return None;
        }
        loop {
            let ended = at.done.borrow().clone();
            let text = at.cursor.news(&at.shared);
            if !text.is_empty() {
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
                _ = at.changed.changed() => {}
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

/// How far one stream got: the stage it follows, whether that stage was
/// announced and how many of its seconds were sent, the status last sent.
#[derive(Default)]
struct Cursor {
    stage: usize,
    announced: bool,
    sent: usize,
    status: String,
}

impl Cursor {
    /// What was not sent yet: a new status, each stage's announcement and
    /// seconds; a stage is left once a later one exists (its run ended,
    /// its series is whole).
    fn news(&mut self, shared: &Shared) -> String {
        let mut text = String::new();
        let now = shared.status.lock().expect("dashboard lock").clone();
        if now != self.status {
            text.push_str(&format!(
                "event: status\ndata: {}\n\n",
                json!({ "text": now })
            ));
            self.status = now;
        }
        let stages = shared.stages.lock().expect("dashboard lock");
        while let Some(s) = stages.get(self.stage) {
            if !self.announced {
                text.push_str(&format!(
                    "event: stage\ndata: {}\n\n",
                    json!({ "stage": self.stage, "label": s.label })
                ));
                self.announced = true;
            }
            let (_, mut series) = s.recorder.snapshot();
            let points = series.remove(&s.headline).unwrap_or_default();
            for p in points.iter().skip(self.sent) {
                text.push_str(&second(self.stage, p));
            }
            self.sent = self.sent.max(points.len());
            if self.stage + 1 >= stages.len() {
                break;
            }
            self.stage += 1;
            self.announced = false;
            self.sent = 0;
        }
        text
    }
}

/// One interval of a stage as an SSE event: latencies in ms.
fn second(stage: usize, p: &SeriesPoint) -> String {
    let ms = |us: u64| (us as f64 / 100.0).round() / 10.0;
    let data = json!({
        "stage": stage,
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
        let text = second(1, &p);
        assert!(text.starts_with("event: second\ndata: {"), "{text}");
        assert!(text.ends_with("\n\n"));
        let data: serde_json::Value =
            serde_json::from_str(text.trim().strip_prefix("event: second\ndata: ").unwrap())
                .unwrap();
        assert_eq!(data["raw"], json!([1.5, 2.5, 30.0]));
        assert_eq!(data["corrected"][2], 45.0);
        assert_eq!(data["stage"], 1);
        assert_eq!(
            (data["tps"].as_f64(), data["errors"].as_u64()),
            (Some(9.0), Some(1))
        );
    }

    #[tokio::test]
    async fn a_stream_announces_each_stage_once_in_order_and_each_new_status() {
        let board = Dashboard::start("127.0.0.1:0".parse().unwrap(), std::env::temp_dir())
            .await
            .unwrap();
        let live = board.live.clone();
        live.status("verify");
        live.stage("first".into(), Arc::new(Recorder::new()), "flash_sale");
        live.stage("second".into(), Arc::new(Recorder::new()), "flash_sale");
        let mut cursor = Cursor::default();
        let text = cursor.news(&live.shared);
        let first = text.find(r#""label":"first""#).expect(&text);
        let second = text.find(r#""label":"second""#).expect(&text);
        assert!(
            text.starts_with("event: status\n") && first < second,
            "{text}"
        );
        assert_eq!(cursor.news(&live.shared), "", "nothing new is sent again");
        live.status("scaling run: N=2");
        let text = cursor.news(&live.shared);
        assert!(
            text.contains("scaling run: N=2") && !text.contains("event: stage"),
            "{text}"
        );
    }
}
