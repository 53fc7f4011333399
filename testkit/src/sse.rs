//! Server-Sent Events read from a streaming response.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::server::TestServer;

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    pub id: Option<String>,
    /// `message` unless the event names itself.
    pub event: String,
    /// The `data:` line as JSON; `Null` without one.
    pub data: Value,
}

impl Sse {
    /// Parses one event: its lines, without the blank line that ends it.
    pub fn parse(raw: &str) -> Sse {
        let mut ev = Sse {
            id: None,
            event: "message".into(),
            data: Value::Null,
        };
        for line in raw.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                ev.id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("event: ") {
                ev.event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                ev.data = serde_json::from_str(v)
                    .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {v}"));
            }
        }
        ev
    }
}

/// Reads events from a streaming response.
pub struct SseReader {
    response: reqwest::Response,
    buf: Vec<u8>,
}

impl SseReader {
    /// Reads `response`, asserting it is a 200 event stream.
    pub fn new(response: reqwest::Response) -> SseReader {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseReader {
            response,
            buf: Vec::new(),
        }
    }

    /// The queue position stream of `token`, resumed after `last_event_id`.
    pub async fn open(server: &TestServer, token: &str, last_event_id: Option<&str>) -> SseReader {
        let mut req = server
            .client
            .get(server.url(&format!("/api/v1/queue/stream?token={token}")));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        SseReader::new(req.send().await.unwrap())
    }

    /// The next event, `None` when the stream ended; fails after `deadline`.
    pub async fn next(&mut self, deadline: Duration) -> Option<Sse> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 2).collect();
                return Some(Sse::parse(std::str::from_utf8(&raw).unwrap()));
            }
            let chunk = tokio::time::timeout(deadline, self.response.chunk())
                .await
                .expect("no SSE event before the deadline")
                .unwrap()?;
            self.buf.extend_from_slice(&chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Sse;
    use serde_json::json;

    #[test]
    fn an_event_with_every_field() {
        let ev = Sse::parse("id: 7\nevent: position\ndata: {\"position\":3}\n");
        assert_eq!(ev.id.as_deref(), Some("7"));
        assert_eq!(ev.event, "position");
        assert_eq!(ev.data, json!({"position": 3}));
    }

    #[test]
    fn an_unnamed_event_is_a_message() {
        let ev = Sse::parse(": comment\ndata: 1\n");
        assert_eq!(
            (ev.id, ev.event.as_str(), ev.data),
            (None, "message", json!(1))
        );
    }
}
