//! Whether the machine ran at one speed while each fleet size was
//! measured, read off the shared stack: Redis's CPU per purchase at each
//! size's deciding steps (the repeats' best), against the first size's.
//!
//! Why Redis: it serves every purchase with the same few commands whatever
//! the fleet, so on a steady machine its CPU per purchase hardly moves with
//! the rate (0.28-0.36 ms from 220 to 870 purchases/s in one run here),
//! while on this project's shared host it rose to 0.54-0.63 ms at one
//! instance in slow spells, which also doubled what that instance spent
//! per purchase under its quota. A spell that falls on one size's steps
//! and not another's moves efficiency by as much (reports/lone-instance.md,
//! section 4): such an efficiency is flagged, in whichever direction.

use serde::{Deserialize, Serialize};

use super::results::Point;
use super::stats;

/// The shared process read as the yardstick (as the meters name it).
pub const COMPONENT: &str = "Redis";

/// How far a size's yardstick may stray from the first size's, as a
/// factor either way, before its efficiency is flagged. Runs without a
/// visible slow spell stayed within 1.12; slow spells gave 1.25-1.53.
pub const TOLERANCE: f64 = 1.15;

/// One fleet size's yardstick.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Yardstick {
    /// The median over the repeats' best steps of Redis's CPU per
    /// purchase, in ms.
    pub ms_per_purchase: f64,
    /// The first size's yardstick over this one's: above 1, the machine
    /// was slower while the first size was measured (efficiency here is
    /// overstated); below 1, slower while this one was (understated).
    pub ratio: f64,
}

/// The median of Redis's CPU per purchase over `p`'s repeats' best steps;
/// `None` without Redis's meter (a fleet elsewhere, another stack).
pub fn cost(p: &Point) -> Option<f64> {
    let costs: Vec<f64> = p
        .repeats
        .iter()
        .filter_map(|r| {
            let best = r.best.as_ref().filter(|b| b.tps > 0.0)?;
            let redis = best
                .usage
                .as_ref()?
                .shared
                .iter()
                .find(|s| s.name == COMPONENT)?;
            Some(1000.0 * redis.cpu / best.tps)
        })
        .collect();
    stats::median(&costs)
}

/// Each size's yardstick against `base`, the first size's cost.
pub fn yardstick(p: &Point, base: Option<f64>) -> Option<Yardstick> {
    let ms = cost(p)?;
    Some(Yardstick {
        ms_per_purchase: ms,
        ratio: base? / ms,
    })
}

/// Whether a ratio says the machine's speed differed beyond the tolerance.
pub fn drifted(y: &Yardstick) -> bool {
    y.ratio > TOLERANCE || y.ratio < 1.0 / TOLERANCE
}

/// The flag in a few words, where its figures do not fit.
pub const SHORT_TEXT: &str = "the machine's speed differed between fleet sizes";

/// The words beside a flagged efficiency.
pub fn flag_text(y: &Yardstick) -> String {
    let way = if y.ratio > 1.0 {
        "overstated"
    } else {
        "understated"
    };
    format!(
        "the machine's speed differed ({COMPONENT} {:.2}x per purchase): {way}",
        y.ratio
    )
}

