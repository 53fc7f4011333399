//! Any deployment, through the user's own commands: `--fleet-cmd 'CMD {n}'`
//! brings it to N instances (`docker compose up -d --scale server={n}`,
//! `kubectl scale deployment/ticket-server --replicas={n}`), `--hosts-cmd
//! 'CMD {n}'` prints where they are (whitespace- or comma-separated base
//! URLs), and every one must answer the health endpoint before a step
//! starts. After the last step the fleet command runs with `{n}` = 0.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::deploy::Deployment;
use super::meters::{self, Meters};
use crate::cgroup::Flavour;

pub struct Commands {
    pub fleet_cmd: String,
    pub hosts_cmd: String,
    /// How long a fleet may take to answer.
    pub ready_within: Duration,
}

/// The hosts of one step's fleet.
pub struct Hosts(Vec<String>);

/// Runs `cmd` with `{n}` replaced by `n` through `sh -c`; its stdout.
async fn shell(cmd: &str, n: usize, within: Duration) -> anyhow::Result<String> {
    let line = cmd.replace("{n}", &n.to_string());
    let run = tokio::process::Command::new("sh")
        .args(["-c", &line])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(within, run)
        .await
        .map_err(|_| anyhow::anyhow!("`{line}` did not finish within {within:?}"))?
        .with_context(|| format!("running `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The base URLs in a command's output.
pub fn parse_hosts(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|h| !h.is_empty())
        .map(|h| h.trim_end_matches('/').to_owned())
        .collect()
}

/// Waits until every host answers `GET /actuator/health` with 200.
pub async fn wait_healthy(hosts: &[String], within: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + within;
    for host in hosts {
        loop {
            let ok = client
                .get(format!("{host}/actuator/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!("{host} did not answer /actuator/health within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

impl Deployment for Commands {
    type Fleet = Hosts;

    fn describe(&self) -> String {
        format!(
            "the user's deployment: fleet `{}`, hosts `{}`",
            self.fleet_cmd, self.hosts_cmd
        )
    }

    fn quota(&self) -> Flavour {
        Flavour::None
    }

    async fn up(&self, n: usize, _label: &str, _cpus: Option<f64>) -> anyhow::Result<Hosts> {
        shell(&self.fleet_cmd, n, self.ready_within).await?;
        let hosts = parse_hosts(&shell(&self.hosts_cmd, n, self.ready_within).await?);
        if hosts.is_empty() {
            bail!("`{}` named no hosts for {n} instance(s)", self.hosts_cmd);
        }
        wait_healthy(&hosts, self.ready_within).await?;
        Ok(Hosts(hosts))
    }

    fn hosts(&self, fleet: &Hosts) -> Vec<String> {
        fleet.0.clone()
    }

    /// The instances' processes are the deployment's; the shared stack is
    /// sampled where it runs on this machine.
    fn meters(&self, _fleet: &Hosts) -> Meters {
        Meters {
            instances: Vec::new(),
            shared: meters::shared_stack(),
        }
    }

    async fn down(&self, _fleet: Hosts) {}

    async fn finish(&self) {
        let _ = shell(&self.fleet_cmd, 0, self.ready_within).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_split_on_whitespace_and_commas() {
        assert_eq!(
            parse_hosts("http://a:1/\nhttp://b:2, http://c:3\n"),
            ["http://a:1", "http://b:2", "http://c:3"]
        );
        assert!(parse_hosts(" \n").is_empty());
    }

    #[tokio::test]
    async fn a_failing_command_says_which_and_why() {
        let e = shell("echo nope >&2; exit 3 # {n}", 2, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("# 2") && e.contains("nope"), "{e}");
        let out = shell("echo {n}", 4, Duration::from_secs(5)).await.unwrap();
        assert_eq!(out.trim(), "4");
    }

    #[tokio::test]
    async fn a_host_that_never_answers_fails_at_the_deadline() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = Instant::now();
        let e = wait_healthy(
            &[format!("http://127.0.0.1:{port}")],
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("did not answer"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
