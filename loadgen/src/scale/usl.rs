//! Gunther's Universal Scalability Law, fitted to a scaling run's points:
//! X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)), with sigma the
//! contention (the share that serialises) and kappa the coherency cost
//! (pairwise crosstalk, which makes throughput fall past a peak).
//!
//! The fit minimises relative squared error (a 10% miss at one instance
//! counts as much as one at eight): a coarse logarithmic grid over sigma
//! and kappa, lambda solved exactly for each, then a pattern search from
//! the best grid point. Two parameters and a closed-form third need no
//! optimisation library.

use serde::{Deserialize, Serialize};

/// A fitted law and what it predicts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fit {
    pub lambda: f64,
    pub sigma: f64,
    pub kappa: f64,
    /// Root mean square of the relative residuals at the points fitted.
    pub rms_relative_error: f64,
}

impl Fit {
    /// The law's throughput at `n` instances.
    pub fn at(&self, n: f64) -> f64 {
        throughput(self.lambda, self.sigma, self.kappa, n)
    }

    /// The instance count where throughput peaks: sqrt((1 - sigma) /
    /// kappa); `None` when kappa is zero (no peak: throughput approaches
    /// lambda / sigma) or sigma reaches 1.
    pub fn peak(&self) -> Option<f64> {
        (self.kappa > 0.0 && self.sigma < 1.0).then(|| ((1.0 - self.sigma) / self.kappa).sqrt())
    }
}

fn throughput(lambda: f64, sigma: f64, kappa: f64, n: f64) -> f64 {
    lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
}

/// For fixed sigma and kappa, the lambda of least relative squared error
/// and that error's sum.
fn solve(points: &[(f64, f64)], sigma: f64, kappa: f64) -> (f64, f64) {
    // Residual (x - lambda f) / x = 1 - lambda g with g = f / x.
    let g: Vec<f64> = points
        .iter()
        .map(|&(n, x)| throughput(1.0, sigma, kappa, n) / x)
        .collect();
    let lambda = g.iter().sum::<f64>() / g.iter().map(|g| g * g).sum::<f64>();
    let sse = g.iter().map(|g| (1.0 - lambda * g).powi(2)).sum();
    (lambda, sse)
}

/// Fits the law to `(instances, throughput)` points; `None` with fewer
/// than three distinct instance counts (three parameters) or a
/// non-positive throughput.
pub fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let mut counts: Vec<f64> = points.iter().map(|p| p.0).collect();
    counts.sort_by(f64::total_cmp);
    counts.dedup();
    if counts.len() < 3
        || points
            .iter()
            .any(|&(n, x)| n < 1.0 || x <= 0.0 || !x.is_finite())
    {
        return None;
    }
    let grid = |lo: f64, hi: f64, steps: usize| {
        std::iter::once(0.0)
            .chain((0..=steps).map(move |i| lo * (hi / lo).powf(i as f64 / steps as f64)))
    };
    let mut best = (f64::INFINITY, 0.0, 0.0);
    for sigma in grid(1e-4, 1.0, 40) {
        for kappa in grid(1e-6, 1.0, 60) {
            let (_, sse) = solve(points, sigma, kappa);
            if sse < best.0 {
                best = (sse, sigma, kappa);
            }
        }
    }
    let (mut sse, mut sigma, mut kappa) = best;
    // Pattern search: try a step either way in each parameter, halve the
    // steps when neither helps.
    let (mut ds, mut dk) = ((sigma * 0.5).max(1e-4), (kappa * 0.5).max(1e-6));
    for _ in 0..10_000 {
        if ds < 1e-12 && dk < 1e-14 {
            break;
        }
        let mut moved = false;
        for (s, k) in [
            (sigma + ds, kappa),
            (sigma - ds, kappa),
            (sigma, kappa + dk),
            (sigma, kappa - dk),
        ] {
            if s < 0.0 || k < 0.0 {
                continue;
            }
            let (_, e) = solve(points, s, k);
            if e < sse {
                (sse, sigma, kappa, moved) = (e, s, k, true);
            }
        }
        if !moved {
            ds /= 2.0;
            dk /= 2.0;
        }
    }
    let (lambda, sse) = solve(points, sigma, kappa);
    Some(Fit {
        lambda,
        sigma,
        kappa,
        rms_relative_error: (sse / points.len() as f64).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(got: f64, want: f64, share: f64) -> bool {
        (got - want).abs() <= share * want
    }

    #[test]
    fn recovers_known_contention_and_coherency() {
        for (lambda, sigma, kappa) in [
            (100.0, 0.05, 0.002),
            (40.0, 0.2, 0.01),
            (250.0, 0.02, 0.0005),
        ] {
            let points: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
                .iter()
                .map(|&n| (n, throughput(lambda, sigma, kappa, n)))
                .collect();
            let f = fit(&points).unwrap();
            assert!(within(f.sigma, sigma, 0.1), "sigma {} for {sigma}", f.sigma);
            assert!(within(f.kappa, kappa, 0.1), "kappa {} for {kappa}", f.kappa);
            assert!(
                within(f.lambda, lambda, 0.1),
                "lambda {} for {lambda}",
                f.lambda
            );
            let peak = ((1.0 - sigma) / kappa).sqrt();
            assert!(within(f.peak().unwrap(), peak, 0.1));
        }
    }

    #[test]
    fn recovers_them_from_noisy_repeats() {
        // Three repeats per count, +-2% around the law (fixed, not random,
        // so the test cannot flake).
        let (lambda, sigma, kappa) = (100.0, 0.08, 0.004);
        let mut points = Vec::new();
        for n in [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0] {
            for wobble in [0.98, 1.0, 1.02] {
                points.push((n, throughput(lambda, sigma, kappa, n) * wobble));
            }
        }
        let f = fit(&points).unwrap();
        assert!(within(f.sigma, sigma, 0.1), "sigma {}", f.sigma);
        assert!(within(f.kappa, kappa, 0.1), "kappa {}", f.kappa);
        assert!(f.rms_relative_error < 0.02, "{}", f.rms_relative_error);
    }

    #[test]
    fn linear_scaling_fits_with_no_peak() {
        let points: Vec<(f64, f64)> = [1.0, 2.0, 4.0].iter().map(|&n| (n, 50.0 * n)).collect();
        let f = fit(&points).unwrap();
        assert!(f.sigma < 1e-3 && f.kappa < 1e-5, "{f:?}");
        assert!(within(f.at(8.0), 400.0, 0.01), "{}", f.at(8.0));
        assert!(f.rms_relative_error < 1e-3);
    }

    #[test]
    fn needs_three_instance_counts() {
        assert!(fit(&[(1.0, 10.0), (2.0, 19.0), (2.0, 18.0)]).is_none());
        assert!(fit(&[(1.0, 10.0), (2.0, 19.0), (4.0, 0.0)]).is_none());
    }
}
