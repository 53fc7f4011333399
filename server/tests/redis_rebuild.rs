//! Redis lost its data (killed and started again empty): the stack refuses
//! requests that need Redis (503, nothing applied) until one instance has
//! rebuilt every event from PostgreSQL and the broker; then the event
//! sells on from PostgreSQL's remaining stock, the buyers' tokens still
//! work (a used one stays used), and nothing is sold twice. The negative
//! control, an instance with `--debug-no-redis-rebuild`, loses the event:
//! `404`.
//!
//! Alone in its binary, on a Redis of its own without persistence (the
//! shared stack's PostgreSQL and broker, fresh namespaces).

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::active_token;
use reqwest::StatusCode;
use serde_json::json;
use testkit::{assert_error, eventually, real_stack, start, Backend, TestServer};

/// The rebuild waits 8 s after Redis started, then for persistence.
const DEADLINE: Duration = Duration::from_secs(60);

/// A Redis that keeps nothing: killed, it comes back empty.
struct EmptyRedis {
    child: Child,
}

impl EmptyRedis {
    fn start(port: u16) -> EmptyRedis {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/services.sh installs it)");
        common::wait_for_port(port, DEADLINE, "redis");
        EmptyRedis { child }
    }
}

impl Drop for EmptyRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn health(s: &TestServer, want: StatusCode, what: &str) {
    eventually(DEADLINE, what, || async {
        (s.get("/actuator/health").await.0 == want).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_redis_is_rebuilt_from_postgres_before_anything_is_sold() {
    let (Some(mut rebuilt), Some(mut control)) = (real_stack(), real_stack()) else {
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let redis = EmptyRedis::start(port);
    rebuilt.redis_url = format!("redis://127.0.0.1:{port}");
    control.redis_url = rebuilt.redis_url.clone();
    let s = start(&Backend::Real(rebuilt), &[]).await;
    let c = start(&Backend::Real(control), &["--debug-no-redis-rebuild"]).await;
    health(&s, StatusCode::OK, "health UP").await;
    health(&c, StatusCode::OK, "the control's health UP").await;
    s.event("e", 5, json!({"activeCapacity": 10, "perUserLimit": 2}))
        .await;
    c.event("e", 5, json!({"activeCapacity": 10})).await;
    let mut tokens = Vec::new();
    for user in ["u1", "u2", "u3", "u4"] {
        tokens.push(active_token(&s, "e", user).await);
    }
    let (status, first) = s.reserve(Some(&tokens[0]), "e", json!(2)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, second) = s.reserve(Some(&tokens[1]), "e", json!(1)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let control_token = active_token(&c, "e", "u1").await;

    drop(redis);
    health(&s, StatusCode::SERVICE_UNAVAILABLE, "health DOWN").await;
    let redis = EmptyRedis::start(port);
    // Redis answers, empty: refused, nothing applied, until rebuilt.
    let (status, refused) = s.reserve(Some(&tokens[2]), "e", json!(2)).await;
    assert_error(&(status, refused), 503, "UNAVAILABLE");
    health(&s, StatusCode::OK, "health UP after the rebuild").await;

    let v = s.event_state("e").await;
    assert_eq!(
        (v["remaining"].as_u64(), v["sold"].as_u64()),
        (Some(2), Some(3)),
        "the stock is PostgreSQL's: {v}"
    );
    // A used token stays used; an unused one still buys; the stock holds.
    let (status, again) = s.reserve(Some(&tokens[0]), "e", json!(1)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "u1 bought already: {again}");
    let (status, third) = s.reserve(Some(&tokens[2]), "e", json!(2)).await;
    assert_eq!(status, StatusCode::OK, "u3's token survived: {third}");
    assert_error(
        &s.reserve(Some(&tokens[3]), "e", json!(1)).await,
        409,
        "SOLD_OUT",
    );
    for r in [&first, &second, &third] {
        let id = r["reservationId"].as_str().unwrap();
        eventually(DEADLINE, "the reservation CONFIRMED", || async {
            let (status, t) = s.get(&format!("/api/v1/tickets/{id}")).await;
            (status == StatusCode::OK && t["status"] == "CONFIRMED").then_some(())
        })
        .await;
    }

    // The control never rebuilds: its event is gone.
    assert_error(
        &c.reserve(Some(&control_token), "e", json!(1)).await,
        404,
        "NOT_FOUND",
    );
    drop(redis);
}
