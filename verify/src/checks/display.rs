//! Check 4, what clients are shown: positions in each stream never increase
//! and end in ACTIVE before a purchase; the active count never exceeds
//! activeCapacity; estimated waits are reported with their error.

use serde_json::json;

use super::{first, ms};
use crate::scenarios::queue::QueueRun;
use crate::verdict::{CheckReport, Status};

pub fn judge(run: &QueueRun) -> CheckReport {
    let mut rises = Vec::new();
    let mut events = 0usize;
    let mut premature = Vec::new();
    let mut errors: Vec<f64> = Vec::new();
    for u in &run.users {
        events += u.shown.len();
        for pair in u.shown.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if b.position > a.position {
                rises.push(format!(
                    "{}: position {} (id {}) at {} then {} (id {}) at {}",
                    u.user,
                    a.position,
                    a.id.as_deref().unwrap_or("-"),
                    ms(a.at),
                    b.position,
                    b.id.as_deref().unwrap_or("-"),
                    ms(b.at)
                ));
            }
        }
        if let (Some(bought), admitted) = (u.bought_at, u.admitted_at) {
            if admitted.is_none_or(|at| at > bought) {
                premature.push(format!(
                    "{} bought at {} before being shown ACTIVE",
                    u.user,
                    ms(bought)
                ));
            }
        }
        if let Some(admitted) = u.admitted_at {
            for s in &u.shown {
                if let Some(est) = s.estimated_wait_seconds {
                    let actual = admitted.saturating_sub(s.at) as f64 / 1e9;
                    errors.push(est as f64 - actual);
                }
            }
        }
    }
    let max_active = run
        .active_samples
        .iter()
        .map(|(_, a)| *a)
        .max()
        .unwrap_or(0);
    let over: Vec<String> = run
        .active_samples
        .iter()
        .filter(|(_, a)| *a > u64::from(run.capacity))
        .map(|(t, a)| {
            format!(
                "event reported active {a} > activeCapacity {} at {}",
                run.capacity,
                ms(*t)
            )
        })
        .collect();

    let mut abs: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if abs.is_empty() {
            0.0
        } else {
            abs[((abs.len() - 1) as f64 * p).round() as usize]
        }
    };
    let mean_signed = if errors.is_empty() {
        0.0
    } else {
        errors.iter().sum::<f64>() / errors.len() as f64
    };

    let mut problems = Vec::new();
    if !rises.is_empty() {
        problems.push(format!("{} times a position went up", rises.len()));
    }
    if !over.is_empty() || !run.over_capacity.is_empty() {
        problems.push(format!("more than activeCapacity {} ACTIVE", run.capacity));
    }
    if !premature.is_empty() {
        problems.push(format!(
            "{} purchases before ACTIVE was shown",
            premature.len()
        ));
    }
    if run.stalled.is_some() {
        problems.push("the queue stalled (see fifo)".into());
    }
    let streams = run.users.iter().filter(|u| u.token.is_some()).count();
    let mut summary = format!(
        "{} position rises in {streams} streams ({events} events); max sampled active {max_active}/{}; estimate error median {:.1} s, p90 {:.1} s",
        rises.len(),
        run.capacity,
        pct(0.5),
        pct(0.9)
    );
    if let Some(p) = problems.first() {
        summary.push_str(&format!(" — {p}"));
    }
    let mut witness = Vec::new();
    witness.extend(first(&rises, 5));
    witness.extend(first(&over, 3));
    witness.extend(first(&run.over_capacity, 3));
    witness.extend(first(&premature, 3));
    CheckReport {
        check: "display",
        name: format!("{streams} streams, activeCapacity {}", run.capacity),
        status: Status::of(problems.is_empty()),
        pass: problems.is_empty(),
        summary,
        witness,
        details: json!({
            "eventId": run.event_id,
            "streams": streams,
            "positionEvents": events,
            "positionRises": rises.len(),
            "maxActiveSampled": max_active,
            "activeSamples": run.active_samples.len(),
            "activeCapacity": run.capacity,
            "estimateErrorSeconds": {
                "samples": errors.len(),
                "meanSigned": mean_signed,
                "medianAbs": pct(0.5),
                "p90Abs": pct(0.9),
                "maxAbs": abs.last().copied().unwrap_or(0.0),
            },
        }),
    }
}
