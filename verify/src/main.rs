//! Run with: `cargo run --release -p verify` (against the reference server
//! started in process), or `verify --target http://host:port --admin-token T`
//! against any server that speaks the contract.
//!
//! Exit status: 0 every check passed, 1 a check failed, 2 the run could not
//! be carried out.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let options = verify::Options::parse();
    match verify::run(&options).await {
        Ok(outcome) => {
            print!("{}", outcome.verdict.human());
            if let Err(e) = outcome.verdict.write(&options.out, &outcome.history) {
                eprintln!(
                    "ERROR could not write results to {}: {e}",
                    options.out.display()
                );
                return ExitCode::from(2);
            }
            println!(
                "results: {0}/verdict.json {0}/junit.xml {0}/history.jsonl",
                options.out.display()
            );
            ExitCode::from(outcome.verdict.exit_code() as u8)
        }
        Err(e) => {
            eprintln!("ERROR the run could not be carried out: {e}");
            ExitCode::from(2)
        }
    }
}
