//! Reserves at a fixed offered rate (an open model) against any server that
//! speaks the contract, and reports achieved TPS and latency percentiles,
//! raw and corrected for coordinated omission (measured from each request's
//! scheduled time), plus the time until a sample of reservations reads
//! CONFIRMED. Bounded: `--rate x --duration` requests, then it stops.
//!
//! Run with: `cargo run --release -p ticketbench-benches --bin reserve-rate -- \
//!   --target http://127.0.0.1:8080 --admin-token T --rate 5000 --duration 10`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    #[arg(long, env = "ADMIN_TOKEN")]
    admin_token: String,
    /// Reserves offered per second.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Seconds of offered load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Most requests in flight; beyond it a request counts as not sent
    /// (the generator, not the server, would be the limit).
    #[arg(long, default_value_t = 4096)]
    max_in_flight: u64,
    /// Every n-th success is followed until it reads CONFIRMED.
    #[arg(long, default_value_t = 50)]
    confirm_every: u64,
    /// A shell command run after set-up, right before the load (e.g. to
    /// snapshot the stores' counters).
    #[arg(long)]
    on_ready: Option<String>,
    /// Write the summary here as JSON.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn summary(h: &Histogram<u64>) -> Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({"count": h.len(), "p50Ms": ms(0.5), "p95Ms": ms(0.95), "p99Ms": ms(0.99), "maxMs": h.max() as f64 / 1000.0})
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let n = args.rate * args.duration;
    let event = format!("rate-{}", std::process::id());
    let base = args.target.trim_end_matches('/').to_owned();
    let created = client
        .post(format!("{base}/api/v1/admin/events"))
        .bearer_auth(&args.admin_token)
        .json(&json!({"eventId": event, "stock": n, "activeCapacity": n.min(1_000_000), "activeTtlSeconds": 3600}))
        .send()
        .await?;
    anyhow::ensure!(
        created.status() == 201,
        "creating the event: {}",
        created.text().await?
    );

    // Set-up, not measured: every buyer enters first and holds an ACTIVE token.
    let entering = Instant::now();
    let tokens: Vec<String> = futures_util::stream::iter(0..n)
        .map(|i| {
            let (client, base, event) = (client.clone(), base.clone(), event.clone());
            async move {
                let v: Value = client
                    .post(format!("{base}/api/v1/queue/enter"))
                    .json(&json!({"eventId": event, "userId": format!("b{i}")}))
                    .send()
                    .await?
                    .json()
                    .await?;
                anyhow::ensure!(v["status"] == "ACTIVE", "not admitted: {v}");
                Ok(v["token"].as_str().unwrap_or_default().to_owned())
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<anyhow::Result<String>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let enter_secs = entering.elapsed().as_secs_f64();
    eprintln!(
        "{n} users entered in {enter_secs:.1} s ({:.0}/s)",
        n as f64 / enter_secs
    );

    if let Some(cmd) = &args.on_ready {
        let status = std::process::Command::new("sh")
            .args(["-c", cmd])
            .status()?;
        anyhow::ensure!(status.success(), "--on-ready command failed");
    }

    let raw = Arc::new(Mutex::new(histogram()));
    let corrected = Arc::new(Mutex::new(histogram()));
    let confirm = Arc::new(Mutex::new(histogram()));
    let (ok, failed, not_sent, in_flight) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(n as usize);
    for (i, token) in tokens.into_iter().enumerate() {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        if in_flight.load(Ordering::Relaxed) >= args.max_in_flight {
            not_sent.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (client, base, event) = (client.clone(), base.clone(), event.clone());
        let (raw, corrected, confirm) = (raw.clone(), corrected.clone(), confirm.clone());
        let (ok, failed, in_flight) = (ok.clone(), failed.clone(), in_flight.clone());
        let follow = (i as u64) % args.confirm_every == 0;
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = client
                .post(format!("{base}/api/v1/tickets/reserve"))
                .header("X-Queue-Token", token)
                .json(&json!({"eventId": event, "quantity": 1}))
                .send()
                .await;
            let body: Option<Value> = match answer {
                Ok(r) if r.status() == 200 => r.json().await.ok(),
                _ => None,
            };
            let done = Instant::now();
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let us = |d: Duration| (d.as_micros() as u64).max(1);
            raw.lock().unwrap().saturating_record(us(done - sent));
            corrected.lock().unwrap().saturating_record(us(done - due));
            let Some(body) = body else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            ok.fetch_add(1, Ordering::Relaxed);
            if follow {
                let id = body["reservationId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let until = done + Duration::from_secs(30);
                while Instant::now() < until {
                    let t: Option<Value> = match client
                        .get(format!("{base}/api/v1/tickets/{id}"))
                        .send()
                        .await
                    {
                        Ok(r) => r.json().await.ok(),
                        Err(_) => None,
                    };
                    if t.is_some_and(|t| t["status"] == "CONFIRMED") {
                        confirm
                            .lock()
                            .unwrap()
                            .saturating_record(us(done.elapsed()));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }
    let offered_secs = start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    let result = json!({
        "target": base,
        "offeredRate": args.rate,
        "durationSeconds": args.duration,
        "offered": n,
        "ok": ok,
        "failed": failed.load(Ordering::Relaxed),
        "notSent": not_sent.load(Ordering::Relaxed),
        "achievedTps": ok as f64 / elapsed,
        "offeredSeconds": offered_secs,
        "elapsedSeconds": elapsed,
        "latencyRaw": summary(&raw.lock().unwrap()),
        "latencyCorrected": summary(&corrected.lock().unwrap()),
        "confirmAfterResponse": summary(&confirm.lock().unwrap()),
        "enterSeconds": enter_secs,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    if let Some(path) = args.out {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)?;
    }
    Ok(())
}
