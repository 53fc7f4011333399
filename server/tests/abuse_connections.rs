//! Abuse limits on connections (docs/CONTRACT.md, "Abuse limits"):
//! slow-header clients and idle keep-alive connections are cut off while
//! others are served, an oversized request head is refused, connections
//! over the cap get a clear error, and 10,000 held connections leave the
//! server answering. Each limit has its control (the same trial with the
//! limit off), and each trial compares a [`Snapshot`] before and after:
//! what was refused changed nothing.

mod abuse;

use std::time::{Duration, Instant};

use abuse::{addr, closed_within, Observer, Snapshot};
use reqwest::StatusCode;
use serde_json::json;
use testkit::{start, Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A charge of 1 point to `watcher`, as raw HTTP: what the abusive
/// clients below try to get through.
const CHARGE_HEAD: &str = "POST /api/v1/points/charge HTTP/1.1\r\nHost: x\r\n\
    Content-Type: application/json\r\nContent-Length: 33\r\n";
const CHARGE_BODY: &str = r#"{"userId":"watcher","amount":1}  "#;

/// An event and a user with points, and the state they show.
async fn set_up(s: &TestServer, seen: &Observer) -> Snapshot {
    s.event("e1", 5, json!({})).await;
    let (status, _) = s
        .post(
            "/api/v1/points/charge",
            json!({"userId": "watcher", "amount": 100}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    seen.snapshot("e1", "watcher").await
}

/// Opens `n` connections that trickle a charge's head a byte every 100 ms
/// and never finish it; returns them once each sent its first bytes.
async fn slow_header_clients(server: &str, n: usize) -> Vec<tokio::task::JoinHandle<bool>> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let mut conn = TcpStream::connect(server).await.unwrap();
        conn.write_all(CHARGE_HEAD.as_bytes()).await.unwrap();
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
    let seen = Observer::new(&s);
    let before = set_up(&s, &seen).await;
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
    assert_eq!(seen.snapshot("e1", "watcher").await, before);
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

/// An idle keep-alive connection is closed once the header timeout passes
/// after its last response (a short one here, so the test is quick).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    for (timeout_ms, closed) in [("500", true), ("0", false)] {
        let s = start(&Backend::Memory, &["--header-read-timeout-ms", timeout_ms]).await;
        let mut conn = TcpStream::connect(addr(&s)).await.unwrap();
        conn.write_all(b"GET /actuator/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "kept alive after a 200"
        );
        let answered = Instant::now();
        // With the timeout, closed within 500 ms (plus slack) and not
        // before; without it (the control) still open after 1.5 s.
        let window = Duration::from_millis(if closed { 3000 } else { 1500 });
        // Closed without an answer: EOF (or a reset), no bytes first.
        let was_closed = match tokio::time::timeout(window, conn.read(&mut buf)).await {
            Err(_) => false,
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(n)) => panic!("answered {:?}", String::from_utf8_lossy(&buf[..n])),
        };
        assert_eq!(was_closed, closed, "--header-read-timeout-ms {timeout_ms}");
        if closed {
            let after = answered.elapsed();
            assert!(
                after >= Duration::from_millis(400),
                "closed after {after:?}"
            );
        }
        s.stop().await.unwrap();
    }
}

