//! Checks are functions of the history: `verify judge history.jsonl`
//! reaches the live run's verdict on the same history, for a safe and an
//! over-selling server, and one edited operation flips it.

mod common;

use common::{embedded, options, purchases};
use serde_json::{json, Value};
use testkit::TempDir;
use verify::{run_against, CheckName};

/// Runs `verify judge PATH` and returns its exit status and stdout.
async fn judge_bin(path: std::path::PathBuf) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_verify"))
            .arg("judge")
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// A live run's verdict and its history written to a file.
async fn live(
    args: &[&str],
    checks: &[CheckName],
    dir: &TempDir,
) -> (verify::Verdict, std::path::PathBuf) {
    let (server, target) = embedded(args).await;
    let mut opts = options(checks);
    opts.no_variants = true;
    opts.seat_users = 40;
    opts.seats = 20;
    let outcome = run_against(&target, &opts).await.unwrap();
    server.stop().await.unwrap();
    let path = dir.join("history.jsonl");
    outcome.history.write_jsonl(&path).unwrap();
    (outcome.verdict, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_agrees_with_the_live_run_on_the_safe_server() {
    let dir = TempDir::new("verify-judge-safe");
    let every = [
        CheckName::Oversell,
        CheckName::Fifo,
        CheckName::Display,
        CheckName::Tokens,
        CheckName::Seatmap,
    ];
    let (verdict, path) = live(&[], &every, &dir).await;
    assert!(verdict.pass, "{}", verdict.human());
    assert_eq!(verdict.checks.len(), 5, "{}", verdict.human());
    let (code, stdout, stderr) = judge_bin(path.clone()).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, verdict.human(), "the same verdict, line for line");
    // And the machine-readable verdict, details included.
    let offline = verify::judge_file(&path).unwrap();
    assert_eq!(
        serde_json::to_value(&offline).unwrap(),
        serde_json::to_value(&verdict).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_agrees_with_the_live_run_on_an_over_selling_server() {
    let dir = TempDir::new("verify-judge-unsafe");
    let (verdict, path) = live(&["--unsafe-race"], &[CheckName::Oversell], &dir).await;
    assert!(!verdict.pass, "{}", verdict.human());
    let (n, possible) = purchases(&verdict.headline);
    assert!(n > possible, "{}", verdict.human());
    let (code, stdout, stderr) = judge_bin(path).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(stdout, verdict.human());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_extra_ok_purchase_in_the_history_flips_the_verdict() {
    let dir = TempDir::new("verify-judge-mutated");
    let (verdict, path) = live(&[], &[CheckName::Oversell], &dir).await;
    assert!(verdict.pass, "{}", verdict.human());
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // The first SOLD_OUT answer becomes a sale: one line edited.
    let at = lines
        .iter()
        .position(|l| l.contains("\"f\":\"reserve\"") && l.contains("SOLD_OUT"))
        .expect("a sold-out reserve in the history");
    let mut op: Value = serde_json::from_str(&lines[at]).unwrap();
    op["type"] = json!("ok");
    op["value"] = json!({"status": 200, "body": {
        "reservationId": "r00000000000000000000000000000001", "status": "PENDING"}});
    lines[at] = op.to_string();
    let edited = dir.join("edited.jsonl");
    std::fs::write(&edited, lines.join("\n") + "\n").unwrap();

    let (code, stdout, stderr) = judge_bin(edited).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.starts_with("FAIL oversell: "), "{stdout}");
    let (n, possible) = purchases(stdout.lines().next().unwrap());
    assert_eq!((n, possible), (101, 100), "{stdout}");
    // The unedited history still passes.
    let (code, stdout, _) = judge_bin(path).await;
    assert_eq!(code, 0, "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_history_is_exit_2_naming_the_line() {
    let dir = TempDir::new("verify-judge-bad");
    let path = dir.join("history.jsonl");
    std::fs::write(&path, "{\"index\": 0}\n").unwrap();
    let (code, stdout, stderr) = judge_bin(path).await;
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("history.jsonl:1: not an operation"),
        "{stderr}"
    );
    let (code, _, stderr) = judge_bin(dir.join("missing.jsonl")).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("missing.jsonl"), "{stderr}");
}
