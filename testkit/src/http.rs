//! Reading the contract's answers, and waiting on a condition.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

/// A response's status and body: JSON, or the text as a JSON string.
pub async fn split(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// Sends `req` and [`split`]s the answer.
pub async fn call(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    split(req.send().await.unwrap()).await
}

/// Asserts the contract's error shape and code.
pub fn assert_error(got: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "body: {}", got.1);
    assert_eq!(got.1["error"], code, "body: {}", got.1);
    assert!(
        got.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {}",
        got.1
    );
}

/// Polls `check` until it returns `Some`, failing after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