/// A request head over `--max-header-bytes` is refused with 431 and its
/// connection closed, without reaching a handler; another connection is
/// served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_head_is_refused_and_others_are_served() {
    let s = start(&Backend::Memory, &["--max-header-bytes", "16384"]).await;
    let seen = Observer::new(&s);
    let before = set_up(&s, &seen).await;
    // Opened first, used after: a connection the oversized one must not hurt.
    let mut normal = TcpStream::connect(addr(&s)).await.unwrap();
    let mut answered_431 = 0;
    for size in [20_000, 200_000] {
        let mut big = TcpStream::connect(addr(&s)).await.unwrap();
        let head = format!(
            "{CHARGE_HEAD}X-Padding: {}\r\n\r\n{CHARGE_BODY}",
            "a".repeat(size)
        );
        // The server may close before it read it all: a failed write is
        // part of being refused.
        let _ = big.write_all(head.as_bytes()).await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), big.read_to_end(&mut answer))
            .await
            .expect("an oversized head left its connection open");
        let answer = String::from_utf8_lossy(&answer);
        println!(
            "{size}-byte header: {:?}, read {read:?}",
            answer.lines().next()
        );
        // When the server closes with the rest of the head unread, the
        // kernel may reset the connection before its answer is read.
        if read.is_ok() || !answer.is_empty() {
            assert!(
                answer.starts_with("HTTP/1.1 431"),
                "{size} bytes: {answer:?} ({read:?})"
            );
            answered_431 += 1;
        }
        normal
            .write_all(b"GET /actuator/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = normal.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{size}");
    }
    assert!(answered_431 > 0, "no 431 seen, only resets");
    // The control: the same request with a head under the limit charges.
    let mut small = TcpStream::connect(addr(&s)).await.unwrap();
    let head = format!(
        "{CHARGE_HEAD}X-Padding: {}\r\n\r\n{CHARGE_BODY}",
        "a".repeat(8000)
    );
    small.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = small.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let after = seen.snapshot("e1", "watcher").await;
    assert_eq!(
        after,
        Snapshot {
            balance: before.balance + 1,
            ..before
        },
        "only the head under the limit charged"
    );
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503_not_a_hang() {
    let mut s = start(&Backend::Memory, &["--max-connections", "20"]).await;
    // A pooled keep-alive connection would hold a place through the trial.
    s.client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let seen = Observer::new(&s);
    let before = set_up(&s, &seen).await;
    // Keep-alive connections that each made one request: they hold a place.
    // The set-up's connections free theirs once the server saw them close,
    // so a place may still be taken for a moment: retry until served.
    let mut held = Vec::new();
    for _ in 0..20 {
        let conn = testkit::eventually(Duration::from_secs(5), "a place", || async {
            let mut conn = TcpStream::connect(addr(&s)).await.ok()?;
            conn.write_all(b"GET /actuator/health HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .ok()?;
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).await.ok()?;
            buf[..n].starts_with(b"HTTP/1.1 200").then_some(conn)
        })
        .await;
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
    // A charge sent over the cap is not read, let alone applied.
    let mut charge = TcpStream::connect(addr(&s)).await.unwrap();
    let _ = charge
        .write_all(format!("{CHARGE_HEAD}\r\n{CHARGE_BODY}").as_bytes())
        .await;
    assert!(closed_within(&mut charge, Duration::from_secs(3)).await);
    // Places come back when connections close.
    drop(held);
    testkit::eventually(Duration::from_secs(5), "a freed place", || async {
        let client = reqwest::Client::new();
        let r = client.get(s.url("/actuator/health")).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(seen.snapshot("e1", "watcher").await, before);
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
/// bounds; the server's memory growth is printed and bounded. Each side
/// holds 10,000 descriptors: the test raises its soft `ulimit -n` (which
/// the server inherits) to what it needs, up to the hard limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_held_connections_leave_the_server_answering() {
    const HELD: usize = 10_000;
    let want = HELD as u64 + 1024;
    let limit = abuse::raise_open_files(want);
    assert!(
        limit >= want,
        "open files limited to {limit} (hard limit): {want} needed; raise `ulimit -Hn`"
    );
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
    let seen = Observer::new(&s);
    s.event("flood", 100, json!({})).await;
    let before = seen.snapshot("flood", "watcher").await;
    let open_fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let fds_before = open_fds();
    println!("server fds before: {fds_before}");
    let rss_before = rss_kib(pid);

    let mut held = Vec::with_capacity(HELD);
    let opened = Instant::now();
    for _ in 0..HELD {
        held.push(TcpStream::connect(addr(&s)).await.unwrap());
    }
    let open_time = opened.elapsed();
    println!("server fds once opened: {}", open_fds());
    // Every held connection was accepted: the server holds a socket each.
    // (Less a few: the set-up's connections counted in `fds_before` may
    // have closed since.)
    testkit::eventually(Duration::from_secs(30), "10,000 accepted", || async {
        (open_fds() + 8 >= fds_before + HELD).then_some(())
    })
    .await;

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
    // The 20 purchases, and nothing else: held connections did nothing.
    let after = seen.snapshot("flood", "watcher").await;
    assert_eq!(
        after,
        Snapshot {
            remaining: before.remaining - 20,
            sold: before.sold + 20,
            reservations: before.reservations + 20,
            admitted: before.admitted + 20,
            ..before
        }
    );
    drop((held, server));
}

/// The server speaks HTTP/1.1 only: a client opening HTTP/2 with prior
/// knowledge (the preface and an empty SETTINGS frame), then silent, is
/// refused and cut off at once, not held open outside the header timeout
/// that guards HTTP/1 connections; others are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_preface_is_refused_and_the_connection_closed() {
    let s = start(&Backend::Memory, &[]).await;
    let mut conn = TcpStream::connect(addr(&s)).await.unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    assert!(
        closed_within(&mut conn, Duration::from_secs(3)).await,
        "an HTTP/2 connection was kept open (the default header timeout is 30 s)"
    );
    assert_eq!(s.get("/actuator/health").await.0, StatusCode::OK);
    s.stop().await.unwrap();
}
