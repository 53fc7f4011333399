//! The statistics of a scaling run, as pure functions: the median of a
//! fleet size's repeats with its min-max interval, efficiency with an
//! interval derived conservatively from two such intervals, the verdict
//! against the 90% target and the flag for efficiency above 100%.

use serde::{Deserialize, Serialize};

/// The efficiency a fleet must keep to pass.
pub const TARGET: f64 = 0.9;

/// A range of values; `lo <= hi`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    pub fn width(&self) -> f64 {
        self.hi - self.lo
    }

    pub fn contains(&self, v: f64) -> bool {
        self.lo <= v && v <= self.hi
    }
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// The repeats' spread, min to max. With three to five repeats a
/// bootstrap interval of the median is hardly narrower and would need a
/// seed to be reproducible; min-max needs neither and hides nothing.
pub fn spread(values: &[f64]) -> Option<Interval> {
    let finite = values.iter().copied().filter(|x| x.is_finite());
    let lo = finite.clone().min_by(f64::total_cmp)?;
    let hi = finite.max_by(f64::total_cmp)?;
    Some(Interval { lo, hi })
}

/// Efficiency(N) = TPS(N) / (N x TPS(1)) from the two fleets' medians
/// (the point) and intervals: the interval's ends pair N's lowest with
/// one instance's highest and the other way round, so whatever inside
/// the two spreads was the truth, its efficiency is inside.
pub fn efficiency(
    n: usize,
    tps_n: (f64, Interval),
    base: (f64, Interval),
    base_n: usize,
) -> Option<(f64, Interval)> {
    let per = |t: f64| t / base_n as f64;
    let (point_n, int_n) = tps_n;
    let (point_1, int_1) = base;
    if per(int_1.lo) <= 0.0 || n == 0 {
        return None;
    }
    let n = n as f64;
    Some((
        point_n / (n * per(point_1)),
        Interval {
            lo: int_n.lo / (n * per(int_1.hi)),
            hi: int_n.hi / (n * per(int_1.lo)),
        },
    ))
}

/// What the interval says about the 90% target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The whole interval is at or above the target.
    Pass,
    /// The whole interval is below it.
    Fail,
    /// The interval straddles it: the measurement cannot tell.
    Inconclusive,
}

impl Verdict {
    pub fn of(interval: Interval) -> Self {
        if interval.lo >= TARGET {
            Verdict::Pass
        } else if interval.hi < TARGET {
            Verdict::Fail
        } else {
            Verdict::Inconclusive
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Efficiency above 100% beyond its interval: N instances did more than N
/// times one even at the interval's low end, which instances that share
/// nothing cannot do; the measurement is at fault (one instance's TPS
/// underestimated, or the machine busier during its steps).
pub fn above_ideal(interval: Interval) -> bool {
    interval.lo > 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(lo: f64, hi: f64) -> Interval {
        Interval { lo, hi }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn spread_is_min_to_max() {
        assert_eq!(spread(&[5.0, 3.0, 9.0]), Some(iv(3.0, 9.0)));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn efficiency_interval_holds_every_combination_of_the_spreads() {
        // One instance 95..105 (median 100), four 360..400 (median 380).
        let (e, i) = efficiency(4, (380.0, iv(360.0, 400.0)), (100.0, iv(95.0, 105.0)), 1).unwrap();
        assert!((e - 0.95).abs() < 1e-12);
        assert!((i.lo - 360.0 / 420.0).abs() < 1e-12);
        assert!((i.hi - 400.0 / 380.0).abs() < 1e-12);
        for t1 in [95.0, 100.0, 105.0] {
            for t4 in [360.0, 380.0, 400.0] {
                assert!(i.contains(t4 / (4.0 * t1)), "{t1} {t4}");
            }
        }
        // A first fleet of two: per instance is half its TPS.
        let (e, _) =
            efficiency(4, (400.0, iv(400.0, 400.0)), (200.0, iv(200.0, 200.0)), 2).unwrap();
        assert!((e - 1.0).abs() < 1e-12);
        assert!(efficiency(2, (1.0, iv(1.0, 1.0)), (0.0, iv(0.0, 0.0)), 1).is_none());
    }

    #[test]
    fn verdicts_follow_the_interval_not_the_point() {
        assert_eq!(Verdict::of(iv(0.90, 0.99)), Verdict::Pass);
        assert_eq!(Verdict::of(iv(0.70, 0.899)), Verdict::Fail);
        assert_eq!(Verdict::of(iv(0.85, 0.95)), Verdict::Inconclusive);
        // A point at 112% with an interval reaching down to 88% proves
        // nothing either way.
        assert_eq!(Verdict::of(iv(0.88, 1.30)), Verdict::Inconclusive);
    }

    #[test]
    fn only_an_interval_wholly_above_ideal_is_flagged() {
        assert!(above_ideal(iv(1.01, 1.2)));
        assert!(!above_ideal(iv(0.98, 1.2)));
        assert!(!above_ideal(iv(0.9, 1.0)));
    }
}
