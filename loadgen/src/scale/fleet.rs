//! The fleets a scaling run measures: a fresh one for every step, in a
//! namespace of its own, and verify's over-selling check against one.

use std::path::Path;

use super::search::Search;
use crate::instances::{Backend, Fleet, ServerSpec};

impl Search<'_> {
    /// A fresh fleet of `n` for one step. Every step gets its own
    /// namespace (topics, keys, schema) so each starts from empty topics:
    /// tansu's memory store lists a partition's every batch on each fetch,
    /// so a topic that grew in earlier steps would slow later ones.
    pub(super) async fn fleet(&self, n: usize, step: &str) -> anyhow::Result<Fleet> {
        let spec = ServerSpec {
            bin: self
                .args
                .server_bin
                .clone()
                .unwrap_or_else(ServerSpec::default_bin),
            backend: Backend::Real,
            admin_token: self.args.admin_token.clone(),
            token_secret: format!("scale-secret-{}", self.run_id),
            namespace: namespace(self.run_id, n, step),
            log_dir: self.args.out.join("logs"),
        };
        Fleet::start(
            &spec,
            n,
            self.controller,
            self.args.cpus_per_instance,
            &format!("n{n}-{step}"),
        )
        .await
    }
}

/// A step's namespace, kept to `[a-z0-9_]` (the server's rule: it prefixes
/// Redis keys, a PostgreSQL schema and Kafka topics) and to the run id's
/// last 20 characters, which tell runs apart.
fn namespace(run_id: &str, n: usize, step: &str) -> String {
    let clean: String = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let tail = &clean[clean.len().saturating_sub(20)..];
    format!("sc{tail}_n{n}_{step}")
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
