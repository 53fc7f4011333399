//! `GET /api/v1/queue/stream`: the live position as Server-Sent Events.
//!
//! Every event's `id:` is the event's admission cursor (how many entries were
//! admitted when it was sent). The cursor only grows, so ids grow and the
//! position derived from them (`seq - cursor + 1`) only shrinks. A client
//! reconnecting with `Last-Event-ID` is never shown a position above the one
//! that id implies: the token is the place, not the connection.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response};
use serde_json::json;
use tokio::time::Instant;

use crate::error::Result;
use crate::http::{App, Body, SseSlot};
use crate::model::{QueueStatus, QueueView};
use crate::token::Claims;

/// What the client is told to wait before reconnecting, in milliseconds.
const RETRY_MS: u64 = 1000;

pub async fn stream(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
    let claims = app.queue_claims(&req, true)?;
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_last_event_id);
    // One token's entry is its (event, user): the per-token stream cap.
    let slot = app.sse_slot(&format!("{}\n{}", claims.event_id, claims.user_id))?;
    let watch = app.backend.watch_queue(&claims).await?;

    let state = StreamState {
        backend: app.backend.clone(),
        writer: SseWriter::new(claims.seq, last_event_id, app.unsafe_sse),
        claims,
        cursor: watch.cursor,
        stopping: app.stopping.clone(),
        heartbeat: app.sse_heartbeat,
        next_heartbeat: Instant::now() + app.sse_heartbeat,
        pending: Some(watch.current),
        _slot: slot,
    };
    let events = stream::unfold(state, |mut st| async move {
        let frame = st.next_frame().await?;
        Some((Ok(Frame::data(frame)), st))
    });
    Ok(Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(BodyExt::boxed_unsync(StreamBody::new(events)))
        .expect("static headers are valid"))
}

struct StreamState {
    /// Frees this stream's place under the SSE caps when the stream drops.
    _slot: SseSlot,
    backend: crate::backend::Backend,
    claims: Claims,
    cursor: tokio::sync::watch::Receiver<u64>,
    stopping: tokio::sync::watch::Receiver<bool>,
    heartbeat: Duration,
    next_heartbeat: Instant,
    pending: Option<QueueView>,
    writer: SseWriter,
}

/// A `Last-Event-ID` header's value: an id this server sent (a whole
/// number), or `None` for anything else, which then counts as absent.
pub fn parse_last_event_id(value: &str) -> Option<u64> {
    value.trim().parse::<u64>().ok()
}

/// Turns queue views into SSE frames for one token: no position above
/// what an earlier frame (or `Last-Event-ID`) implied, ids that never go
/// down, and an end after ACTIVE, DONE or EXPIRED.
pub struct SseWriter {
    /// The token's place in its event's line.
    seq: u64,
    /// The lowest position this client has been shown, across reconnects.
    shown: Option<u64>,
    /// Whether the last position event said admission is paused.
    paused_shown: Option<bool>,
    finished: bool,
    last_event_id: Option<u64>,
    /// The highest id sent (or given as `Last-Event-ID`): ids never go
    /// down, even if a backend read lags behind an earlier one.
    last_id: u64,
    unsafe_sse: bool,
    sent: u64,
}

impl StreamState {
    /// The next SSE frame, or `None` when the stream is over.
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.writer.finished {
            return None;
        }
        loop {
            let (view, heartbeat) = match self.pending.take() {
                Some(view) => (view, true),
                None => {
                    // Decide what woke us first, then await outside the select:
                    // the stop branch's output borrows the watch and is not Send.
                    let heartbeat = tokio::select! {
                        changed = self.cursor.changed() => {
                            changed.ok()?;
                            false
                        }
                        () = tokio::time::sleep_until(self.next_heartbeat) => true,
                        _ = self.stopping.wait_for(|stop| *stop) => return None,
                    };
                    (
                        self.backend.queue_status(&self.claims).await.ok()?.view,
                        heartbeat,
                    )
                }
            };
            if let Some(frame) = self.writer.render(view, heartbeat) {
                self.next_heartbeat = Instant::now() + self.heartbeat;
                return Some(frame);
            }
        }
    }
}

