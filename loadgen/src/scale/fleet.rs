//! The bundled deployment: ticket-server processes on this machine, a
//! fresh fleet for every step in a namespace of its own, each instance in
//! its own CPU-quota cgroup; and verify's over-selling check against any
//! deployment's fleet.

use std::path::{Path, PathBuf};

use super::deploy::Deployment;
use super::meters::{self, Meters};
use crate::cgroup::{Controller, Flavour};
use crate::instances::{Backend, Fleet, ServerSpec};

pub struct Bundled {
    pub bin: PathBuf,
    pub admin_token: String,
    pub run_id: String,
    pub log_dir: PathBuf,
    pub controller: Controller,
}

impl Deployment for Bundled {
    type Fleet = Fleet;

    fn describe(&self) -> String {
        format!(
            "bundled ticket-server ({}), one process per instance",
            self.bin.display()
        )
    }

    fn quota(&self) -> Flavour {
        self.controller.flavour
    }

    /// Every step gets its own namespace (topics, keys, schema) so each
    /// starts from empty topics: tansu's memory store lists a partition's
    /// every batch on each fetch, so a topic that grew in earlier steps
    /// would slow later ones.
    async fn up(&self, n: usize, label: &str, cpus: Option<f64>) -> anyhow::Result<Fleet> {
        let spec = ServerSpec {
            bin: self.bin.clone(),
            backend: Backend::Real,
            admin_token: self.admin_token.clone(),
            token_secret: format!("scale-secret-{}", self.run_id),
            namespace: namespace(&self.run_id, n, label),
            log_dir: self.log_dir.clone(),
        };
        let none = Controller::none();
        let controller = if cpus.is_some() {
            &self.controller
        } else {
            &none
        };
        Fleet::start(
            &spec,
            n,
            controller,
            cpus.unwrap_or(0.0),
            &format!("n{n}-{label}"),
        )
        .await
    }

    fn hosts(&self, fleet: &Fleet) -> Vec<String> {
        fleet.hosts()
    }

    fn meters(&self, fleet: &Fleet) -> Meters {
        let instances = fleet
            .instances
            .iter()
            .enumerate()
            .filter_map(|(i, inst)| {
                let quota = inst.cgroup().and_then(cpus_of);
                Some(meters::instance(
                    format!("instance {i}"),
                    inst.pid()?,
                    quota,
                    inst.cgroup().map(Path::to_owned),
                ))
            })
            .collect();
        Meters {
            instances,
            shared: meters::shared_stack(),
        }
    }

    async fn down(&self, fleet: Fleet) {
        fleet.stop().await;
    }
}

/// The quota a cgroup holds, in CPUs (v1 or v2).
fn cpus_of(dir: &Path) -> Option<f64> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let (quota, period) = match read("cpu.max") {
        Some(max) => {
            let mut it = max.split_whitespace();
            (
                it.next()?.parse::<f64>().ok()?,
                it.next()?.parse::<f64>().ok()?,
            )
        }
        None => (
            read("cpu.cfs_quota_us")?.trim().parse().ok()?,
            read("cpu.cfs_period_us")?.trim().parse().ok()?,
        ),
    };
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// A step's namespace, kept to `[a-z0-9_]` and 40 characters (the
/// server's rule: it prefixes Redis keys, a PostgreSQL schema and Kafka
/// topics): the run id's last 14 characters, which tell runs apart, and a
/// hash of the step's label, which tells steps apart.
fn namespace(run_id: &str, n: usize, step: &str) -> String {
    let id: String = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let tail = &id[id.len().saturating_sub(14)..];
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let hash = step.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("sc{tail}_n{n}_{:08x}", hash as u32)
}

/// verify's over-selling check against the fleet.
pub(super) async fn guard(
    hosts: &[String],
    admin_token: &str,
    out: &Path,
) -> anyhow::Result<(bool, String)> {
    let target = verify::Target::external_many(hosts, Some(admin_token))
        .map_err(|e| anyhow::anyhow!("verify: {e}"))?;
    let mut options = verify::Options::defaults();
    options.checks = vec![verify::CheckName::Oversell];
    options.quiet = true;
    options.out = out.to_owned();
    let outcome = verify::run_against(&target, &options)
        .await
        .map_err(|e| anyhow::anyhow!("verify: {e}"))?;
    outcome.verdict.write(out, &outcome.history)?;
    Ok((outcome.verdict.pass, outcome.verdict.headline.clone()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn namespaces_fit_the_servers_rule_and_differ_by_step() {
        let a = super::namespace("20261121-163800-123456789", 16, "n16r3step5-12345");
        let b = super::namespace("20261121-163800-123456789", 16, "n16r3step6-12345");
        assert_ne!(a, b);
        for ns in [a, b] {
            assert!(ns.len() <= 40, "{ns}");
            assert!(ns
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
    }
}
