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
    assert!(stdout.starts_with("FAIL blackbox"), "{stdout}");
    sigterm_and_wait(server);
}

#[test]
fn a_generated_admin_token_is_printed() {
    let mut server = Server {
        child: Command::new(env!("CARGO_BIN_EXE_ticket-server"))
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("ADMIN_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
        base: String::new(),
    };
    let mut lines = BufReader::new(server.child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let token = first
        .strip_prefix("admin token (generated): ")
        .unwrap_or_else(|| panic!("first line was {first:?}"));
    assert_eq!(token.len(), 32);
    let second = lines.next().unwrap().unwrap();
    assert!(
        second.starts_with("listening on http://127.0.0.1:"),
        "{second}"
    );
    sigterm_and_wait(server);
}
