//! What limited a step: the generator (late starts, its CPU), the
//! instances (CPU used against their quota, throttled periods) or the
//! shared stack (each component's CPU), from the usage measured during
//! the step's window; and, per fleet size, the part that was nearest its
//! limit where the bound broke.

use serde::{Deserialize, Serialize};

use super::meters::{Meters, Reading};
use super::results::{Point, Step};
use crate::summary::RunSummary;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceUsage {
    /// CPUs used (CPU seconds per second).
    pub cpu: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<f64>,
    /// The share of CFS periods in which the instance was throttled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedUsage {
    pub name: String,
    pub cpu: f64,
    /// The CPUs it can use at most, where one limit applies (Redis runs
    /// commands on one thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
}

/// What each part used during one step's measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub secs: f64,
    /// The generator's CPUs and the share of its iterations started late.
    pub generator_cpu: f64,
    pub generator_late: f64,
    pub instances: Vec<InstanceUsage>,
    pub shared: Vec<SharedUsage>,
    /// The share of the machine's cores that were busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_busy: Option<f64>,
    /// The share of the window during which some runnable task of the
    /// machine did not run (/proc/pressure/cpu): for want of a free core
    /// (the instances, the stack, the generator and, on a shared host,
    /// others contending) or because its instance's quota was spent (a
    /// throttled instance's tasks count too, so with throttled instances
    /// it is not the machine's contention alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_waiting: Option<f64>,
}

impl Usage {
    /// The instances' CPUs together.
    pub fn instances_cpu(&self) -> f64 {
        self.instances.iter().map(|i| i.cpu).sum()
    }

    /// The share of their quotas the instances used together; `None`
    /// where an instance had none (a fleet sized elsewhere).
    pub fn quota_used(&self) -> Option<f64> {
        let quota: f64 = self
            .instances
            .iter()
            .map(|i| i.quota)
            .sum::<Option<f64>>()?;
        (quota > 0.0).then(|| self.instances_cpu() / quota)
    }

    /// From the meters' increases over `secs` (instances first, then the
    /// shared stack, then the machine) and the step's own summary.
    pub fn from(meters: &Meters, secs: f64, deltas: &[Option<Reading>], s: &RunSummary) -> Self {
        let (inst, rest) = deltas.split_at(meters.instances.len().min(deltas.len()));
        let (shared, machine) = rest.split_at(meters.shared.len().min(rest.len()));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let (generator_cpu, generator_late) = generator(s);
        Usage {
            secs,
            generator_cpu,
            generator_late,
            instances: meters
                .instances
                .iter()
                .zip(inst)
                .filter_map(|(m, d)| {
                    let d = (*d)?;
                    Some(InstanceUsage {
                        cpu: d.busy_secs / secs,
                        quota: m.capacity,
                        throttled: d
                            .periods
                            .and_then(|(p, t)| (p > 0).then(|| t as f64 / p as f64)),
                    })
                })
                .collect(),
            shared: meters
                .shared
                .iter()
                .zip(shared)
                .filter_map(|(m, d)| {
                    Some(SharedUsage {
                        name: m.name.clone(),
                        cpu: (*d)?.busy_secs / secs,
                        capacity: m.capacity,
                    })
                })
                .collect(),
            machine_busy: machine
                .first()
                .copied()
                .flatten()
                .map(|d| d.busy_secs / secs / cores),
            cpu_waiting: machine
                .get(1)
                .copied()
                .flatten()
                .map(|d| (d.busy_secs / secs).min(1.0)),
        }
    }
}

/// The generator's CPUs over its run and its late share.
fn generator(s: &RunSummary) -> (f64, f64) {
    let cpu = s
        .generator
        .as_ref()
        .map_or(0.0, |g| g.cpu_seconds / (s.duration_secs + 1.0));
    let late = s
        .schedule
        .as_ref()
        .map_or(0.0, |p| p.late as f64 / p.planned.max(1) as f64);
    (cpu, late)
}

/// The part of the system that limited a fleet size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Generator,
    Instances,
    /// A component every instance shares.
    Shared,
    /// Every core of the machine was busy, no single part at its limit.
    Machine,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    pub part: Part,
    /// The part's name ("instances", "Redis", ...).
    pub name: String,
    /// How near its limit it was (1 = at it).
    pub utilisation: f64,
    /// Every part's figures at that step.
    pub detail: String,
}

/// The generator counts as saturated when this share of its iterations
/// started late.
const LATE: f64 = 0.05;

