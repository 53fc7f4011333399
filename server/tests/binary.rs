//! The `ticket-server` binary as a user runs it: printed address, SIGTERM
//! shutdown, and a black-box client in another language (Python, stdlib
//! only) that follows the contract alone and must see exactly 100 of 200
//! buyers succeed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    base: String,
}

/// Kills the server if a test fails before stopping it.
impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn_server(args: &[&str]) -> Server {
    let mut server = Server {
        child: Command::new(env!("CARGO_BIN_EXE_ticket-server"))
            .args(["--listen", "127.0.0.1:0"])
            // The clients here are 200 buyers from 127.0.0.1 at once.
            .args(["--rate-limit-rps", "0", "--user-rate-limit-rps", "0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start ticket-server"),
        base: String::new(),
    };
    let stdout = server.child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("ticket-server never printed its address");
        if let Some(addr) = line.strip_prefix("listening on ") {
            server.base = addr.to_owned();
            return server;
        }
    }
}

fn sigterm_and_wait(server: Server) {
    let mut server = server;
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            assert!(
                exit.success(),
                "ticket-server exited with {exit} after SIGTERM"
            );
            return;
        }
        assert!(Instant::now() < deadline, "ticket-server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_python_client_following_the_contract_sees_exactly_100_of_200() {
    let server = spawn_server(&["--admin-token", "T"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/blackbox_client.py");
    let out = Command::new("python3")
        .arg(script)
        .args([server.base.as_str(), "T", "200", "100"])
        .output()
        .expect("python3 is needed for the black-box test (scripts/setup.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "black-box client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("PASS blackbox: 100 ok / 100 sold-out / 0 other"),
        "{stdout}"
    );
    sigterm_and_wait(server);
}

#[test]
fn the_same_client_catches_the_unsafe_mode() {
    let server = spawn_server(&["--admin-token", "T", "--unsafe-race"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/blackbox_client.py");
    let out = Command::new("python3")
        .arg(script)
        .args([server.base.as_str(), "T", "200", "100"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // The failure is the over-sale itself, not any wrong count: more than
    // the 100 items were bought, and the event says so.
    let line = Blackbox::parse(&stdout);
    assert!(!line.pass, "{stdout}");
    assert!(line.ok > 100, "{stdout}");
    assert!(line.sold > 100, "{stdout}");
    assert_eq!(line.ok + line.sold_out + line.other, 200, "{stdout}");
    sigterm_and_wait(server);
}

/// The client's verdict line: "PASS|FAIL blackbox: OK ok / S sold-out / O
/// other; remaining R, sold N".
#[derive(Debug, PartialEq)]
struct Blackbox {
    pass: bool,
    ok: u64,
    sold_out: u64,
    other: u64,
    remaining: u64,
    sold: u64,
}

impl Blackbox {
    fn parse(stdout: &str) -> Blackbox {
        let line = stdout
            .lines()
            .find(|l| l.contains(" blackbox: "))
            .unwrap_or_else(|| panic!("no verdict line in {stdout:?}"));
        let (verdict, rest) = line.split_once(" blackbox: ").unwrap();
        let pass = match verdict {
            "PASS" => true,
            "FAIL" => false,
            _ => panic!("verdict {verdict:?} in {line:?}"),
        };
        let n = |text: &str, before: &str, after: &str| -> u64 {
            let from = text
                .find(before)
                .unwrap_or_else(|| panic!("{before:?} missing from {line:?}"))
                + before.len();
            let tail = &text[from..];
            let to = tail.find(after).unwrap_or(tail.len());
            tail[..to]
                .parse()
                .unwrap_or_else(|_| panic!("{:?} is not a count in {line:?}", &tail[..to]))
        };
        let rest = format!(" {rest}");
        Blackbox {
            pass,
            ok: n(&rest, " ", " ok / "),
            sold_out: n(&rest, " ok / ", " sold-out / "),
            other: n(&rest, " sold-out / ", " other; "),
            remaining: n(&rest, "; remaining ", ","),
            sold: n(&rest, ", sold ", "\n"),
        }
    }
}

#[test]
fn the_verdict_line_parses_and_refuses_other_text() {
    assert_eq!(
        Blackbox::parse("FAIL blackbox: 137 ok / 63 sold-out / 0 other; remaining 0, sold 137\n"),
        Blackbox {
            pass: false,
            ok: 137,
            sold_out: 63,
            other: 0,
            remaining: 0,
            sold: 137,
        }
    );
    for bad in [
        "set-up refused: 401 null",
        "FAIL blackbox: many ok / 0 sold-out / 0 other; remaining 0, sold 1",
        "FAIL blackbox: 1 ok / 0 sold-out / 0 other; remaining None, sold 1",
    ] {
        assert!(
            std::panic::catch_unwind(|| Blackbox::parse(bad)).is_err(),
            "{bad:?} parsed"
        );
    }
}
