//! A journey's report, the pure half: goal conversion of the customers who got the journey's
//! messages against its control group, with the absolute uplift and its 95% confidence
//! interval (the normal approximation for a difference of two proportions, Wald's interval:
//! `(p1 - p0) ± 1.96 · sqrt(p1(1-p1)/n1 + p0(1-p0)/n0)`), and the relative uplift.

use serde::Serialize;

/// Below this many customers in either group no interval is given: the normal approximation
/// would mislead.
pub const MIN_GROUP: u64 = 30;

/// Conversion of one group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ConversionGroup)]
pub struct Group {
    /// Customers in the group.
    pub customers: u64,
    /// Of them, converted (reached the goal).
    pub converted: u64,
    /// `converted / customers` (0 for an empty group).
    pub rate: f64,
}

impl Group {
    /// A group of `customers` of whom `converted` converted.
    pub fn new(customers: u64, converted: u64) -> Self {
        let rate = if customers == 0 {
            0.0
        } else {
            converted.min(customers) as f64 / customers as f64
        };
        Self {
            customers,
            converted: converted.min(customers),
            rate,
        }
    }
}

/// The journey's effect on its goal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Uplift {
    /// Customers who got the messages.
    pub treated: Group,
    /// The control group.
    pub holdout: Group,
    /// `treated.rate - holdout.rate`.
    pub absolute: f64,
    /// The 95% interval of `absolute`, when both groups have at least [`MIN_GROUP`].
    pub ci95: Option<(f64, f64)>,
    /// `absolute / holdout.rate`, when the holdout converted at all.
    pub relative: Option<f64>,
}

/// The uplift of `treated` over `holdout`.
pub fn uplift(treated: Group, holdout: Group) -> Uplift {
    let absolute = treated.rate - holdout.rate;
    let ci95 = (treated.customers >= MIN_GROUP && holdout.customers >= MIN_GROUP).then(|| {
        let var = |g: Group| g.rate * (1.0 - g.rate) / g.customers as f64;
        let half = 1.96 * (var(treated) + var(holdout)).sqrt();
        (absolute - half, absolute + half)
    });
    let relative = (holdout.rate > 0.0).then(|| absolute / holdout.rate);
    Uplift {
        treated,
        holdout,
        absolute,
        ci95,
        relative,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_worked_example() {
        // 120 of 1000 treated converted, 90 of 1000 held out:
        // p1 = 0.12, p0 = 0.09, difference 0.03,
        // se = sqrt(0.12·0.88/1000 + 0.09·0.91/1000) = sqrt(0.0001056 + 0.0000819) = 0.013693,
        // 95% interval 0.03 ± 0.026838 = (0.003162, 0.056838); relative 0.03 / 0.09 = 1/3.
        let u = uplift(Group::new(1000, 120), Group::new(1000, 90));
        assert!((u.absolute - 0.03).abs() < 1e-12);
        let (lo, hi) = u.ci95.unwrap();
        assert!((lo - 0.003162).abs() < 1e-5, "{lo}");
        assert!((hi - 0.056838).abs() < 1e-5, "{hi}");
        assert!((u.relative.unwrap() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn small_or_empty_groups_give_no_interval() {
        let u = uplift(Group::new(10, 5), Group::new(1000, 90));
        assert!(u.ci95.is_none());
        let u = uplift(Group::new(100, 5), Group::new(0, 0));
        assert!(u.ci95.is_none() && u.relative.is_none());
    }

    proptest! {
        #[test]
        fn the_interval_holds_the_estimate_and_stays_finite(
            n1 in 30u64..100_000, c1 in 0u64..100_000, n0 in 30u64..100_000, c0 in 0u64..100_000,
        ) {
            let u = uplift(Group::new(n1, c1), Group::new(n0, c0));
            let (lo, hi) = u.ci95.unwrap();
            prop_assert!(lo <= u.absolute && u.absolute <= hi);
            prop_assert!(lo.is_finite() && hi.is_finite());
            prop_assert!((-1.0..=1.0).contains(&u.absolute));
        }
    }
}
