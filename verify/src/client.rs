//! The contract, as a client: every call is recorded in the history, and
//! its outcome classified as ok (2xx), fail (a contract error: definitely
//! not applied) or info (timeout, reset, 5xx: unknown).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::history::{History, OpKind};

/// What came back from one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The server answered with a status and a body (JSON when it parsed).
    Http { status: u16, body: Value },
    /// No answer: connection refused or reset, timeout.
    Transport(String),
}

impl Reply {
    /// How the history records it.
    pub fn kind(&self) -> OpKind {
        match self {
            Reply::Http { status, .. } if (200..300).contains(status) => OpKind::Ok,
            Reply::Http { status, .. } if *status >= 500 => OpKind::Info,
            Reply::Http { .. } => OpKind::Fail,
            Reply::Transport(_) => OpKind::Info,
        }
    }

    pub fn is_success(&self) -> bool {
        self.kind() == OpKind::Ok
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Reply::Http { status, .. } => Some(*status),
            Reply::Transport(_) => None,
        }
    }

    pub fn body(&self) -> Option<&Value> {
        match self {
            Reply::Http { body, .. } => Some(body),
            Reply::Transport(_) => None,
        }
    }

    /// The contract's error code (`error` field), if any.
    pub fn code(&self) -> Option<&str> {
        self.body().and_then(|b| b["error"].as_str())
    }

    pub fn str_field(&self, field: &str) -> Option<&str> {
        self.body().and_then(|b| b[field].as_str())
    }

    /// A short rendering for witnesses: `409 SOLD_OUT` or `transport: ...`.
    pub fn short(&self) -> String {
        match self {
            Reply::Http { status, body } => match body["error"].as_str() {
                Some(code) => format!("{status} {code}"),
                None => format!("{status}"),
            },
            Reply::Transport(e) => format!("no answer ({e})"),
        }
    }

    /// How the history records the answer.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Reply::Http { status, body } => json!({"status": status, "body": body}),
            Reply::Transport(e) => json!({"error": e}),
        }
    }
}

/// A reply with the times its invocation and completion were recorded.
#[derive(Debug, Clone)]
pub struct Call {
    pub reply: Reply,
    pub invoked: u64,
    pub completed: u64,
}

/// One Server-Sent Event, with the time it arrived.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
    pub at: u64,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Arc<str>,
    /// Every instance; a client process always talks to the same one.
    spread: Arc<[Arc<str>]>,
    admin: Arc<str>,
    /// The request timeout, also the longest wait for an SSE stream's
    /// response head (the stream itself then runs without one).
    timeout: Duration,
    pub history: History,
}

