//! The one interface a scaling run scales through: bring a deployment to
//! N fresh instances, say where they are and what can be sampled, take
//! them down. The bundled fleet (`fleet`: ticket-server processes under
//! CPU quotas) and a user's own commands (`command`: `--fleet-cmd`,
//! `--hosts-cmd`) implement it; tests implement it with stand-ins.

use super::meters::Meters;
use crate::cgroup::Flavour;

/// Something that can be brought to N instances.
// Used with concrete types only and never spawned, so the futures need no
// `Send` bound and `async fn` is the clearest signature.
#[allow(async_fn_in_trait)]
pub trait Deployment {
    type Fleet;

    /// What is scaled, in the report's words.
    fn describe(&self) -> String;

    /// The CPU quota each instance can be given (`None`: the deployment
    /// sizes its instances itself).
    fn quota(&self) -> Flavour;

    /// `n` fresh instances for the step `label`, each limited to `cpus`
    /// CPUs where the deployment can (`None`: unconstrained), every one
    /// answering.
    async fn up(&self, n: usize, label: &str, cpus: Option<f64>) -> anyhow::Result<Self::Fleet>;

    /// The base URLs of a fleet's instances.
    fn hosts(&self, fleet: &Self::Fleet) -> Vec<String>;

    /// What can be sampled while the fleet is measured.
    fn meters(&self, fleet: &Self::Fleet) -> Meters;

    async fn down(&self, fleet: Self::Fleet);

    /// Once, after the last step.
    async fn finish(&self) {}
}
