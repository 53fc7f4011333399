//! The verifier: drives any server that speaks the ticketing contract
//! (`docs/CONTRACT.md`) through HTTP alone, records a Jepsen-style
//! history, and judges it (`docs/VERIFY.md`).
//!
//! Layout:
//! - [`options`]: the flags.
//! - [`target`]: a base URL, or the reference server in process.
//! - [`capabilities`]: what the target implements (the seat map or not).
//! - [`client`]: the contract as a recording client (and an SSE reader).
//! - [`history`]: invoke / ok / fail / info operations, written as JSON
//!   lines and read back.
//! - [`scenarios`]: the race, the queue, the token rules, the seat map: they
//!   drive and record.
//! - [`recorded`]: each scenario rebuilt from the history alone.
//! - [`checks`]: one module per check, registered in one table: they judge
//!   the recorded run and name a witness ([`checks::judge`], live and
//!   offline).
//! - [`verdict`]: headline, per-check results, `verdict.json`, `junit.xml`.
//! - [`shard`]: one race raced by several processes (`--shard I/N`).
//! - [`nemesis`]: faults injected while the buyers race (`--nemesis`).
//!
//! Exit status of the binary: 0 all checks passed, 1 a check failed, 2 the
//! run itself could not be carried out.

pub mod capabilities;
pub mod checks;
pub mod client;
pub mod export;
pub mod history;
pub mod nemesis;
pub mod options;
mod progress;
pub mod recorded;
pub mod scenarios;
pub mod shard;
pub mod stores;
pub mod target;
pub mod verdict;

use std::time::Duration;

pub use history::History;
pub use options::{CheckName, Options, DEFAULT_HOLD_TTL_MS};
pub use target::Target;
pub use verdict::{CheckReport, Verdict};

use client::Client;
use progress::Progress;
use scenarios::race::RaceSpec;
use scenarios::Watch;

/// Why a run could not be carried out (exit status 2), as opposed to a
/// check failing (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("target unreachable: {0}")]
    Unreachable(String),
    #[error("set-up refused by the target: {0}")]
    SetupRefused(String),
    #[error("--checks {check} cannot run on this target: {reason}")]
    Unsupported { check: &'static str, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Other(String),
}

/// A finished run: the verdict and the history it was judged from.
pub struct Outcome {
    pub verdict: Verdict,
    pub history: History,
}

/// Runs the selected checks against the target named in `options` (the
/// in-process reference server when none is).
pub async fn run(options: &Options) -> Result<Outcome, RunError> {
    let target = if options.target.is_empty() {
        let ttl = format!("{}ms", options.hold_ttl_ms);
        Target::embedded(&["--hold-ttl", &ttl]).await?
    } else {
        Target::external_many(&options.target, options.admin_token.as_deref())?
    };
    let outcome = run_against(&target, options).await;
    target.stop().await;
    outcome
}

/// Runs the selected checks against an already started target.
pub async fn run_against(target: &Target, options: &Options) -> Result<Outcome, RunError> {
    let history = record_against(target, options).await?;
    // The verdict is the history's: the same judgement `verify judge` makes.
    let verdict = checks::judge(&history.ops())
        .map_err(|e| RunError::Other(format!("the run's own history: {e}")))?;
    Ok(Outcome { verdict, history })
}

/// Runs one shard of the race (`--shard I/N`) against `--target` and
/// returns its history, unjudged: alone it is a part of the race.
pub async fn run_shard(options: &Options) -> Result<History, RunError> {
    if options.target.is_empty() {
        return Err(RunError::Usage(
            "--shard needs --target: the shards race on one server's stock".into(),
        ));
    }
    let target = Target::external_many(&options.target, options.admin_token.as_deref())?;
    record_against(&target, options).await
}

