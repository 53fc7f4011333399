//! A run split into shards (`--shard I/N`, `--start-at`) as separate
//! processes against one server, merged by `loadgen merge`: the merged
//! run is the sum of its shards, and merge refuses a missing or foreign
//! shard.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loadgen::summary::RunSummary;
use testkit::{start, Backend, TempDir};

const SHARDS: u32 = 3;
const RATE: f64 = 60.0;
const SECS: f64 = 4.0;

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("running loadgen")
}

fn summary(dir: &Path) -> RunSummary {
    RunSummary::read(&dir.join("summary.json")).expect("summary.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_merge_into_their_sum_and_merge_refuses_strangers() {
    let server = start(&Backend::Memory, &[]).await;
    let out = TempDir::new("loadgen-shards");
    let start_at = SystemTime::now() + Duration::from_secs(3);
    let start_at = format!(
        "{:.3}",
        start_at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
    );
    let dirs: Vec<PathBuf> = (0..SHARDS).map(|i| out.join(format!("shard{i}"))).collect();
    // The shards run as separate processes, as on separate machines.
    let children: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let (rate, secs, shard) = (RATE.to_string(), SECS.to_string(), format!("{i}/{SHARDS}"));
            let args = [
                "run",
                "--host",
                &server.base,
                "--admin-token",
                &server.admin_token,
                "--rate",
                &rate,
                "--duration",
                &secs,
                "--run-id",
                "sharded",
                "--shard",
                &shard,
                "--start-at",
                &start_at,
                "--quiet",
                "--out",
                dir.to_str().unwrap(),
            ]
            .map(String::from);
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                loadgen(&refs)
            })
        })
        .collect();
    for c in children {
        let o = c.await.unwrap();
        assert!(
            o.status.success(),
            "a shard failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let shards: Vec<RunSummary> = dirs.iter().map(|d| summary(d)).collect();
    for s in &shards {
        let sale = &s.transactions["flash_sale"];
        // Users of their own: a user id shared by two shards would hit the
        // per-user limit and show as errors.
        assert_eq!(sale.errors, 0, "shard errors: {sale:?}");
        assert!((s.offered.unwrap() - RATE / SHARDS as f64).abs() < 1e-9);
    }

    let logs: Vec<String> = dirs
        .iter()
        .map(|d| d.join("latency.hlog").display().to_string())
        .collect();
    let merged_dir = out.join("merged");
    let mut args = vec!["merge", "--out", merged_dir.to_str().unwrap()];
    args.extend(logs.iter().map(String::as_str));
    let o = loadgen(&args);
    assert!(
        o.status.success(),
        "merge: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let merged = summary(&merged_dir);
    assert_eq!(merged.run_id, "sharded");
    assert!(
        (merged.offered.unwrap() - RATE).abs() < 1e-9,
        "{:?}",
        merged.offered
    );
    for tx in ["flash_sale", "enter", "reserve"] {
        let sum: u64 = shards.iter().map(|s| s.transactions[tx].count).sum();
        assert_eq!(
            merged.transactions[tx].count, sum,
            "{tx}: merged histogram count"
        );
    }
    let sum_tps: f64 = shards.iter().map(RunSummary::tps).sum();
    assert!(
        (merged.tps() - sum_tps).abs() <= 0.01 * sum_tps,
        "merged TPS {} vs the shards' {sum_tps}",
        merged.tps()
    );
    // Every purchase the shards completed was sold on the one shared
    // event, and nothing beyond what they planned.
    let sold: serde_json::Value = reqwest::get(format!("{}/api/v1/events/lg-sharded", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ok: u64 = shards
        .iter()
        .map(|s| s.transactions["flash_sale"].count)
        .sum();
    let planned: u64 = shards
        .iter()
        .map(|s| s.schedule.as_ref().unwrap().planned)
        .sum();
    let sold_count = sold["sold"].as_u64().unwrap();
    assert!(
        (ok..=planned).contains(&sold_count),
        "sold {sold_count}, completed {ok}, planned {planned}"
    );

    // Two of three shards: refused, naming the missing one.
    let o = loadgen(&[
        "merge",
        "--out",
        out.join("m2").to_str().unwrap(),
        &logs[0],
        &logs[1],
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("missing shard(s) 2/3"), "{err}");
    // A shard of another run in place of shard 2: refused as foreign.
    let foreign = out.join("foreign.hlog");
    let text = std::fs::read_to_string(&logs[2]).unwrap();
    std::fs::write(
        &foreign,
        text.replacen("\"runId\":\"sharded\"", "\"runId\":\"other\"", 1),
    )
    .unwrap();
    let o = loadgen(&[
        "merge",
        "--out",
        out.join("m3").to_str().unwrap(),
        &logs[0],
        &logs[1],
        foreign.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("foreign shard"), "{err}");
}

/// The job's `--load-shards`: one run from two shard processes, merged
/// into the run's summary, each purchase counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_from_shard_processes_is_merged_into_one_summary() {
    let server = start(&Backend::Memory, &[]).await;
    let out = TempDir::new("loadgen-sharded-run");
    let mut args = loadgen::run::RunArgs::new(
        vec![server.base.clone()],
        &server.admin_token,
        loadgen::scenarios::Kind::FlashSale,
        out.join("flash_sale"),
    );
    args.rate = Some(RATE);
    args.duration = SECS;
    args.run_id = Some("by-two".into());
    let merged = loadgen::sharded::run(&args, 2, Path::new(env!("CARGO_BIN_EXE_loadgen")))
        .await
        .expect("the sharded run");
    assert_eq!(merged.processes, 2);
    assert_eq!(merged.run_id, "by-two");
    assert!((merged.offered.unwrap() - RATE).abs() < 1e-9);
    let shards: Vec<RunSummary> = (0..2)
        .map(|i| summary(&args.out.join(format!("shard-{i}"))))
        .collect();
    for s in &shards {
        assert!(
            (s.offered.unwrap() - RATE / 2.0).abs() < 1e-9,
            "{:?}",
            s.offered
        );
    }
    let sum: u64 = shards
        .iter()
        .map(|s| s.transactions["flash_sale"].count)
        .sum();
    assert_eq!(merged.transactions["flash_sale"].count, sum);
    assert!(sum > 0, "the shards bought nothing");
    let event: serde_json::Value = reqwest::get(format!("{}/api/v1/events/lg-by-two", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(event["sold"].as_u64().unwrap() >= sum, "{event}");
    // The merged summary is where the job's report reads it.
    assert_eq!(summary(&args.out).transactions["flash_sale"].count, sum);

    // Negative control: a shard that fails fails the run, naming it.
    let mut bad = args.clone();
    bad.hosts = vec!["http://127.0.0.1:9".into()];
    bad.out = out.join("unreachable");
    let err = loadgen::sharded::run(&bad, 2, Path::new(env!("CARGO_BIN_EXE_loadgen")))
        .await
        .expect_err("no server there");
    assert!(err.to_string().contains("shard 0/2 failed"), "{err:#}");
}
