//! The admin token's value never reaches the server's output, whether the
//! operator gave it (flag or environment) or the server generated it; a
//! generated one is in a file only its user can read, whose path is
//! printed. The binary runs as an operator runs it, with debug logs on, and
//! the admin API is used with the token while it runs.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use testkit::TempDir;

struct Running {
    child: Child,
    base: String,
    /// The file the server said holds the token, if it said one.
    announced: Option<PathBuf>,
    readers: Vec<JoinHandle<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `args` and `env`, `$TMPDIR` set to `tmp` (so a
/// default token file lands there), and returns once it printed its
/// address. Every line of stdout and stderr is kept for [`stop`].
fn spawn(args: &[&str], env: &[(&str, &str)], tmp: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticket-server"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("ADMIN_TOKEN")
        .env_remove("ADMIN_TOKEN_FILE")
        .env("TMPDIR", tmp)
        // More than an operator would log: the claim must hold for it too.
        .env("RUST_LOG", "debug")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ticket-server");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    let mut running = Running {
        child,
        base: String::new(),
        announced: None,
        readers: vec![out_reader, err_reader],
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("ticket-server never printed its address");
        if let Some(path) = line.strip_prefix("admin token in ") {
            running.announced = Some(PathBuf::from(path));
        }
        if let Some(addr) = line.strip_prefix("listening on ") {
            running.base = addr.to_owned();
            return running;
        }
    }
}

/// SIGTERM, wait for the exit, and everything the server wrote.
fn stop(mut running: Running) -> String {
    let status = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while running.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ticket-server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let readers = std::mem::take(&mut running.readers);
    readers.into_iter().map(|r| r.join().unwrap()).collect()
}

/// Waits for health, then creates an event with `bearer`: its status.
async fn create_event(base: &str, bearer: &str, event: &str) -> u16 {
    let client = reqwest::Client::new();
    let health = format!("{base}/actuator/health");
    testkit::eventually(Duration::from_secs(20), "health 200", || async {
        let r = client.get(&health).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    client
        .post(format!("{base}/api/v1/admin/events"))
        .bearer_auth(bearer)
        .json(&serde_json::json!({"eventId": event, "stock": 1}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The output is really captured (the negative control of "absent"): the
/// address line and the start-up logs are in it.
fn assert_captured(output: &str) {
    assert!(
        output.contains("listening on http://127.0.0.1:"),
        "{output}"
    );
    assert!(
        output.contains("request rate limits"),
        "no logs in {output}"
    );
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}x{nanos:x}", std::process::id())
}

#[tokio::test]
async fn a_given_token_is_never_printed_nor_logged() {
    for how in ["flag", "environment"] {
        let tmp = TempDir::new("admin-token-given");
        let token = unique("given-");
        let running = match how {
            "flag" => spawn(&["--admin-token", &token], &[], &tmp),
            _ => spawn(&[], &[("ADMIN_TOKEN", &token)], &tmp),
        };
        assert_eq!(running.announced, None, "{how}: no file to announce");
        assert_eq!(create_event(&running.base, &token, "e1").await, 201);
        assert_eq!(create_event(&running.base, "wrong", "e2").await, 401);
        let output = stop(running);
        assert_captured(&output);
        assert!(!output.contains(&token), "{how}: the token is in {output}");
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "{how}: a token file was written although one was given"
        );
    }
}

#[tokio::test]
async fn a_generated_token_is_in_a_private_file_and_never_printed() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("admin-token-generated");
    let explicit = tmp.join("explicit-token");
    let cases: [(&[&str], &str); 2] = [
        (&[], "default place"),
        (
            &["--admin-token-file", explicit.to_str().unwrap()],
            "--admin-token-file",
        ),
    ];
    for (args, case) in cases {
        let running = spawn(args, &[], &tmp);
        let file = running
            .announced
            .clone()
            .expect("the token file's path printed");
        let port = running.base.rsplit(':').next().unwrap().to_owned();
        let expected = if args.is_empty() {
            tmp.join(format!("ticket-server-{port}.admin-token"))
        } else {
            explicit.clone()
        };
        assert_eq!(file, expected, "{case}");
        // Written before the server answers: readable once health is 200.
        assert_eq!(create_event(&running.base, "wrong", "e0").await, 401);
        let token = std::fs::read_to_string(&file).unwrap();
        assert_eq!(token.len(), 32, "{case}: {token:?}");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{case}: mode {mode:o}");
        assert_eq!(create_event(&running.base, &token, "e1").await, 201);
        let output = stop(running);
        assert_captured(&output);
        assert!(!output.contains(&token), "{case}: the token is in {output}");
        assert!(
            output.contains(file.to_str().unwrap()),
            "{case}: path not said"
        );
    }
}

#[test]
fn a_token_file_that_cannot_be_written_stops_the_start() {
    let tmp = TempDir::new("admin-token-unwritable");
    let nowhere = tmp.join("no-such-dir/token");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticket-server"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--admin-token-file", nowhere.to_str().unwrap()])
        .env_remove("ADMIN_TOKEN")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A server that starts anyway would serve forever: wait for its exit
    // with a deadline, not for its output.
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after 30 s: started without a way to the token");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        !output.status.success(),
        "started without a way to the token"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--admin-token-file"), "{stderr}");
}
