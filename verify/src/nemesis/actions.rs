//! What a fault does, at its start and at its end.
//!
//! With `--fault-cmd KIND='command'` the user's command does it (docker
//! compose, kubectl, ...), run by `sh -c` with the phase as `$1`. Without
//! one, the reference stack's local processes are faulted:
//! - instances (`--instance-pid`, taken in turn): `kill-instance` sends
//!   SIGKILL and, at the end, starts the same command line again (same
//!   arguments, environment and directory, read from `/proc` first);
//!   `pause-instance` sends SIGSTOP, then SIGCONT;
//! - the services of `scripts/services.sh` (`--services-script`, with the
//!   environment's REDIS_PORT, PG_PORT, KAFKA_PORT and
//!   TICKETBENCH_SERVICES_DIR): `restart-redis` kills Redis (SIGKILL, by
//!   its pid file) and starts it on its data (an append-only file when it
//!   runs with REDIS_APPENDONLY=yes), `lose-redis` also removes its data
//!   first, `restart-postgres` and `restart-broker` stop and start them,
//!   `pause-broker` stops the broker's process with SIGSTOP, then SIGCONT;
//!   `failover-redis` (the stack started with `services.sh start-sentinel`:
//!   a replica and three Sentinels) lets the replica lag, kills the
//!   primary and waits for the Sentinels to promote the replica, then at
//!   the end starts the old primary again as a replica (`services.sh
//!   failover start|end`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::Command;

use super::{FaultCmd, FaultKind, FaultSpec};
use crate::history::History;

/// Longest a fault's action may take before it counts as failed.
const ACTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a killed instance may take to be gone.
const GONE_DEADLINE: Duration = Duration::from_secs(10);

/// The faults of a run and how to inject them.
pub struct Nemesis {
    pub schedule: Vec<FaultSpec>,
    commands: Vec<FaultCmd>,
    /// The instances' current processes (a restarted one replaces its pid).
    pids: Mutex<Vec<u32>>,
    services_script: PathBuf,
    /// Where restarted instances write their output.
    log_dir: PathBuf,
}

/// A phase's result as the history records it.
struct Done {
    ok: bool,
    what: String,
}

/// What a fault's start leaves for its end.
enum Undo {
    Nothing,
    Restart { pid: u32, spawn: Spawn },
    Continue { pid: u32 },
}

/// A process' command line, environment and directory, to start it again.
struct Spawn {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
}

impl Nemesis {
    /// The nemesis of `schedule`, or why it cannot run (before any request
    /// is sent): a fault with neither a `--fault-cmd` nor a local action.
    pub fn new(
        schedule: Vec<FaultSpec>,
        commands: Vec<FaultCmd>,
        pids: Vec<u32>,
        services_script: PathBuf,
        log_dir: PathBuf,
    ) -> Result<Self, String> {
        for f in &schedule {
            if commands.iter().any(|c| c.kind == f.kind) {
                continue;
            }
            if f.kind.on_instance() && pids.is_empty() {
                return Err(format!(
                    "{} needs --instance-pid (the target's processes) or --fault-cmd {}='...'",
                    f.kind, f.kind
                ));
            }
            if !f.kind.on_instance() && !services_script.is_file() {
                return Err(format!(
                    "{} acts through {} (not found; set --services-script) or --fault-cmd {}='...'",
                    f.kind,
                    services_script.display(),
                    f.kind
                ));
            }
        }
        Ok(Nemesis {
            schedule,
            commands,
            pids: Mutex::new(pids),
            services_script,
            log_dir,
        })
    }

    /// The current instance processes (restarted ones included).
    pub fn pids(&self) -> Vec<u32> {
        self.pids.lock().expect("pid list poisoned").clone()
    }

    /// Injects every fault of the schedule, each `start` after `released`
    /// (the release's history time, ns), records each phase, and returns
    /// once every fault has ended.
    pub async fn run(&self, history: &History, released: u64) {
        let faults = self.schedule.iter().enumerate().map(|(id, f)| async move {
            let due = |offset: Duration| {
                let at = released + offset.as_nanos() as u64;
                Duration::from_nanos(at.saturating_sub(history.now()))
            };
            tokio::time::sleep(due(f.start)).await;
            let invoked = history.now();
            let (done, undo) = self.start(id, f).await;
            note(history, id, f, "start", invoked, &done);
            tokio::time::sleep(due(f.start + f.duration)).await;
            let invoked = history.now();
            let done = self.end(id, f, undo).await;
            note(history, id, f, "end", invoked, &done);
        });
        futures_util::future::join_all(faults).await;
    }