/// The note under the table: every size's yardstick, and what a flag
/// means; `None` when the first size has none.
pub fn note(points: &[Point]) -> Option<String> {
    let first = points.first()?;
    first.yardstick?;
    let sizes: Vec<String> = points
        .iter()
        .filter_map(|p| {
            let y = p.yardstick?;
            Some(if p.instances == first.instances {
                format!("{:.2} ms at {}", y.ms_per_purchase, p.instances)
            } else {
                format!(
                    "{:.2} ms at {} ({:.2}x)",
                    y.ms_per_purchase, p.instances, y.ratio
                )
            })
        })
        .collect();
    let flagged = points.iter().any(|p| p.speed_flagged);
    Some(format!(
        "The machine's speed while each size was measured, read off the shared stack \
         ({COMPONENT}'s CPU per purchase at the repeats' best steps; in brackets, {} instance(s)' \
         over this size's): {}. {COMPONENT} does the same work per purchase at any fleet size, so \
         on a steady machine these agree; beyond {TOLERANCE}x either way an efficiency is \
         flagged{}: a slow spell of the machine costs a quiet machine (few instances) more than \
         a busy one, so it moves efficiency by as much as the fleets do.",
        first.instances,
        sizes.join(", "),
        if flagged {
            ", as here, and is a measurement of two machines, not of the fleets"
        } else {
            " (none is here)"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::limits::{SharedUsage, Usage};
    use crate::scale::results::{Repeat, Step};

    fn step(tps: f64, redis_cpu: Option<f64>) -> Step {
        let usage = redis_cpu.map(|cpu| Usage {
            shared: vec![
                SharedUsage {
                    name: "broker".into(),
                    cpu: 0.5,
                    capacity: None,
                },
                SharedUsage {
                    name: COMPONENT.into(),
                    cpu,
                    capacity: Some(1.0),
                },
            ],
            ..Usage::default()
        });
        Step::passing(tps, usage)
    }

    /// A size whose repeats' best steps ran at `tps` with Redis at `cpu`.
    fn point(n: usize, best: &[(f64, Option<f64>)]) -> Point {
        let mut p = Point::new(n);
        p.repeats = best
            .iter()
            .enumerate()
            .map(|(order, &(tps, cpu))| Repeat {
                order,
                steps: vec![step(tps, cpu)],
                best: Some(step(tps, cpu)),
                bracket: None,
            })
            .collect();
        p
    }

    #[test]
    fn the_cost_is_the_median_of_redis_cpu_per_purchase_at_the_best_steps() {
        // 0.33, 0.30 and 0.36 ms per purchase: the median 0.33.
        let p = point(
            1,
            &[
                (100.0, Some(0.033)),
                (200.0, Some(0.06)),
                (50.0, Some(0.018)),
            ],
        );
        assert!((cost(&p).unwrap() - 0.33).abs() < 1e-9);
        assert_eq!(cost(&point(1, &[(100.0, None)])), None);
    }

    #[test]
    fn a_steady_machine_is_not_flagged() {
        // Run 21 of main-job-consecutive: 0.33 ms at 1, 0.31 at 4.
        let base = cost(&point(1, &[(232.0, Some(0.0766))]));
        let y = yardstick(&point(4, &[(770.0, Some(0.2387))]), base).unwrap();
        assert!((y.ratio - 1.06).abs() < 0.01, "{y:?}");
        assert!(!drifted(&y));
    }

    #[test]
    fn a_slow_spell_on_either_side_is_flagged_with_its_direction() {
        // Run 19: 0.55 ms at 1, 0.36 at 4, efficiency 139%.
        let base = cost(&point(1, &[(107.0, Some(0.0589))]));
        let y = yardstick(&point(4, &[(598.0, Some(0.2153))]), base).unwrap();
        assert!(y.ratio > 1.5 && drifted(&y), "{y:?}");
        assert!(flag_text(&y).ends_with("overstated"));
        // The other way round: the fleet's steps were the dear ones.
        let y = yardstick(&point(4, &[(598.0, Some(0.45))]), base).unwrap();
        assert!(y.ratio < 1.0 / TOLERANCE && drifted(&y), "{y:?}");
        assert!(flag_text(&y).ends_with("understated"));
    }

    /// A run of the three sizes, derived as a real one is.
    fn run(redis_at_four: f64) -> crate::scale::ScaleReport {
        let mut r = crate::scale::ScaleReport::skipped("t", String::new());
        r.points = vec![
            point(1, &[(100.0, Some(0.033)); 3]),
            point(2, &[(200.0, Some(0.066)); 3]),
            point(4, &[(380.0, Some(redis_at_four)); 3]),
        ];
        for p in &mut r.points {
            p.verify_pass = true;
        }
        r.derive();
        r
    }

    #[test]
    fn derive_flags_only_the_size_measured_at_another_speed_and_the_note_says_so() {
        // At 4, Redis spent 0.20 ms per purchase against 0.33 at 1.
        let r = run(0.076);
        let flags: Vec<bool> = r.points.iter().map(|p| p.speed_flagged).collect();
        assert_eq!(flags, [false, false, true]);
        assert!(r.points[2].flags().iter().any(|f| f.contains("1.65x")));
        let text = note(&r.points).unwrap();
        assert!(
            text.contains("0.33 ms at 1, 0.33 ms at 2 (1.00x), 0.20 ms at 4 (1.65x)"),
            "{text}"
        );
        assert!(text.contains("as here"), "{text}");
        // The same run on a steady machine: nothing flagged, and said.
        let r = run(0.1254);
        assert!(r.points.iter().all(|p| !p.speed_flagged));
        assert!(note(&r.points).unwrap().contains("none is here"));
    }

    #[test]
    fn without_the_first_sizes_cost_there_is_no_ratio() {
        assert_eq!(yardstick(&point(4, &[(600.0, Some(0.2))]), None), None);
    }
}
