//! Run with: `cargo run --release -p verify` (against the reference server
//! started in process), or `verify --target http://host:port --admin-token T`
//! against any server that speaks the contract; `verify judge
//! verify-out/history.jsonl` re-judges a recorded run offline.
//!
//! Exit status: 0 every check passed, 1 a check failed, 2 the run could not
//! be carried out (or the history could not be read).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use verify::options::Command;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let options = verify::Options::parse();
    match &options.command {
        Some(Command::Judge { history, out }) => judge(history, out.as_deref()),
        Some(Command::Export { history, out }) => export(history, out),
        None => live(&options).await,
    }
}

async fn live(options: &verify::Options) -> ExitCode {
    if let Some(shard) = options.shard {
        return live_shard(options, shard).await;
    }
    match verify::run(options).await {
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

/// A shard's history alone is a part of the race: it is written, not
/// judged.
async fn live_shard(options: &verify::Options, shard: verify::shard::Shard) -> ExitCode {
    match verify::run_shard(options).await {
        Ok(history) => {
            let path = options.out.join("history.jsonl");
            let written =
                std::fs::create_dir_all(&options.out).and_then(|()| history.write_jsonl(&path));
            if let Err(e) = written {
                eprintln!("ERROR could not write {}: {e}", path.display());
                return ExitCode::from(2);
            }
            println!(
                "shard {shard} recorded: {}; judge the merged histories with \
                 `verify judge` and every shard's history.jsonl",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR the run could not be carried out: {e}");
            ExitCode::from(2)
        }
    }
}

fn judge(histories: &[PathBuf], out: Option<&Path>) -> ExitCode {
    match verify::judge_files(histories) {
        Ok(verdict) => {
            print!("{}", verdict.human());
            if let Some(out) = out {
                if let Err(e) = verdict.write_judgement(out) {
                    eprintln!("ERROR could not write results to {}: {e}", out.display());
                    return ExitCode::from(2);
                }
            }
            ExitCode::from(verdict.exit_code() as u8)
        }
        Err(e) => {
            eprintln!("ERROR the history could not be judged: {e}");
            ExitCode::from(2)
        }
    }
}

fn export(history: &Path, out: &Path) -> ExitCode {
    match verify::export::export_file(history, out) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR the history could not be exported: {e}");
            ExitCode::from(2)
        }
    }
}
