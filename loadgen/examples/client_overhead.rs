//! Where loadgen's sub-millisecond P50 differs from oha's
//! (reports/loadgen-vs-oha.md): one GET every millisecond, one at a time,
//! through reqwest (goose's client) or through hyper's own connection
//! (what oha is built on), each on a multi-threaded tokio runtime with two
//! workers (goose's) or on a single-threaded one, alternating in rounds.
//!
//! ```sh
//! ticket-server --listen 127.0.0.1:18190 --admin-token T --rate-limit-rps 0 \
//!     --user-rate-limit-rps 0 --header-read-timeout-ms 0 &   # an event "e" created first
//! cargo run --release -p loadgen --example client_overhead -- http://127.0.0.1:18190/api/v1/events/e 5 5
//! ```
//! Arguments: URL, rounds, seconds per round. Prints P50 and P95 in µs per
//! round and variant.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

#[derive(Clone, Copy, Debug)]
enum Client {
    Reqwest,
    Hyper,
}

#[derive(Clone, Copy, Debug)]
enum Runtime {
    TwoWorkers,
    OneThread,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:18190/".into());
    let rounds: usize = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let secs: u64 = args.get(3).map_or(Ok(5), |s| s.parse())?;
    let variants = [
        (Client::Reqwest, Runtime::TwoWorkers),
        (Client::Hyper, Runtime::TwoWorkers),
        (Client::Reqwest, Runtime::OneThread),
        (Client::Hyper, Runtime::OneThread),
    ];
    println!("round\tclient\truntime\tp50_us\tp95_us\tcount");
    for round in 0..rounds {
        // Rotate the order so no variant always runs first.
        for k in 0..variants.len() {
            let (client, runtime) = variants[(k + round) % variants.len()];
            let rt = match runtime {
                Runtime::TwoWorkers => tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?,
                Runtime::OneThread => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
            };
            let h = rt.block_on(measure(client, &url, Duration::from_secs(secs)))?;
            println!(
                "{round}\t{client:?}\t{runtime:?}\t{}\t{}\t{}",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.95),
                h.len()
            );
        }
    }
    Ok(())
}

/// One request each millisecond for `length`, after a second's warm-up;
/// each latency from just before the send to the body's last byte.
async fn measure(client: Client, url: &str, length: Duration) -> anyhow::Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new(3)?;
    let uri: hyper::Uri = url.parse()?;
    let reqwest = reqwest::Client::new();
    let addr = format!(
        "{}:{}",
        uri.host().unwrap_or("127.0.0.1"),
        uri.port_u16().unwrap_or(80)
    );
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    // A late tick is not made up with back-to-back sends: one at a time.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let warm_until = Instant::now() + Duration::from_secs(1);
    let end = warm_until + length;
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= end {
            break;
        }
        let start = Instant::now();
        match client {
            Client::Reqwest => {
                let r = reqwest.get(url).send().await?;
                r.bytes().await?;
            }
            Client::Hyper => {
                sender.ready().await?;
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                let req = hyper::Request::get(path)
                    .header(hyper::header::HOST, &addr)
                    .body(Empty::<Bytes>::new())?;
                let r = sender.send_request(req).await?;
                r.into_body().collect().await?;
            }
        }
        if now >= warm_until {
            h.record(start.elapsed().as_micros() as u64)?;
        }
    }
    Ok(h)
}