    async fn start(&self, id: usize, f: &FaultSpec) -> (Done, Undo) {
        if let Some(cmd) = self.command(f.kind) {
            return (shell(cmd, id, f.kind, "start").await, Undo::Nothing);
        }
        match f.kind {
            FaultKind::KillInstance => {
                let pid = self.pick(id);
                match kill_instance(pid).await {
                    Ok(spawn) => (
                        Done::ok(format!("SIGKILL instance pid {pid}")),
                        Undo::Restart { pid, spawn },
                    ),
                    Err(e) => (Done::failed(e), Undo::Nothing),
                }
            }
            FaultKind::PauseInstance => {
                let pid = self.pick(id);
                let done = signal(pid, "STOP").await;
                let undo = if done.ok {
                    Undo::Continue { pid }
                } else {
                    Undo::Nothing
                };
                (done, undo)
            }
            FaultKind::RestartRedis => (crash("redis", false).await, Undo::Nothing),
            FaultKind::LoseRedis => (crash("redis", true).await, Undo::Nothing),
            FaultKind::RestartPostgres => (
                self.services(&[&["stop-one", "postgres"]]).await,
                Undo::Nothing,
            ),
            FaultKind::RestartBroker => (
                self.services(&[&["stop-one", "kafka"]]).await,
                Undo::Nothing,
            ),
            FaultKind::PauseBroker => match service_pid("kafka") {
                Ok(pid) => {
                    let done = signal(pid, "STOP").await;
                    let undo = if done.ok {
                        Undo::Continue { pid }
                    } else {
                        Undo::Nothing
                    };
                    (done, undo)
                }
                Err(e) => (Done::failed(e), Undo::Nothing),
            },
            FaultKind::FailoverRedis => (
                self.services(&[&["failover", "start"]]).await,
                Undo::Nothing,
            ),
        }
    }

    async fn end(&self, id: usize, f: &FaultSpec, undo: Undo) -> Done {
        if let Some(cmd) = self.command(f.kind) {
            return shell(cmd, id, f.kind, "end").await;
        }
        match (f.kind, undo) {
            (_, Undo::Restart { pid, spawn }) => match self.respawn(&spawn, pid) {
                Ok(new) => {
                    let mut pids = self.pids.lock().expect("pid list poisoned");
                    for p in pids.iter_mut().filter(|p| **p == pid) {
                        *p = new;
                    }
                    Done::ok(format!("started instance again as pid {new}"))
                }
                Err(e) => Done::failed(e),
            },
            (_, Undo::Continue { pid }) => signal(pid, "CONT").await,
            (FaultKind::RestartRedis | FaultKind::LoseRedis, _) => {
                self.services(&[&["start-one", "redis"]]).await
            }
            (FaultKind::RestartPostgres, _) => self.services(&[&["start-one", "postgres"]]).await,
            (FaultKind::RestartBroker, _) => self.services(&[&["start-one", "kafka"]]).await,
            (FaultKind::FailoverRedis, _) => self.services(&[&["failover", "end"]]).await,
            (kind, Undo::Nothing) => {
                Done::failed(format!("{kind}: nothing to undo (its start failed)"))
            }
        }
    }

