//! Abuse limits (docs/CONTRACT.md, "Abuse limits"): slow-header clients are
//! cut off while others are served, per-user rate limits, caps on
//! connections and SSE streams answered with a clear error, slow bodies
//! refused, and 10,000 idle connections held while the server still answers.
//! Each limit has its control: the same trial with the limit off.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use testkit::{assert_error, split, start, start_with_default_limits, Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// True once the server closed `conn` (read gives EOF or an error).
async fn closed_within(conn: &mut TcpStream, deadline: Duration) -> bool {
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

/// Sends `request()` up to `tries` times in a row until one is refused
/// with 429; returns how many were served before it (each must be 200) and
/// the refusal checked as RATE_LIMITED with a Retry-After of 1-2 s.
async fn served_until_429(
    tries: usize,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Option<usize> {
    for served in 0..tries {
        let r = request().send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry = r.headers().get("retry-after").cloned();
            assert_error(&split(r).await, 429, "RATE_LIMITED");
            let retry: u64 = retry.unwrap().to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&retry), "Retry-After {retry}");
            return Some(served);
        }
        assert_eq!(r.status(), StatusCode::OK);
    }
    None
}

/// Opens `n` connections that trickle a request head a byte every 100 ms
/// and never finish it; returns them once each sent its first bytes.
async fn slow_header_clients(server: &str, n: usize) -> Vec<tokio::task::JoinHandle<bool>> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let mut conn = TcpStream::connect(server).await.unwrap();
        conn.write_all(b"GET /actuator/health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        clients.push(tokio::spawn(async move {
            // Trickles until a write fails or 4 s pass; true when cut off.
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if conn.write_all(b"X").await.is_err() {
                    return true;
                }
                let mut buf = [0u8; 64];
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(1), conn.read(&mut buf)).await
                {
                    return true;
                }
            }
            false
        }));
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off_while_others_are_served() {
    let s = start(&Backend::Memory, &["--header-read-timeout-ms", "1000"]).await;
    let slow = slow_header_clients(&addr(&s), 50).await;
    // A client that connects and sends nothing at all.
    let mut silent = TcpStream::connect(addr(&s)).await.unwrap();
    // Normal clients meanwhile: each answered quickly.
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(1500) {
        let t = Instant::now();
        assert_eq!(s.get("/actuator/health").await.0, StatusCode::OK);
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(worst < Duration::from_millis(250), "health took {worst:?}");
    for client in slow {
        let at = Instant::now();
        assert!(
            client.await.unwrap(),
            "a slow-header client was not cut off"
        );
        assert!(at.elapsed() < Duration::from_secs(4));
    }
    assert!(
        closed_within(&mut silent, Duration::from_secs(3)).await,
        "a silent client was not cut off"
    );
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_without_a_header_timeout_slow_clients_stay() {
    let s = start(&Backend::Memory, &["--header-read-timeout-ms", "0"]).await;
    let slow = slow_header_clients(&addr(&s), 3).await;
    for client in slow {
        assert!(
            !client.await.unwrap(),
            "cut off although the timeout is off: the check above proves nothing"
        );
    }
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_user_gets_429_with_retry_after_and_others_do_not() {
    // The per-user limit is the server's default (10 a second); the per-IP
    // one is off, as every user here shares 127.0.0.1 (it has its test
    // below).
    let s = start_with_default_limits(&Backend::Memory, &["--rate-limit-rps", "0"]).await;
    s.event("e1", 5, json!({})).await;
    let accepted = served_until_429(40, || {
        s.client
            .post(s.url("/api/v1/points/charge"))
            .json(&json!({"userId": "noisy", "amount": 1}))
    })
    .await
    .expect("40 requests at once never hit a 10/s limit");
    // The refused charge changed nothing: the balance counts the accepted
    // ones (read once the noisy user may read again).
    let balance = testkit::eventually(Duration::from_secs(5), "the balance", || async {
        let (status, points) = s.get("/api/v1/points?userId=noisy").await;
        (status == StatusCode::OK).then(|| points["balance"].as_u64().unwrap())
    })
    .await;
    assert_eq!(balance, accepted as u64);
    // Others are unaffected, whichever route they take.
    for user in ["quiet-1", "quiet-2", "quiet-3"] {
        let entered = s.enter("e1", user).await;
        assert!(entered["token"].is_string(), "{entered}");
        let (status, _) = s.status(entered["token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
    }
    // The noisy user is refused on token-gated routes too.
    let token = loop {
        let r = s
            .client
            .post(s.url("/api/v1/queue/enter"))
            .json(&json!({"eventId": "e1", "userId": "noisy"}))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            break split(r).await.1["token"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let statuses: Vec<StatusCode> = {
        let mut v = Vec::new();
        for _ in 0..30 {
            v.push(s.status(&token).await.0);
        }
        v
    };
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS));
    s.stop().await.unwrap();
}

/// The default per-IP limit (10 a second, bursts of 10): a client above it
/// is refused with 429 and `Retry-After`, another client is served, and
/// the operations endpoints stay reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_above_the_default_ip_limit_gets_429() {
    let s = start_with_default_limits(&Backend::Memory, &[]).await;
    let began = Instant::now();
    s.event("e1", 5, json!({})).await;
    let served = served_until_429(30, || s.client.get(s.url("/api/v1/events/e1")))
        .await
        .expect("30 requests at once never hit the default limit");
    // A burst of 10 (one of them the set-up), then 10 a second: what the
    // elapsed time refilled, and no more.
    let refilled = (began.elapsed().as_secs_f64() * 10.0).ceil() as usize;
    assert!(
        (9..=9 + refilled).contains(&served),
        "{served} served before the 429, {refilled} refilled"
    );
    assert_eq!(s.get("/actuator/health").await.0, StatusCode::OK);
    // Another client (127.0.0.2, also this machine) has its own bucket.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = other.get(s.url("/api/v1/events/e1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_without_a_user_limit_no_429() {
    let s = start(&Backend::Memory, &["--user-rate-limit-rps", "0"]).await;
    for _ in 0..40 {
        let (status, _) = s
            .post(
                "/api/v1/points/charge",
                json!({"userId": "noisy", "amount": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503_not_a_hang() {
    let s = start(&Backend::Memory, &["--max-connections", "20"]).await;
    // Keep-alive connections that each made one request: they hold a place.
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut conn = TcpStream::connect(addr(&s)).await.unwrap();
        conn.write_all(b"GET /actuator/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(conn);
    }
    let mut extra = TcpStream::connect(addr(&s)).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(3), extra.read_to_string(&mut answer))
        .await
        .expect("the connection over the cap hung")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""error":"UNAVAILABLE""#), "{answer}");
    // Places come back when connections close.
    drop(held);
    let served = testkit::eventually(Duration::from_secs(5), "a freed place", || async {
        let client = reqwest::Client::new();
        let r = client.get(s.url("/actuator/health")).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    let () = served;
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_are_capped_per_token_and_in_total() {
    let s = start(
        &Backend::Memory,
        &["--max-sse-per-token", "2", "--max-sse-streams", "3"],
    )
    .await;
    // One ACTIVE user keeps the others WAITING, so their streams stay open.
    s.event("e1", 5, json!({"activeCapacity": 1})).await;
    s.enter("e1", "first").await;
    let a = s.token("e1", "a").await;
    let b = s.token("e1", "b").await;
    let open = |token: String| {
        let client = s.client.clone();
        let url = s.url(&format!("/api/v1/queue/stream?token={token}"));
        async move { client.get(url).send().await.unwrap() }
    };
    let a1 = open(a.clone()).await;
    let a2 = open(a.clone()).await;
    assert_eq!((a1.status(), a2.status()), (StatusCode::OK, StatusCode::OK));
    let a3 = open(a.clone()).await;
    assert_eq!(a3.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_error(&split(a3).await, 429, "RATE_LIMITED");
    let b1 = open(b.clone()).await;
    assert_eq!(b1.status(), StatusCode::OK);
    let b2 = open(b.clone()).await;
    assert_error(&split(b2).await, 503, "UNAVAILABLE");
    // A closed stream frees its place.
    drop(a1);
    let reopened = testkit::eventually(Duration::from_secs(5), "a freed stream", || {
        let open = open(b.clone());
        async move {
            let r = open.await;
            (r.status() == StatusCode::OK).then_some(r)
        }
    })
    .await;
    drop((a2, b1, reopened));
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_not_sent_in_time_is_400_and_changes_nothing() {
    let s = start(&Backend::Memory, &["--body-read-timeout-ms", "500"]).await;
    let mut conn = TcpStream::connect(addr(&s)).await.unwrap();
    let head = format!(
        "POST /api/v1/points/charge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{}",
        r#"{"userId":"slow","#
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut answer))
        .await
        .expect("no answer to a stalled body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("not received within"), "{answer}");
    let (_, points) = s.get("/api/v1/points?userId=slow").await;
    assert_eq!(points["balance"], 0);
    s.stop().await.unwrap();
}

/// Stops the server process however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The server in its own process (its fds apart from the test's): 10,000
/// idle connections held, while health and purchases are answered within
/// bounds; the server's memory growth is printed and bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_held_connections_leave_the_server_answering() {
    const HELD: usize = 10_000;
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_ticket-server"))
        .args(["--listen", "127.0.0.1:0", "--admin-token", "T"])
        // The trial's purchases all come from 127.0.0.1, faster than 10/s.
        .args(["--rate-limit-rps", "0", "--user-rate-limit-rps", "0"])
        // Held connections must outlive the trial, not be cut as idle.
        .args(["--header-read-timeout-ms", "120000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let stdout = server.stdout.take().unwrap();
    let server = KillOnDrop(server);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server did not start");
    let mut s = TestServer::external(&base);
    s.admin_token = "T".into();
    s.event("flood", 100, json!({})).await;
    let rss_before = rss_kib(pid);

    let mut held = Vec::with_capacity(HELD);
    let opened = Instant::now();
    for _ in 0..HELD {
        held.push(TcpStream::connect(addr(&s)).await.unwrap());
    }
    let open_time = opened.elapsed();
    // Every held connection was accepted: the server is not refusing them.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut worst_health = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(s.get("/actuator/health").await.0, StatusCode::OK);
        worst_health = worst_health.max(t.elapsed());
    }
    let mut worst_purchase = Duration::ZERO;
    for i in 0..20 {
        let t = Instant::now();
        let token = s.token("flood", &format!("buyer-{i}")).await;
        let (status, body) = s.reserve(Some(&token), "flood", json!(1)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        worst_purchase = worst_purchase.max(t.elapsed());
    }
    let rss_after = rss_kib(pid);
    let growth_kib = rss_after.saturating_sub(rss_before);
    println!(
        "{HELD} connections opened in {open_time:?}; health worst {worst_health:?}, \
         enter+reserve worst {worst_purchase:?}; server RSS {rss_before} KiB -> {rss_after} KiB \
         (+{growth_kib} KiB, {} bytes a connection)",
        growth_kib * 1024 / HELD as u64
    );
    assert!(
        worst_health < Duration::from_millis(500),
        "{worst_health:?}"
    );
    assert!(
        worst_purchase < Duration::from_secs(1),
        "{worst_purchase:?}"
    );
    assert!(growth_kib < 256 * 1024, "RSS grew {growth_kib} KiB");
    assert_eq!(s.event_state("flood").await["sold"], 20);
    drop((held, server));
}
