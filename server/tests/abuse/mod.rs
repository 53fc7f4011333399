//! Helpers of the abuse suites (`abuse_limits.rs`, `abuse_connections.rs`):
//! raw connections, and the observable state a refused request must leave
//! as it was. Each suite uses a part of them.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use testkit::TestServer;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

pub fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// True once the server closed `conn` (read gives EOF or an error).
pub async fn closed_within(conn: &mut TcpStream, deadline: Duration) -> bool {
    let mut buf = [0u8; 256];
    let until = Instant::now() + deadline;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// What a client and an operator can see of one event and one user,
/// through the public and admin API and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub stock: u64,
    pub remaining: u64,
    pub sold: u64,
    pub waiting: u64,
    pub active: u64,
    /// Entries admitted since the event began (admin admission view).
    pub admitted: u64,
    /// Reserve calls that sold (`ticket_reservation_total{result="ok"}`,
    /// server-wide).
    pub reservations: u64,
    /// The user's points balance.
    pub balance: u64,
}

/// Reads [`Snapshot`]s from 127.0.0.3, whose per-IP bucket is not the
/// trial's (127.0.0.1), on a fresh connection each time (no pool), so it
/// holds no connection place between reads.
pub struct Observer {
    client: reqwest::Client,
    base: String,
    admin_token: String,
}

impl Observer {
    pub fn new(s: &TestServer) -> Observer {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 3]))
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        Observer {
            client,
            base: s.base.clone(),
            admin_token: s.admin_token.clone(),
        }
    }

    /// GET `path` as JSON (or text for `/metrics`), retried until 200: a
    /// read may meet the trial's own limit (429, 503) and must wait it out.
    async fn read(&self, path: &str, admin: bool) -> String {
        let url = format!("{}{path}", self.base);
        testkit::eventually(Duration::from_secs(10), path, || async {
            let mut req = self.client.get(&url);
            if admin {
                req = req.bearer_auth(&self.admin_token);
            }
            let r = req.send().await.ok()?;
            if r.status() != StatusCode::OK {
                return None;
            }
            r.text().await.ok()
        })
        .await
    }

    async fn json(&self, path: &str, admin: bool) -> Value {
        serde_json::from_str(&self.read(path, admin).await).unwrap()
    }

    pub async fn snapshot(&self, event: &str, user: &str) -> Snapshot {
        let e = self.json(&format!("/api/v1/events/{event}"), false).await;
        let all = self.json("/api/v1/admin/admission", true).await;
        let admission = all["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["eventId"] == event)
            .unwrap_or_else(|| panic!("{event} not in {all}"))
            .clone();
        let points = self
            .json(&format!("/api/v1/points?userId={user}"), false)
            .await;
        let metrics = self.read("/metrics", false).await;
        let n = |v: &Value, field: &str| {
            v[field]
                .as_u64()
                .unwrap_or_else(|| panic!("{field} in {v}"))
        };
        Snapshot {
            stock: n(&e, "stock"),
            remaining: n(&e, "remaining"),
            sold: n(&e, "sold"),
            waiting: n(&e, "waiting"),
            active: n(&e, "active"),
            admitted: n(&admission, "admitted"),
            reservations: reservations_ok(&metrics),
            balance: n(&points, "balance"),
        }
    }
}

/// `ticket_reservation_total{result="ok"}`, 0 before the first sale.
fn reservations_ok(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"ticket_reservation_total{result="ok"} "#))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// Raises this process's soft limit of open files to `want` when it is
/// lower (children inherit it), up to the hard limit; returns the soft
/// limit now in force.
pub fn raise_open_files(want: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft >= want {
        return soft;
    }
    let raised = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, raised, hard).unwrap();
    raised
}
