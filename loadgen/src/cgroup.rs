//! Equal CPU quotas for the scaling run's server instances: one Linux
//! cgroup per instance, v1 (`cpu.cfs_quota_us` under /sys/fs/cgroup/cpu) or
//! v2 (`cpu.max`), so "one instance" is a fixed amount of compute.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// A short period: a throttled instance waits at most the rest of one period
/// (7.5 ms at a quarter CPU), not the 75 ms of the default 100 ms period.
const PERIOD_US: u64 = 10_000;

/// The kernel's smallest quota per period.
const MIN_QUOTA_US: u64 = 1_000;

/// The CFS period for a quota of `cores`: 10 ms, longer where the
/// quota's share of it would fall under the kernel's 1 ms minimum (which
/// would silently raise the quota: 0.07 CPU of 10 ms is 0.7 ms, set as 1).
pub fn period_us(cores: f64) -> u64 {
    let needed = (MIN_QUOTA_US as f64 / cores.max(1e-3)).ceil() as u64;
    PERIOD_US.max(needed.div_ceil(1000) * 1000)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    V1,
    V2,
    /// No quota (`--no-cpu-quota`): instances share the machine freely.
    None,
}

/// Where quotas can be set on this machine.
#[derive(Debug, Clone)]
pub struct Controller {
    pub flavour: Flavour,
    root: PathBuf,
}

impl Controller {
    /// Finds a writable CPU controller; an error says why none can be used.
    pub fn detect() -> anyhow::Result<Self> {
        let v2 = Path::new("/sys/fs/cgroup");
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let candidate = if v2.join("cgroup.controllers").exists() {
            let controllers = fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
            if !controllers.split_whitespace().any(|c| c == "cpu") {
                bail!("cgroup v2 is mounted but its cpu controller is not available");
            }
            // Children of the root get the cpu controller only when it is
            // enabled in the root's subtree.
            let _ = fs::write(v2.join("cgroup.subtree_control"), "+cpu");
            Controller {
                flavour: Flavour::V2,
                root: v2.to_owned(),
            }
        } else if v1.join("cpu.cfs_quota_us").exists() {
            Controller {
                flavour: Flavour::V1,
                root: v1.to_owned(),
            }
        } else {
            bail!("no cgroup CPU controller found (neither /sys/fs/cgroup/cpu/cpu.cfs_quota_us nor a cgroup v2 cpu controller)");
        };
        // Prove it is writable now rather than halfway through a run.
        drop(candidate.create(&format!("ticketbench-probe-{}", std::process::id()), 0.5)?);
        Ok(candidate)
    }

    pub fn none() -> Self {
        Controller {
            flavour: Flavour::None,
            root: PathBuf::new(),
        }
    }

    /// A new cgroup limited to `cores` CPUs (0.25 = a quarter of one).
    pub fn create(&self, name: &str, cores: f64) -> anyhow::Result<Group> {
        if self.flavour == Flavour::None {
            return Ok(Group {
                flavour: Flavour::None,
                dir: PathBuf::new(),
            });
        }
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).with_context(|| {
            format!(
                "cannot create cgroup {} (root is needed to set CPU quotas; \
                 --no-cpu-quota runs without them)",
                dir.display()
            )
        })?;
        let period = period_us(cores);
        let quota = ((cores * period as f64).round() as u64).max(MIN_QUOTA_US);
        let written = match self.flavour {
            Flavour::V1 => fs::write(dir.join("cpu.cfs_period_us"), period.to_string())
                .and_then(|_| fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())),
            Flavour::V2 => fs::write(dir.join("cpu.max"), format!("{quota} {period}")),
            Flavour::None => Ok(()),
        };
        let group = Group {
            flavour: self.flavour,
            dir,
        };
        if let Err(e) = written {
            group.remove();
            bail!("cannot set a CPU quota in cgroup {name}: {e}");
        }
        Ok(group)
    }
}

/// One cgroup; removed (once its processes are gone) by `remove`.
#[derive(Debug)]
pub struct Group {
    flavour: Flavour,
    dir: PathBuf,
}

impl Group {
    pub fn add(&self, pid: u32) -> anyhow::Result<()> {
        if self.flavour == Flavour::None {
            return Ok(());
        }
        fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("moving pid {pid} into {}", self.dir.display()))
    }

    /// The group's directory (`None` without a quota).
    pub fn dir(&self) -> Option<&Path> {
        (self.flavour != Flavour::None).then_some(self.dir.as_path())
    }

    /// Periods in which the group used its whole quota (throttled).
    pub fn throttled_periods(&self) -> Option<u64> {
        if self.flavour == Flavour::None {
            return None;
        }
        let stat = fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("nr_throttled ")?.trim().parse().ok())
    }

    pub fn remove(&self) {
        if self.flavour != Flavour::None {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_quotas_get_a_period_that_holds_the_kernels_minimum() {
        assert_eq!(super::period_us(0.15), 10_000);
        assert_eq!(super::period_us(0.1), 10_000);
        // 0.07 CPU: 1 ms of a 15 ms period, not 1 ms of 10 (0.1 CPU).
        let p = super::period_us(0.07);
        assert_eq!(p, 15_000);
        assert!((0.07 * p as f64).round() as u64 >= 1000);
    }
}