/// The step where a repeat's bound broke (the lowest failing rate above
/// its best), or its best when none failed above it.
fn deciding(steps: &[Step], best: Option<&Step>) -> Option<usize> {
    let floor = best.and_then(|b| b.rate).unwrap_or(0.0);
    steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.pass && s.rate.is_some_and(|r| r > floor) && s.usage.is_some())
        .min_by(|a, b| a.1.rate.unwrap_or(0.0).total_cmp(&b.1.rate.unwrap_or(0.0)))
        .map(|(i, _)| i)
        .or_else(|| {
            let b = best?;
            steps
                .iter()
                .position(|s| s.dir == b.dir && s.usage.is_some())
        })
}

/// What limited one step: the part nearest its limit.
/// The share of busy cores from which the machine is what limited a step
/// whose parts were each further from their own limits.
const MACHINE_BUSY: f64 = 0.8;

pub fn limit_of(u: &Usage) -> Limit {
    let mut candidates: Vec<(Part, String, f64)> = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let late = if u.generator_late >= LATE { 1.0 } else { 0.0 };
    candidates.push((
        Part::Generator,
        "generator".into(),
        (u.generator_cpu / cores).max(late),
    ));
    let quota_use: Vec<f64> = u
        .instances
        .iter()
        .filter_map(|i| Some(i.cpu / i.quota?))
        .collect();
    if !quota_use.is_empty() {
        let mean = quota_use.iter().sum::<f64>() / quota_use.len() as f64;
        candidates.push((Part::Instances, "instances".into(), mean));
    }
    for s in &u.shared {
        if let Some(c) = s.capacity {
            candidates.push((Part::Shared, s.name.clone(), s.cpu / c));
        }
    }
    let (part, name, utilisation) = candidates
        .into_iter()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .unwrap_or((Part::Machine, "machine".into(), 0.0));
    // A step's mean hides its bursts: at 86% busy on average the two cores
    // here were full in parts of it while every part stayed under 70% of
    // its own limit (reports/main-job-consecutive, run 6, N = 4). So the
    // machine is named from 80% busy when no part is nearer its limit.
    let (part, name, utilisation) = match u.machine_busy {
        Some(m) if m >= MACHINE_BUSY && utilisation < m => (Part::Machine, "machine".into(), m),
        _ => (part, name, utilisation),
    };
    Limit {
        part,
        name,
        utilisation,
        detail: detail(u),
    }
}

/// Every part's figures, in words.
pub fn detail(u: &Usage) -> String {
    let mut parts = Vec::new();
    if !u.instances.is_empty() {
        let cpu: f64 = u.instances.iter().map(|i| i.cpu).sum::<f64>() / u.instances.len() as f64;
        let quota = u.instances.iter().find_map(|i| i.quota);
        let throttled: Vec<f64> = u.instances.iter().filter_map(|i| i.throttled).collect();
        let mut s = format!("instances {cpu:.2} CPU each");
        if let Some(q) = quota {
            s += &format!(" of {q:.2} ({:.0}% of quota)", cpu / q * 100.0);
        }
        if !throttled.is_empty() {
            s += &format!(
                ", throttled in {:.0}% of periods",
                throttled.iter().sum::<f64>() / throttled.len() as f64 * 100.0
            );
            s += &unevenness(&throttled);
        }
        parts.push(s);
    }
    for s in &u.shared {
        parts.push(match s.capacity {
            Some(c) => format!(
                "{} {:.2} CPU ({:.0}% of {c:.0})",
                s.name,
                s.cpu,
                s.cpu / c * 100.0
            ),
            None => format!("{} {:.2} CPU", s.name, s.cpu),
        });
    }
    parts.push(format!(
        "generator {:.2} CPU, {:.1}% started late",
        u.generator_cpu,
        u.generator_late * 100.0
    ));
    match (u.machine_busy, u.cpu_waiting) {
        (Some(m), Some(w)) => parts.push(format!(
            "machine {:.0}% busy, a task waiting for a CPU {:.0}% of the time",
            m * 100.0,
            w * 100.0
        )),
        (Some(m), None) => parts.push(format!("machine {:.0}% busy", m * 100.0)),
        _ => {}
    }
    parts.join("; ")
}

