use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "loadgen", version, about = "ticketbench's load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One load run against any server that speaks the contract.
    Run(loadgen::run::RunArgs),
    /// The scaling run: 1, 2, 4 instances on the shared real stack under
    /// equal CPU quotas; TPS, P95 and efficiency per instance count.
    Scale(loadgen::scale::ScaleArgs),
    /// Merges interval logs of several loadgen processes into one log and
    /// one summary, exactly.
    Merge {
        /// The `latency.hlog` files to merge.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        #[arg(long, default_value = "loadgen-merged")]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            let summary = loadgen::run::run(&args).await?;
            println!("{}", serde_json::to_string_pretty(&summary.transactions)?);
        }
        Command::Scale(args) => {
            let quiet = args.quiet;
            let report = loadgen::scale::run(&args, &|msg: &str| {
                if !quiet {
                    eprintln!("scale: {msg}");
                }
            })
            .await?;
            println!("{}", serde_json::to_string_pretty(&report.points)?);
        }
        Command::Merge { logs, out } => {
            let summary = loadgen::merge::run(&logs, &out)?;
            println!(
                "merged {} logs into {}: {} iterations",
                logs.len(),
                out.display(),
                summary.headline().map_or(0, |t| t.count)
            );
        }
    }
    Ok(())
}
