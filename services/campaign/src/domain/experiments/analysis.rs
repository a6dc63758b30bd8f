//! An experiment's results: per arm the customers, conversions and revenue per customer; each
//! treatment against the control as a relative uplift with its 95% confidence interval and
//! p-value (Welch's t-test on the relative difference, its variance by the delta method, the
//! degrees of freedom by Welch–Satterthwaite, as GrowthBook's frequentist engine computes
//! them); the sample-ratio-mismatch check (Pearson's chi-square against the planned weights);
//! and a minimum sample below which no comparison is shown.

use serde::Serialize;

use crm_stats::{chi_square_sf, t_cdf, t_quantile};

/// A sample-ratio mismatch is flagged below this p-value.
pub const SRM_P_VALUE: f64 = 0.001;

/// The moments of one metric over one arm's customers (one value per customer: 0 or 1 for a
/// conversion, the revenue for revenue).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    /// Customers.
    pub n: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Sum of the squared values.
    pub sum_squares: f64,
}

impl Moments {
    /// `converted` of `n` customers (a 0/1 metric).
    pub fn conversions(n: u64, converted: u64) -> Self {
        let k = converted.min(n) as f64;
        Self {
            n,
            sum: k,
            sum_squares: k,
        }
    }

    /// From a sample's size, mean and standard deviation (n − 1 in the denominator).
    pub fn from_summary(n: u64, mean: f64, stddev: f64) -> Self {
        let nf = n as f64;
        Self {
            n,
            sum: nf * mean,
            sum_squares: (nf - 1.0) * stddev * stddev + nf * mean * mean,
        }
    }

    /// The mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }

    /// The sample variance (n − 1; 0 below two customers).
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let n = self.n as f64;
        ((self.sum_squares - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }
}

/// A treatment against the control on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Comparison {
    /// `(treatment mean − control mean) / control mean`.
    pub relative_uplift: f64,
    /// Its standard error (delta method).
    pub stddev: f64,
    /// The 95% confidence interval of the relative uplift, `[low, high]`.
    pub ci95: [f64; 2],
    /// Two-sided p-value of "no difference".
    pub p_value: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub dof: f64,
}

/// The treatment's relative uplift over the control, or `None` when it cannot be estimated
/// (fewer than two customers in an arm, a control mean of zero, or no variance at all).
pub fn relative_uplift(control: &Moments, treatment: &Moments) -> Option<Comparison> {
    if control.n < 2 || treatment.n < 2 {
        return None;
    }
    let (ma, mb) = (control.mean(), treatment.mean());
    let (va, vb) = (control.variance(), treatment.variance());
    let (na, nb) = (control.n as f64, treatment.n as f64);
    if ma == 0.0 {
        return None;
    }
    let variance = vb / (ma * ma * nb) + va * mb * mb / (ma.powi(4) * na);
    if !(variance > 0.0 && variance.is_finite()) {
        return None;
    }
    let stddev = variance.sqrt();
    let point = (mb - ma) / ma;
    let dof = (vb / nb + va / na).powi(2)
        / (vb * vb / (nb * nb * (nb - 1.0)) + va * va / (na * na * (na - 1.0)));
    let t = point / stddev;
    let p_value = (2.0 * (1.0 - t_cdf(t.abs(), dof))).clamp(0.0, 1.0);
    let width = t_quantile(0.975, dof) * stddev;
    Some(Comparison {
        relative_uplift: point,
        stddev,
        ci95: [point - width, point + width],
        p_value,
        dof,
    })
}

/// The sample-ratio-mismatch check of observed arm sizes against planned weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SampleRatio {
    /// Pearson's chi-square statistic.
    pub chi_square: f64,
    /// Its p-value (degrees of freedom: arms − 1).
    pub p_value: f64,
    /// `p_value < 0.001`: the assignment is broken; do not read the results.
    pub mismatch: bool,
}