/// The busiest instance beside the others, when a fleet's instances are
/// unevenly loaded: work one instance carries for the fleet (a lease on
/// an event's line, say) shows here, and a fleet-wide P95 bound lets the
/// others run nearer their quota than a single instance could.
fn unevenness(throttled: &[f64]) -> String {
    if throttled.len() < 2 {
        return String::new();
    }
    let mut sorted = throttled.to_vec();
    sorted.sort_by(f64::total_cmp);
    let busiest = sorted.pop().unwrap_or_default();
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    // Within 10 points of each other the fleet is even enough.
    if busiest - hi < 0.10 {
        return String::new();
    }
    format!(
        " (the busiest {:.0}%, the others {:.0}-{:.0}%)",
        busiest * 100.0,
        lo * 100.0,
        hi * 100.0
    )
}

/// What limited a fleet size: the part named most often across its
/// repeats' deciding steps (the highest utilisation breaks ties), with
/// that step's figures.
pub fn point_limit(p: &Point) -> Option<Limit> {
    let limits: Vec<Limit> = p
        .repeats
        .iter()
        .filter_map(|r| {
            let i = deciding(&r.steps, r.best.as_ref())?;
            let step = &r.steps[i];
            let usage = step.usage.as_ref()?;
            let mut limit = limit_of(usage);
            // CPU per purchase across fleet sizes shows work that does
            // not divide by N (higher per purchase at larger N) and
            // stack-wide work one instance carries alone (higher at N = 1:
            // efficiency above 100%).
            if step.tps > 0.0 && !usage.instances.is_empty() {
                let fleet_cpu = usage.instances_cpu();
                limit.detail += &format!(
                    "; instances' CPU per purchase {:.2} ms",
                    fleet_cpu / step.tps * 1000.0
                );
            }
            Some(limit)
        })
        .collect();
    limits
        .iter()
        .max_by(|a, b| {
            let count = |l: &Limit| limits.iter().filter(|o| o.name == l.name).count();
            count(a)
                .cmp(&count(b))
                .then(a.utilisation.total_cmp(&b.utilisation))
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(instance: f64, redis: f64, machine: f64) -> Usage {
        Usage {
            secs: 3.0,
            generator_cpu: 0.2,
            generator_late: 0.0,
            instances: vec![
                InstanceUsage {
                    cpu: instance,
                    quota: Some(0.2),
                    throttled: Some(0.1),
                };
                2
            ],
            shared: vec![
                SharedUsage {
                    name: "Redis".into(),
                    cpu: redis,
                    capacity: Some(1.0),
                },
                SharedUsage {
                    name: "PostgreSQL".into(),
                    cpu: 0.3,
                    capacity: None,
                },
            ],
            machine_busy: Some(machine),
            cpu_waiting: Some(0.4),
        }
    }

    #[test]
    fn the_part_nearest_its_limit_is_named() {
        let l = limit_of(&usage(0.19, 0.4, 0.6));
        assert_eq!((l.part, l.name.as_str()), (Part::Instances, "instances"));
        assert!((l.utilisation - 0.95).abs() < 1e-9);
        assert!(l.detail.contains("95% of quota"), "{}", l.detail);
        assert!(l.detail.contains("PostgreSQL 0.30 CPU"), "{}", l.detail);
        let l = limit_of(&usage(0.1, 0.97, 0.7));
        assert_eq!((l.part, l.name.as_str()), (Part::Shared, "Redis"));
        // Nothing at its limit, every core busy: the machine.
        let l = limit_of(&usage(0.1, 0.3, 0.95));
        assert_eq!(l.part, Part::Machine);
        // 86% busy, instances at 66% of quota: the machine, not them.
        let l = limit_of(&usage(0.132, 0.3, 0.86));
        assert_eq!((l.part, l.name.as_str()), (Part::Machine, "machine"));
        // 79% busy: below the rule, the nearest part is named.
        let l = limit_of(&usage(0.132, 0.3, 0.79));
        assert_eq!(l.part, Part::Instances);
        // A generator that starts iterations late limits whatever else.
        let mut u = usage(0.19, 0.4, 0.6);
        u.generator_late = 0.2;
        assert_eq!(limit_of(&u).part, Part::Generator);
    }

    #[test]
    fn an_instance_busier_than_the_rest_is_named_with_the_others_spread() {
        let mut u = usage(0.19, 0.4, 0.6);
        assert!(!limit_of(&u).detail.contains("busiest"), "even fleet");
        u.instances[0].throttled = Some(0.82);
        u.instances.push(InstanceUsage {
            cpu: 0.19,
            quota: Some(0.2),
            throttled: Some(0.45),
        });
        let detail = limit_of(&u).detail;
        assert!(
            detail.contains("(the busiest 82%, the others 10-45%)"),
            "{detail}"
        );
    }
}