impl SseWriter {
    pub fn new(seq: u64, last_event_id: Option<u64>, unsafe_sse: bool) -> Self {
        SseWriter {
            seq,
            shown: None,
            paused_shown: None,
            finished: false,
            last_event_id,
            last_id: last_event_id.unwrap_or(0),
            unsafe_sse,
            sent: 0,
        }
    }

    /// True once a frame that ends the stream was written.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Formats `view` as an SSE event, or `None` when it would tell the
    /// client nothing new (an unchanged position outside a heartbeat).
    pub fn render(&mut self, view: QueueView, heartbeat: bool) -> Option<Bytes> {
        // Nothing follows the frame that ended the stream.
        if self.finished {
            return None;
        }
        let id = view.cursor.max(self.last_id);
        let retry = if self.shown.is_none() && self.last_event_id.is_none() {
            format!("retry: {RETRY_MS}\n")
        } else {
            String::new()
        };
        let (event, data) = match view.status {
            QueueStatus::Waiting => {
                // Never show more than an earlier event (or Last-Event-ID) implied.
                let implied_by_id = self
                    .last_event_id
                    .map(|last| self.seq.saturating_add(1).saturating_sub(last).max(1));
                let position = [Some(view.position), self.shown, implied_by_id]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(view.position);
                if !heartbeat
                    && self.shown == Some(position)
                    && self.paused_shown == Some(view.paused)
                {
                    return None;
                }
                self.shown = Some(position);
                self.paused_shown = Some(view.paused);
                // Negative control: every other event shows the client two
                // places further back than it is.
                let position = if self.unsafe_sse && self.sent % 2 == 1 {
                    position + 2
                } else {
                    position
                };
                self.sent += 1;
                (
                    "position",
                    json!({
                        "position": position,
                        "estimatedWaitSeconds": view.estimated_wait_seconds,
                        "paused": view.paused,
                    }),
                )
            }
            status => {
                self.finished = true;
                let event = if status == QueueStatus::Active {
                    "active"
                } else {
                    "status"
                };
                (event, json!({ "status": status }))
            }
        };
        self.last_id = id;
        Some(Bytes::from(format!(
            "{retry}id: {id}\nevent: {event}\ndata: {data}\n\n"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(position: u64, cursor: u64) -> QueueView {
        QueueView {
            status: QueueStatus::Waiting,
            position,
            estimated_wait_seconds: 0,
            paused: false,
            cursor,
        }
    }

    /// A pause (and its end) is news although the position did not move.
    #[test]
    fn a_pause_is_sent_at_once_and_said_in_the_data() {
        let mut writer = SseWriter::new(20, None, false);
        assert!(writer.render(waiting(11, 10), true).is_some());
        assert!(
            writer.render(waiting(11, 10), false).is_none(),
            "nothing new"
        );
        let paused = QueueView {
            paused: true,
            ..waiting(11, 10)
        };
        let frame = writer.render(paused, false).expect("the pause is news");
        assert!(std::str::from_utf8(&frame)
            .unwrap()
            .contains(r#""paused":true"#));
        assert!(writer.render(paused, false).is_none());
        let resumed = writer
            .render(waiting(11, 10), false)
            .expect("so is its end");
        assert!(std::str::from_utf8(&resumed)
            .unwrap()
            .contains(r#""paused":false"#));
    }

    /// Found by the sse_writer fuzz target: a view whose cursor is below an
    /// earlier one (a lagging read) must not send a lower id.
    #[test]
    fn ids_never_go_down_even_when_a_read_lags() {
        let mut writer = SseWriter::new(20, None, false);
        let first = writer.render(waiting(11, 10), true).unwrap();
        assert!(std::str::from_utf8(&first).unwrap().contains("id: 10\n"));
        let lagging = writer.render(waiting(11, 3), true).unwrap();
        assert!(
            std::str::from_utf8(&lagging).unwrap().contains("id: 10\n"),
            "{lagging:?}"
        );
        // Found by the fuzzer too: nothing after the frame that ends it.
        let mut writer = SseWriter::new(1, None, false);
        let active = QueueView {
            status: QueueStatus::Active,
            ..waiting(0, 1)
        };
        assert!(writer.render(active, true).is_some());
        assert!(writer.render(waiting(1, 1), true).is_none());
    }
}