/// The check of `observed` customers per arm against `weights` (any positive scale), or
/// `None` with fewer than two arms, no customers or a non-positive weight.
pub fn sample_ratio(observed: &[u64], weights: &[f64]) -> Option<SampleRatio> {
    if observed.len() < 2 || observed.len() != weights.len() {
        return None;
    }
    let total: f64 = observed.iter().map(|n| *n as f64).sum();
    let weight: f64 = weights.iter().sum();
    if total == 0.0 || weights.iter().any(|w| w.is_nan() || *w <= 0.0) {
        return None;
    }
    let chi_square: f64 = observed
        .iter()
        .zip(weights)
        .map(|(o, w)| {
            let expected = total * w / weight;
            (*o as f64 - expected).powi(2) / expected
        })
        .sum();
    let p_value = chi_square_sf(chi_square, (observed.len() - 1) as f64);
    Some(SampleRatio {
        chi_square,
        p_value,
        mismatch: p_value < SRM_P_VALUE,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn round(x: f64, decimals: i32) -> f64 {
        let f = 10f64.powi(decimals);
        (x * f).round() / f
    }

    /// GrowthBook's worked example (gbstats, `tests/frequentist/test_tests.py`,
    /// `test_two_sided_ttest`): control mean 0.41, sd 3.9, n 3407; treatment mean 0.70, sd 6.2,
    /// n 3461 → relative uplift 0.70732, sd 0.37879, CI [−0.03526, 1.44989], p 0.06191.
    #[test]
    fn the_relative_uplift_matches_growthbooks_worked_example() {
        let control = Moments::from_summary(3407, 0.41, 3.9);
        let treatment = Moments::from_summary(3461, 0.41 + 0.29, 6.2);
        let c = relative_uplift(&control, &treatment).unwrap();
        assert_eq!(round(c.relative_uplift, 5), 0.70732);
        assert_eq!(round(c.stddev, 5), 0.37879);
        assert_eq!(round(c.ci95[0], 5), -0.03526);
        assert_eq!(round(c.ci95[1], 5), 1.44989);
        assert_eq!(round(c.p_value, 5), 0.06191);
    }

    /// GrowthBook's SRM example (gbstats, `tests/test_gbstats.py`, `test_srm`): 1,000 and
    /// 1,200 users on a 50/50 plan → p = 0.000020079.
    #[test]
    fn the_sample_ratio_check_matches_growthbooks_worked_example() {
        let s = sample_ratio(&[1000, 1200], &[0.5, 0.5]).unwrap();
        assert_eq!(round(s.p_value, 9), 0.000_020_079);
        assert!(s.mismatch);
        let fine = sample_ratio(&[5_010, 4_990], &[1.0, 1.0]).unwrap();
        assert!(!fine.mismatch && fine.p_value > 0.8);
        // Three arms, 50/25/25.
        let three = sample_ratio(&[500, 250, 250], &[2.0, 1.0, 1.0]).unwrap();
        assert_eq!(three.chi_square, 0.0);
        assert!(sample_ratio(&[10], &[1.0]).is_none());
        assert!(sample_ratio(&[0, 0], &[1.0, 1.0]).is_none());
    }

    #[test]
    fn conversions_are_binary_moments_and_degenerate_arms_give_no_comparison() {
        let m = Moments::conversions(100, 10);
        assert_eq!(m.mean(), 0.1);
        assert!((m.variance() - 0.1 * 0.9 * 100.0 / 99.0).abs() < 1e-12);
        assert!(relative_uplift(&Moments::conversions(100, 0), &m).is_none());
        assert!(relative_uplift(&Moments::conversions(1, 1), &m).is_none());
        // A clear win on conversions is significant and its interval excludes zero.
        let c = relative_uplift(
            &Moments::conversions(20_000, 1_000),
            &Moments::conversions(20_000, 1_200),
        )
        .unwrap();
        assert!((c.relative_uplift - 0.2).abs() < 1e-12);
        assert!(c.p_value < 0.001 && c.ci95[0] > 0.0);
    }

    proptest! {
        #[test]
        fn the_interval_holds_the_estimate_and_swapping_nothing_changes_nothing(
            na in 2u64..100_000, ka in 1u64..1_000, nb in 2u64..100_000, kb in 0u64..1_000,
        ) {
            let a = Moments::conversions(na, ka.min(na));
            let b = Moments::conversions(nb, kb.min(nb));
            if let Some(c) = relative_uplift(&a, &b) {
                prop_assert!(c.ci95[0] <= c.relative_uplift && c.relative_uplift <= c.ci95[1]);
                prop_assert!((0.0..=1.0).contains(&c.p_value));
            }
            if let Some(same) = relative_uplift(&a, &a) {
                prop_assert!(same.relative_uplift == 0.0 && (same.p_value - 1.0).abs() < 1e-9);
            }
        }
    }
}