/// Drives the target through the selected checks and returns the history.
async fn record_against(target: &Target, options: &Options) -> Result<History, RunError> {
    validate(options)?;
    // A fault the nemesis cannot inject is refused before any request.
    let nemesis = if options.nemesis.is_empty() {
        None
    } else {
        Some(
            nemesis::actions::Nemesis::new(
                options.nemesis.clone(),
                options.fault_cmd.clone(),
                options.instance_pid.clone(),
                options.services_script.clone(),
                options.out.clone(),
            )
            .map_err(RunError::Usage)?,
        )
    };
    let plan = nemesis::persist::Plan::new(
        nemesis.as_ref(),
        Duration::from_millis(options.release_over_ms),
        Duration::from_secs(options.recovery_deadline),
    );
    let history = History::new();
    let mut run_note = recorded::run_note(&target.label, options);
    // The wall-clock anchor: shards' histories merge on it.
    run_note["startedUnixNs"] = history.started_unix_ns().into();
    history.note("run", run_note);
    let client = Client::new(
        &target.bases,
        &target.admin_token,
        Duration::from_secs(options.request_timeout),
        history.clone(),
    );
    let progress = Progress::new(options.quiet);
    progress.step(format!("reaching {}", target.base));
    if let client::Reply::Transport(e) = client.event("checker", "verify-probe").await.reply {
        progress.finish();
        return Err(RunError::Unreachable(format!("{}: {e}", target.base)));
    }
    let capabilities = match capabilities::probe(&client).await {
        Ok(c) => c,
        Err(e) => {
            progress.finish();
            return Err(e);
        }
    };
    // A check named with --checks must run; a default one the target
    // cannot run is reported as not applicable, with the reason.
    for check in options.selected() {
        if let Some(reason) = capabilities.lacks(check) {
            if options.named(check) {
                progress.finish();
                return Err(RunError::Unsupported {
                    check: check.as_str(),
                    reason: reason.to_owned(),
                });
            }
        }
    }
    let can = |check: CheckName| options.runs(check) && capabilities.lacks(check).is_none();

    let watch = if options.poll {
        Watch::Poll
    } else {
        Watch::Sse
    };
    let stores = match (
        &options.redis_url,
        &options.kafka_brokers,
        &options.postgres_url,
    ) {
        (Some(r), Some(k), Some(p)) => Some(stores::Stores {
            redis_url: r.clone(),
            kafka_brokers: k.clone(),
            postgres_url: p.clone(),
            namespace: options.namespace.clone(),
        }),
        _ => None,
    };
    let nonce = format!("{:08x}", rand::random::<u32>());
    let part = options.shard.map(|shard| shard::Part {
        shard,
        start_at: options.start_at,
    });
    let result: Result<(), RunError> = async {
        if options.runs(CheckName::Oversell) {
            for run in 1..=options.repeat {
                for (k, spec) in race_specs(options).into_iter().enumerate() {
                    let event_id = match &options.run_id {
                        Some(id) if part.is_some() => shard::event_id(id),
                        _ => format!("verify-{nonce}-r{run}-{k}"),
                    };
                    let race = scenarios::race::run(
                        &client,
                        spec,
                        run,
                        event_id,
                        watch,
                        Duration::from_secs(options.confirm_deadline),
                        &progress,
                        part,
                        plan,
                        nemesis.as_ref(),
                    )
                    .await?;
                    if let (Some(stores), None) = (&stores, part) {
                        progress.step(format!("race {run}: reading Redis, Kafka and PostgreSQL"));
                        let accepted = checks::stores::accepted(&race);
                        let seen = stores
                            .observe(
                                &race.event_id,
                                &accepted,
                                Duration::from_secs(options.store_deadline),
                            )
                            .await;
                        history.note("stores", serde_json::json!({ "observed": seen }));
                    }
                }
            }
        }
        if options.runs(CheckName::Fifo) || options.runs(CheckName::Display) {
            scenarios::queue::run(
                &client,
                format!("verify-{nonce}-queue"),
                options.queue_users,
                options.fifo_capacity,
                watch,
                &progress,
            )
            .await?;
        }
        if options.runs(CheckName::Tokens) {
            progress.step("tokens: refusals and stock");
            scenarios::tokens::run(
                &client,
                format!("verify-{nonce}-tokens"),
                format!("verify-{nonce}-tokens-other"),
                watch,
            )
            .await?;
        }
        if options.runs(CheckName::Pause) {
            progress.step("pause: admission held, then resumed in order");
            scenarios::pause::run(&client, format!("verify-{nonce}-pause")).await?;
        }
        if can(CheckName::Seatmap) {
            let spec = scenarios::seatmap::SeatSpec {
                users: options.seat_users,
                seats: options.seats,
                hot: options.hot_seats,
                ttl: Duration::from_millis(options.hold_ttl_ms),
                tolerance: Duration::from_millis(options.expiry_tolerance_ms),
            };
            let seats = scenarios::seatmap::run(
                &client,
                spec,
                format!("verify-{nonce}-seats"),
                watch,
                &progress,
            )
            .await?;
            if let Some(stores) = &stores {
                progress.step("seat map: reading its events on Kafka and its rows in PostgreSQL");
                let seen = stores
                    .observe_seat_events(
                        &seats.concert_id,
                        Duration::from_secs(options.store_deadline),
                    )
                    .await;
                history.note("seat-stores", serde_json::json!({ "observed": seen }));
            }
        }
        Ok(())
    }
    .await;
    progress.finish();
    // A run the target throttled is not judged, whatever else went wrong:
    // a set-up refused with 429 says nothing about the contract either.
    checks::throttled::refuse(&history.ops()).map_err(RunError::Other)?;
    result?;
    Ok(history)
}

