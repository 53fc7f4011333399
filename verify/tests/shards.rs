//! One race raced by two verify processes (`--shard 0/2`, `--shard 1/2`)
//! for one event's stock: their histories, merged by `verify judge`, are
//! judged exactly like one process's; alone, a shard's is not.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{purchases, verify_bin};
use testkit::{start, Backend, TempDir};

/// Runs `verify ARGS` and returns its exit status and stdout then stderr.
fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verify"))
        .args(args)
        .env_remove("VERIFY_TARGET")
        .env_remove("ADMIN_TOKEN")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Two shard processes racing on the server at `base`, released together
/// a few seconds from now; returns each shard's history.
fn race_in_two_shards(base: &str, token: &str, dir: &Path) -> Vec<PathBuf> {
    let run_id = format!("t{:08x}", rand_id());
    let start_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        + Duration::from_secs(4);
    let start_at = format!("{:.3}", start_at.as_secs_f64());
    let children: Vec<_> = (0..2)
        .map(|i| {
            let out = dir.join(format!("shard-{i}"));
            let child = Command::new(env!("CARGO_BIN_EXE_verify"))
                .args(["--quiet", "--target", base, "--admin-token", token])
                .args(["--shard", &format!("{i}/2"), "--run-id", &run_id])
                .args(["--start-at", &start_at, "--out"])
                .arg(&out)
                .env_remove("VERIFY_TARGET")
                .env_remove("ADMIN_TOKEN")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    children
        .into_iter()
        .enumerate()
        .map(|(i, (child, out))| {
            let done = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&done.stdout),
                String::from_utf8_lossy(&done.stderr)
            );
            assert_eq!(done.status.code(), Some(0), "shard {i}: {text}");
            assert!(
                text.contains(&format!("shard {i}/2 recorded")),
                "shard {i}: {text}"
            );
            out.join("history.jsonl")
        })
        .collect()
}

fn rand_id() -> u32 {
    // Distinct per test process and call, so runs never share an event.
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos() ^ std::process::id()
}

fn judge(histories: &[PathBuf]) -> (i32, String) {
    let mut args = vec!["judge".to_owned()];
    args.extend(histories.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    verify(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_merged_judge_like_one_process_and_one_alone_does_not() {
    let server = start(&Backend::Memory, &[]).await;
    let dir = TempDir::new("verify-shards-safe");
    let (base, token, path) = (
        server.base.clone(),
        server.admin_token.clone(),
        dir.to_path_buf(),
    );
    let histories = tokio::task::spawn_blocking(move || race_in_two_shards(&base, &token, &path))
        .await
        .unwrap();
    server.stop().await.unwrap();

    let (code, text) = judge(&histories);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with("PASS oversell: 100 ok / 100 sold-out / 0 unresolved\n"),
        "{text}"
    );
    // Each shard ran its half of the buyers: alone, the other half is
    // missing and the race cannot pass.
    for one in &histories {
        let (code, text) = judge(std::slice::from_ref(one));
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("100 buyers never got to reserve"), "{text}");
    }
    // The same history twice is one race run twice, not two shards.
    let (code, text) = judge(&[histories[0].clone(), histories[0].clone()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("not shards of one race"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_on_an_over_selling_server_fail_check_1_merged() {
    let server = start(&Backend::Memory, &["--unsafe-race"]).await;
    let dir = TempDir::new("verify-shards-unsafe");
    let (base, token, path) = (
        server.base.clone(),
        server.admin_token.clone(),
        dir.to_path_buf(),
    );
    let histories = tokio::task::spawn_blocking(move || race_in_two_shards(&base, &token, &path))
        .await
        .unwrap();
    server.stop().await.unwrap();

    let (code, text) = judge(&histories);
    assert_eq!(code, 1, "{text}");
    assert!(text.starts_with("FAIL oversell: "), "{text}");
    let (n, possible) = purchases(text.lines().next().unwrap());
    assert!(n > possible, "{text}");
}

#[test]
fn a_shard_refuses_other_checks_and_needs_a_target() {
    let out = TempDir::new("verify-shards-usage");
    let shard = ["--shard", "0/2", "--run-id", "x"];
    let target = ["--target", "http://127.0.0.1:1", "--admin-token", "T"];
    let args: Vec<&str> = shard
        .iter()
        .chain(&target)
        .chain(&["--checks", "oversell,fifo"])
        .copied()
        .collect();
    let (code, text) = verify_bin(&args, &out);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("--shard runs only the over-selling race") && text.contains("fifo"),
        "{text}"
    );
    let (code, text) = verify_bin(&shard, &out);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--shard needs --target"), "{text}");
    let (code, text) = verify_bin(&["--shard", "0/2"], &out);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--run-id"), "{text}");
}