impl Client {
    pub fn new(bases: &[String], admin_token: &str, timeout: Duration, history: History) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .timeout(timeout)
            .build()
            .expect("a client with no TLS always builds");
        let spread: Vec<Arc<str>> = bases
            .iter()
            .map(|b| b.trim_end_matches('/').into())
            .collect();
        Client {
            http,
            base: spread.first().cloned().unwrap_or_else(|| "".into()),
            spread: spread.into(),
            admin: admin_token.into(),
            timeout,
            history,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The URL `process` uses: buyers are spread over the instances by a
    /// stable hash of their name, and each keeps to its instance.
    fn url_for(&self, process: &str, path: &str) -> String {
        let hash = process.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let base = &self.spread[(hash % self.spread.len() as u64) as usize];
        format!("{base}{path}")
    }

    async fn send(
        &self,
        process: &str,
        f: &'static str,
        args: Value,
        req: reqwest::RequestBuilder,
    ) -> Call {
        let invoked = self.history.invoke(process, f, args);
        let reply = match req.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(bytes) => Reply::Http {
                        status,
                        body: serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&bytes).into_owned())
                        }),
                    },
                    Err(e) => Reply::Transport(describe(&e)),
                }
            }
            Err(e) => Reply::Transport(describe(&e)),
        };
        let completed = self
            .history
            .complete(reply.kind(), process, f, reply.to_value());
        Call {
            reply,
            invoked,
            completed,
        }
    }

    pub async fn create_event(&self, body: Value) -> Call {
        self.admin_post("/api/v1/admin/events", "create-event", body)
            .await
    }

    /// A POST to the admin API, recorded as the `admin` process's `op`.
    pub async fn admin_post(&self, path: &str, op: &'static str, body: Value) -> Call {
        let req = self
            .http
            .post(self.url(path))
            .bearer_auth(&*self.admin)
            .json(&body);
        self.send("admin", op, body, req).await
    }

    pub async fn event(&self, process: &str, event_id: &str) -> Call {
        let req = self
            .http
            .get(self.url(&format!("/api/v1/events/{event_id}")));
        self.send(process, "read-event", json!({"eventId": event_id}), req)
            .await
    }

    pub async fn enter(&self, process: &str, event_id: &str, user_id: &str) -> Call {
        let body = json!({"eventId": event_id, "userId": user_id});
        let req = self
            .http
            .post(self.url_for(process, "/api/v1/queue/enter"))
            .json(&body);
        self.send(process, "enter", body, req).await
    }

    pub async fn status(&self, process: &str, token: &str) -> Call {
        let req = self
            .http
            .get(self.url_for(process, "/api/v1/queue/status"))
            .header("X-Queue-Token", token);
        self.send(process, "status", json!({}), req).await
    }

    pub async fn reserve(
        &self,
        process: &str,
        token: Option<&str>,
        event_id: &str,
        quantity: u32,
    ) -> Call {
        let body = json!({"eventId": event_id, "quantity": quantity});
        let mut req = self
            .http
            .post(self.url_for(process, "/api/v1/tickets/reserve"))
            .json(&body);
        if let Some(token) = token {
            req = req.header("X-Queue-Token", token);
        }
        self.send(process, "reserve", body, req).await
    }

    pub async fn ticket(&self, process: &str, reservation_id: &str) -> Call {
        let req = self
            .http
            .get(self.url_for(process, &format!("/api/v1/tickets/{reservation_id}")));
        self.send(
            process,
            "read-ticket",
            json!({"reservationId": reservation_id}),
            req,
        )
        .await
    }

    pub async fn create_concert(&self, body: Value) -> Call {
        self.admin_post("/api/v1/admin/concerts", "create-concert", body)
            .await
    }

    pub async fn seats(&self, process: &str, concert_id: &str, schedule_id: &str) -> Call {
        let path = format!("/api/v1/concerts/{concert_id}/schedules/{schedule_id}/seats");
        let req = self.http.get(self.url_for(process, &path));
        self.send(
            process,
            "read-seats",
            json!({"concertId": concert_id, "scheduleId": schedule_id}),
            req,
        )
        .await
    }

    pub async fn hold(
        &self,
        process: &str,
        token: &str,
        concert_id: &str,
        schedule_id: &str,
        seat: u32,
    ) -> Call {
        let body = json!({"scheduleId": schedule_id, "seatNumber": seat});
        let req = self
            .http
            .post(self.url_for(
                process,
                &format!("/api/v1/concerts/{concert_id}/reservations"),
            ))
            .header("X-Queue-Token", token)
            .json(&body);
        self.send(process, "hold", body, req).await
    }

    pub async fn pay(
        &self,
        process: &str,
        token: &str,
        reservation_id: &str,
        idempotency_key: Option<&str>,
    ) -> Call {
        let body = json!({"reservationId": reservation_id});
        let mut req = self
            .http
            .post(self.url_for(process, "/api/v1/payments"))
            .header("X-Queue-Token", token)
            .json(&body);
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        let args = json!({"reservationId": reservation_id, "idempotencyKey": idempotency_key});
        self.send(process, "pay", args, req).await
    }

    pub async fn charge(&self, process: &str, user_id: &str, amount: u64) -> Call {
        let body = json!({"userId": user_id, "amount": amount});
        let req = self
            .http
            .post(self.url_for(process, "/api/v1/points/charge"))
            .json(&body);
        self.send(process, "charge", body, req).await
    }

    pub async fn points(&self, process: &str, user_id: &str) -> Call {
        let req = self
            .http
            .get(self.url_for(process, "/api/v1/points"))
            .query(&[("userId", user_id)]);
        self.send(process, "read-points", json!({"userId": user_id}), req)
            .await
    }

    /// Opens the SSE stream of `token`. The stream itself is not subject to
    /// the request timeout; `SseStream::next` takes its own.
    pub async fn stream(
        &self,
        process: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> Result<SseStream, Reply> {
        let mut req = self
            .http
            .get(self.url_for(process, "/api/v1/queue/stream"))
            .query(&[("token", token)])
            .timeout(Duration::from_secs(24 * 3600));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        self.history
            .invoke(process, "stream", json!({"lastEventId": last_event_id}));
        // A frozen instance accepts the connection and never answers: the
        // head must come within the request timeout, or the stream's
        // opener would wait the stream's own day-long limit.
        let sent = match tokio::time::timeout(self.timeout, req.send()).await {
            Ok(sent) => sent.map_err(|e| describe(&e)),
            Err(_) => Err("timeout".to_owned()),
        };
        match sent {
            Ok(response) if response.status().is_success() => {
                self.history
                    .complete(OpKind::Ok, process, "stream", json!({"status": 200}));
                Ok(SseStream {
                    response,
                    buf: String::new(),
                    process: process.to_owned(),
                    history: self.history.clone(),
                })
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.json::<Value>().await.unwrap_or(Value::Null);
                let reply = Reply::Http { status, body };
                self.history
                    .complete(reply.kind(), process, "stream", reply.to_value());
                Err(reply)
            }
            Err(why) => {
                let reply = Reply::Transport(why);
                self.history
                    .complete(OpKind::Info, process, "stream", reply.to_value());
                Err(reply)
            }
        }
    }
}