/// Re-judges a recorded run from its `history.jsonl`: the verdict the live
/// run reached on the same history.
pub fn judge_file(path: &std::path::Path) -> Result<Verdict, RunError> {
    judge_files(&[path.to_owned()])
}

/// Judges the histories of one race's shards (`--shard I/N`) merged into
/// one ([`history::merge`]); one history is judged as it is.
pub fn judge_files(paths: &[std::path::PathBuf]) -> Result<Verdict, RunError> {
    let mut histories = Vec::with_capacity(paths.len());
    for path in paths {
        let ops = history::read_jsonl(path).map_err(|e| RunError::Usage(e.to_string()))?;
        histories.push((path.display().to_string(), ops));
    }
    let name = match paths {
        [one] => one.display().to_string(),
        _ => "the merged histories".to_owned(),
    };
    let ops = history::merge::merge(histories).map_err(RunError::Usage)?;
    checks::judge(&ops).map_err(|e| RunError::Usage(format!("{name}: {e}")))
}

/// The race as configured, then (unless `--no-variants`) quantity 2, and a
/// stock that quantity 2 does not divide.
pub fn race_specs(options: &Options) -> Vec<RaceSpec> {
    let main = RaceSpec {
        buyers: options.buyers,
        stock: options.stock,
        quantity: options.quantity,
    };
    let mut specs = vec![main];
    // Shards race once, for one event's stock.
    if !options.no_variants && options.shard.is_none() {
        let odd_stock = if options.stock % 2 == 0 {
            options.stock.saturating_sub(1)
        } else {
            options.stock
        };
        for v in [
            RaceSpec {
                quantity: 2,
                ..main
            },
            RaceSpec {
                quantity: 2,
                stock: odd_stock,
                ..main
            },
        ] {
            if !specs
                .iter()
                .any(|s| s.stock == v.stock && s.quantity == v.quantity)
            {
                specs.push(v);
            }
        }
    }
    specs
}

fn validate(options: &Options) -> Result<(), RunError> {
    let bad = |m: &str| Err(RunError::Usage(m.to_owned()));
    if options.buyers == 0 {
        return bad("--buyers must be at least 1");
    }
    if options.quantity == 0 {
        return bad("--quantity must be at least 1");
    }
    if options.repeat == 0 {
        return bad("--repeat must be at least 1");
    }
    if let Some(shard) = options.shard {
        shard::validate(options, shard).map_err(RunError::Usage)?;
    }
    if !options.nemesis.is_empty() && !options.runs(CheckName::Oversell) {
        return bad("--nemesis faults the races: select the oversell check too");
    }
    if !options.nemesis.is_empty() && options.shard.is_some() {
        return bad("--nemesis is not for a shard: run it in one process");
    }
    if options.release_over_ms > 600_000 {
        return bad("--release-over-ms must be at most 600000");
    }
    if options.queue_users < 2 || options.fifo_capacity == 0 {
        return bad("--queue-users must be at least 2 and --fifo-capacity at least 1");
    }
    if options.seat_users == 0 || options.seats == 0 || options.seats > 1000 {
        return bad("--seat-users must be at least 1 and --seats 1..=1000");
    }
    if options.hot_seats == 0 || options.hot_seats > options.seats {
        return bad("--hot-seats must be 1..=--seats");
    }
    if !(100..=600_000).contains(&options.hold_ttl_ms) {
        return bad("--hold-ttl-ms must be 100..=600000");
    }
    if options.checks.contains(&CheckName::Stores) && !options.has_stores() {
        return bad("the stores check needs --redis-url, --kafka-brokers and --postgres-url");
    }
    if options.checks.contains(&CheckName::Stores)
        && !options.checks.contains(&CheckName::Oversell)
        && !options.checks.contains(&CheckName::Seatmap)
    {
        return bad(
            "the stores check judges the races and the seat map: select oversell or seatmap too",
        );
    }
    Ok(())
}
