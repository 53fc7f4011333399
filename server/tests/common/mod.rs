//! Contract helpers of the server's own tests (the server in process, the
//! real stack and the generic calls are in `testkit`).
#![allow(dead_code)] // each test binary uses a different subset

use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::{call, TestServer};

/// Runs `scripts/services.sh` with `args` (stop-one, start-one: failure
/// tests) and asserts it worked.
pub fn services(args: &[&str]) {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "services.sh {args:?}");
}

/// Waits until something listens on 127.0.0.1:`port` (a Redis a test
/// started itself), failing after `deadline`.
pub fn wait_for_port(port: u16, deadline: std::time::Duration, what: &str) {
    let until = std::time::Instant::now() + deadline;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < until,
            "{what} never opened its port"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Enters the queue and asserts the user was admitted at once.
pub async fn active_token(server: &TestServer, event: &str, user: &str) -> String {
    let entered = server.enter(event, user).await;
    assert_eq!(entered["status"], "ACTIVE", "{entered}");
    entered["token"].as_str().unwrap().to_owned()
}

// The concert seat map.

pub const PRICE: u64 = 1000;

pub async fn create_concert(s: &TestServer, body: Value) -> (StatusCode, Value) {
    s.admin_post("/api/v1/admin/concerts", body).await
}

/// A concert with schedule `s1` (10 seats at PRICE) and `s2` (default 50).
pub async fn concert(s: &TestServer, id: &str, capacity: u32) {
    let got = create_concert(
        s,
        json!({"concertId": id, "name": "Winter tour", "activeCapacity": capacity,
               "schedules": [
                   {"scheduleId": "s1", "date": "2026-12-24", "seatCount": 10, "price": PRICE},
                   {"scheduleId": "s2", "date": "2026-12-25", "price": 2 * PRICE}]}),
    )
    .await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
}

pub async fn hold(
    s: &TestServer,
    token: Option<&str>,
    concert: &str,
    body: Value,
) -> (StatusCode, Value) {
    let path = format!("/api/v1/concerts/{concert}/reservations");
    s.post_with_token(token, &path, body).await
}

pub async fn hold_seat(
    s: &TestServer,
    token: &str,
    concert: &str,
    seat: u32,
) -> (StatusCode, Value) {
    hold(
        s,
        Some(token),
        concert,
        json!({"scheduleId": "s1", "seatNumber": seat}),
    )
    .await
}

pub async fn pay(
    s: &TestServer,
    token: &str,
    reservation: &Value,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = s
        .client
        .post(s.url("/api/v1/payments"))
        .header("X-Queue-Token", token)
        .json(&json!({"reservationId": reservation}));
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    call(req).await
}

pub async fn charge(s: &TestServer, user: &str, amount: Value) -> (StatusCode, Value) {
    s.post(
        "/api/v1/points/charge",
        json!({"userId": user, "amount": amount}),
    )
    .await
}

pub async fn balance(s: &TestServer, user: &str) -> u64 {
    let (status, v) = s.get(&format!("/api/v1/points?userId={user}")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["userId"], user);
    v["balance"].as_u64().unwrap()
}

pub async fn seat_status(s: &TestServer, concert: &str, seat: u32) -> String {
    let (status, v) = s
        .get(&format!("/api/v1/concerts/{concert}/schedules/s1/seats"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v[seat as usize - 1]["status"].as_str().unwrap().to_owned()
}