/// An open `text/event-stream` response.
pub struct SseStream {
    response: reqwest::Response,
    buf: String,
    process: String,
    history: History,
}

impl SseStream {
    /// The next event; `Ok(None)` when the server closed the stream.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<SseEvent>, String> {
        loop {
            if let Some(event) = self.take_event() {
                return Ok(Some(event));
            }
            let chunk = tokio::time::timeout(timeout, self.response.chunk())
                .await
                .map_err(|_| format!("no SSE event within {timeout:?}"))?
                .map_err(|e| describe(&e))?;
            match chunk {
                Some(bytes) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                None => return Ok(None),
            }
        }
    }

    /// Parses one complete event out of the buffer (per the SSE spec:
    /// `field: value` lines, optional single space, `:` comments, a blank
    /// line ends an event).
    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let normalized = self.buf.replace("\r\n", "\n");
            self.buf = normalized;
            let end = self.buf.find("\n\n")?;
            let raw: String = self.buf.drain(..end + 2).collect();
            let mut id = None;
            let mut event = "message".to_owned();
            let mut data = Vec::new();
            for line in raw.lines() {
                if line.starts_with(':') || line.is_empty() {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => id = Some(value.to_owned()),
                    "event" => event = value.to_owned(),
                    "data" => data.push(value.to_owned()),
                    _ => {}
                }
            }
            if data.is_empty() {
                continue; // a retry: or comment-only block
            }
            let data = data.join("\n");
            let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
            let at = self.history.complete(
                OpKind::Ok,
                &self.process,
                "sse",
                json!({"event": event, "id": id, "data": data}),
            );
            return Some(SseEvent {
                id,
                event,
                data,
                at,
            });
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection refused".into()
    } else {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg = format!("{msg}: {s}");
            source = s.source();
        }
        msg
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
