//! Reference-server instances as child processes (each optionally in its
//! own CPU-quota cgroup), for the scaling run and the main job.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::cgroup::{Controller, Group};

/// Which backend the instances run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Memory,
    Real,
}

impl Backend {
    pub fn flag(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Real => "real",
        }
    }
}

/// How to start an instance.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub bin: PathBuf,
    pub backend: Backend,
    pub admin_token: String,
    /// Shared by the instances so any of them accepts any one's tokens.
    pub token_secret: String,
    /// Real stack: isolates this fleet's keys, topics and schema.
    pub namespace: String,
    /// Where each instance's log goes.
    pub log_dir: PathBuf,
}

impl ServerSpec {
    /// The `ticket-server` next to the running executable (cargo puts
    /// every binary of the workspace in one directory).
    pub fn default_bin() -> PathBuf {
        let exe = std::env::current_exe().unwrap_or_default();
        let dir = exe.parent().unwrap_or(Path::new("."));
        let sibling = dir.join("ticket-server");
        if sibling.exists() {
            sibling
        } else {
            // Test binaries live one level down, in deps/.
            dir.parent().unwrap_or(dir).join("ticket-server")
        }
    }
}

pub struct Instance {
    pub base: String,
    child: Child,
    group: Group,
}

impl Instance {
    /// Quota periods in which this instance was throttled.
    pub fn throttled_periods(&self) -> Option<u64> {
        self.group.throttled_periods()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its cgroup's directory, under a quota.
    pub fn cgroup(&self) -> Option<&Path> {
        self.group.dir()
    }
}

/// Instances started together; stopped (killed) on `stop` or drop.
pub struct Fleet {
    pub instances: Vec<Instance>,
}

const START_DEADLINE: Duration = Duration::from_secs(90);

/// Read by `#[tokio::main]` for its number of worker threads.
const WORKERS_ENV: &str = "TOKIO_WORKER_THREADS";

/// Tokio workers for an instance limited to `cores` CPUs: one per whole
/// CPU of its quota, at least one.
pub fn workers_for(cores: f64) -> usize {
    (cores.ceil() as usize).max(1)
}

impl Fleet {
    /// Starts `n` instances, each limited to `cores` CPUs by `controller`.
    pub async fn start(
        spec: &ServerSpec,
        n: usize,
        controller: &Controller,
        cores: f64,
        label: &str,
    ) -> anyhow::Result<Fleet> {
        if !spec.bin.exists() {
            bail!(
                "server binary {} not found (build it with `cargo build --release -p ticket-server`, or pass --server-bin)",
                spec.bin.display()
            );
        }
        std::fs::create_dir_all(&spec.log_dir)?;
        let mut fleet = Fleet {
            instances: Vec::with_capacity(n),
        };
        for i in 0..n {
            let group = controller.create(
                &format!("ticketbench-{}-{label}-{i}", std::process::id()),
                cores,
            )?;
            let log_path = spec.log_dir.join(format!("{label}-instance-{i}.log"));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let mut command = Command::new(&spec.bin);
            if group.dir().is_some() {
                // The child joins its cgroup only after it starts, so tokio
                // would size its runtime for the whole machine; more workers
                // than the quota's CPUs only add wake-ups and steals (at
                // 150 purchases/s one worker spent 15-20% less CPU than two,
                // reports/producer-poll.md).
                command.env(WORKERS_ENV, workers_for(cores).to_string());
            }
            let mut child = command
                .args(["--listen", "127.0.0.1:0", "--backend", spec.backend.flag()])
                .args(["--admin-token", &spec.admin_token])
                .args(["--token-secret", &spec.token_secret])
                .args(["--namespace", &spec.namespace])
                .args(["--instance-id", &format!("{label}-{i}")])
                // verify's seat-map check expects its default hold TTL.
                .args(["--hold-ttl", &format!("{}ms", verify::DEFAULT_HOLD_TTL_MS)])
                // A load run measures the server, not its abuse limits
                // (ticket-server's AbuseLimits::OFF_FLAGS).
                .args(["--rate-limit-rps", "0", "--user-rate-limit-rps", "0"])
                .args([
                    "--header-read-timeout-ms",
                    "0",
                    "--body-read-timeout-ms",
                    "0",
                ])
                .args(["--max-connections", "0", "--max-sse-streams", "0"])
                .args(["--max-sse-per-token", "0"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log.try_clone()?)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", spec.bin.display()))?;
            if let Some(pid) = child.id() {
                group.add(pid)?;
            }
            let stdout = child.stdout.take().context("instance stdout")?;
            let base = tokio::time::timeout(START_DEADLINE, listening_line(stdout, log))
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "instance {i} did not start within {START_DEADLINE:?} (see {})",
                        log_path.display()
                    )
                })?
                .with_context(|| format!("instance {i} (see {})", log_path.display()))?;
            fleet.instances.push(Instance { base, child, group });
        }
        Ok(fleet)
    }

    pub fn hosts(&self) -> Vec<String> {
        self.instances.iter().map(|i| i.base.clone()).collect()
    }

    /// Stops every instance and waits for it to exit.
    pub async fn stop(mut self) {
        for instance in &mut self.instances {
            let _ = instance.child.start_kill();
        }
        for instance in &mut self.instances {
            let _ = tokio::time::timeout(Duration::from_secs(10), instance.child.wait()).await;
        }
    }
}

/// Reads the server's `listening on http://ADDR` line. Every line of its
/// stdout, which is where its tracing log goes, is copied into `log` (the
/// file its stderr writes to), before that line and after it, so the log
/// is whole and the server never blocks on a full pipe.
async fn listening_line(
    stdout: tokio::process::ChildStdout,
    log: std::fs::File,
) -> anyhow::Result<String> {
    let mut lines = BufReader::new(stdout).lines();
    let mut log = tokio::fs::File::from_std(log);
    while let Some(line) = lines.next_line().await? {
        copy_line(&mut log, &line).await;
        if let Some(base) = line.strip_prefix("listening on ") {
            let base = base.trim().to_owned();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    copy_line(&mut log, &line).await;
                }
            });
            return Ok(base);
        }
    }
    bail!("exited before listening")
}

/// A log that cannot be written loses its lines, not the instance.
async fn copy_line(log: &mut tokio::fs::File, line: &str) {
    let _ = log.write_all(format!("{line}\n").as_bytes()).await;
    let _ = log.flush().await;
}