    fn command(&self, kind: FaultKind) -> Option<&str> {
        self.commands
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| c.command.as_str())
    }

    /// The instance the `id`th fault acts on: the instances in turn.
    fn pick(&self, id: usize) -> u32 {
        let pids = self.pids.lock().expect("pid list poisoned");
        pids[id % pids.len()]
    }

    /// Runs `scripts/services.sh` once per argument list, in order.
    async fn services(&self, steps: &[&[&str]]) -> Done {
        let mut said = Vec::new();
        for args in steps {
            let mut cmd = Command::new("bash");
            cmd.arg(&self.services_script).args(*args);
            match run(cmd).await {
                Ok(()) => said.push(format!("services.sh {}", args.join(" "))),
                Err(e) => return Done::failed(format!("services.sh {}: {e}", args.join(" "))),
            }
        }
        Done::ok(said.join("; "))
    }

    fn respawn(&self, spawn: &Spawn, old: u32) -> Result<u32, String> {
        let (program, args) = spawn.argv.split_first().ok_or("empty command line")?;
        std::fs::create_dir_all(&self.log_dir).map_err(|e| e.to_string())?;
        let log_path = self.log_dir.join(format!("instance-after-{old}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = std::process::Command::new(program)
            .args(args)
            .env_clear()
            .envs(spawn.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spawn.cwd)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {program} again: {e}"))?;
        Ok(child.id())
    }
}

impl Done {
    fn ok(what: String) -> Self {
        Done { ok: true, what }
    }
    fn failed(what: String) -> Self {
        Done { ok: false, what }
    }
}

fn note(history: &History, id: usize, f: &FaultSpec, phase: &str, invoked: u64, done: &Done) {
    let value: Value = json!({
        "fault": id,
        "kind": f.kind.as_str(),
        "phase": phase,
        "invoked": invoked,
        "ok": done.ok,
        "action": done.what,
        "plannedStartMs": f.start.as_millis() as u64,
        "plannedDurationMs": f.duration.as_millis() as u64,
    });
    history.note("nemesis", value);
}

async fn shell(command: &str, id: usize, kind: FaultKind, phase: &str) -> Done {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", command, "sh", phase])
        .env("NEMESIS_PHASE", phase)
        .env("NEMESIS_FAULT", id.to_string())
        .env("NEMESIS_KIND", kind.as_str());
    match run(cmd).await {
        Ok(()) => Done::ok(format!("--fault-cmd {kind} {phase}")),
        Err(e) => Done::failed(format!("--fault-cmd {kind} {phase}: {e}")),
    }
}

/// Runs a command to its end within [`ACTION_TIMEOUT`]; its failure says
/// the exit status and the end of its error output.
async fn run(mut cmd: Command) -> Result<(), String> {
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(ACTION_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("still running after {} s", ACTION_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    if tail.is_empty() {
        return Err(out.status.to_string());
    }
    Err(format!("{} ({})", out.status, tail.join(" / ")))
}

async fn signal(pid: u32, sig: &str) -> Done {
    let mut cmd = Command::new("kill");
    cmd.args(["-s", sig, &pid.to_string()]);
    match run(cmd).await {
        Ok(()) => Done::ok(format!("SIG{sig} instance pid {pid}")),
        Err(e) => Done::failed(format!("SIG{sig} pid {pid}: {e}")),
    }
}

/// The data directory of `scripts/services.sh`, as it computes it.
fn services_dir() -> PathBuf {
    std::env::var_os("TICKETBENCH_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ticketbench-services"))
}

/// The process of a service `scripts/services.sh` started (its pid file).
fn service_pid(name: &str) -> Result<u32, String> {
    let file = services_dir().join(format!("{name}.pid"));
    std::fs::read_to_string(&file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// A service killed with SIGKILL (a crash: nothing flushed on the way
/// out) and, with `wipe`, its data removed, so it starts empty.
async fn crash(name: &str, wipe: bool) -> Done {
    let pid = match service_pid(name) {
        Ok(pid) => pid,
        Err(e) => return Done::failed(e),
    };
    if let Err(e) = kill_and_wait(pid).await {
        return Done::failed(format!("{name}: {e}"));
    }
    if wipe {
        let data = services_dir().join(name);
        if let Err(e) = std::fs::remove_dir_all(&data) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Done::failed(format!("removing {}: {e}", data.display()));
            }
        }
        return Done::ok(format!("SIGKILL {name} pid {pid}, its data removed"));
    }
    Done::ok(format!("SIGKILL {name} pid {pid}"))
}

/// SIGKILL, then waits until the process is gone.
async fn kill_and_wait(pid: u32) -> Result<(), String> {
    let done = signal(pid, "KILL").await;
    if !done.ok {
        return Err(done.what);
    }
    let until = tokio::time::Instant::now() + GONE_DEADLINE;
    while alive(pid) {
        if tokio::time::Instant::now() >= until {
            return Err(format!(
                "pid {pid} still alive {} s after SIGKILL",
                GONE_DEADLINE.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Reads how `pid` was started, kills it and waits until it is gone.
async fn kill_instance(pid: u32) -> Result<Spawn, String> {
    let spawn = read_spawn(pid)?;
    kill_and_wait(pid).await?;
    Ok(spawn)
}

fn read_spawn(pid: u32) -> Result<Spawn, String> {
    let proc = Path::new("/proc").join(pid.to_string());
    let split = |file: &str| -> Result<Vec<String>, String> {
        let bytes = std::fs::read(proc.join(file))
            .map_err(|e| format!("reading /proc/{pid}/{file}: {e}"))?;
        Ok(bytes
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    };
    let argv = split("cmdline")?;
    if argv.is_empty() {
        return Err(format!("pid {pid} has no command line (not running?)"));
    }
    let env = split("environ")?
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let cwd = std::fs::read_link(proc.join("cwd"))
        .map_err(|e| format!("reading /proc/{pid}/cwd: {e}"))?;
    Ok(Spawn { argv, env, cwd })
}

/// Whether `pid` still runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}
