//! The known-delay stand-in server as a process, for comparing load
//! generators against it (scripts/loadgen-vs-oha.sh): every GET answers
//! after `--delay-ms`. Prints its base URL, then serves until killed.

use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Milliseconds each read (GET) waits before answering.
    #[arg(long, default_value_t = 20.0)]
    delay_ms: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.delay_ms >= 0.0 && args.delay_ms.is_finite(),
        "--delay-ms must be zero or a positive number"
    );
    let base = testkit::fake::delayed(Duration::from_secs_f64(args.delay_ms / 1000.0)).await;
    println!("{base}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
