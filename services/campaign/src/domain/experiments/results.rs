//! An experiment's results from what its exposed customers did: per arm the customers,
//! conversions and revenue per customer; the sample-ratio check against the planned weights;
//! and, once every arm has the minimum sample, each arm against the control (the first) on
//! conversion and on revenue per customer. Before that, the comparisons are absent and the
//! answer says how many customers are missing, so nobody reads a p-value off ten people.

use serde::{Deserialize, Serialize};

use super::analysis::{relative_uplift, sample_ratio, Comparison, Moments, SampleRatio};
use super::definition::ExperimentSpec;

/// What the store counted for one group (an arm, or the holdout).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counts {
    /// Customers exposed.
    pub customers: u64,
    /// Customers who converted within the window.
    pub converted: u64,
    /// Revenue of their goal events, summed over customers.
    pub revenue: f64,
    /// The sum of each customer's revenue squared.
    pub revenue_squares: f64,
}

/// One arm's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArmResult {
    /// The arm's key.
    pub key: String,
    /// Customers exposed.
    pub customers: u64,
    /// Customers converted.
    pub conversions: u64,
    /// conversions / customers.
    pub conversion_rate: f64,
    /// Revenue per exposed customer.
    pub revenue_per_customer: f64,
    /// Against the control on conversion (absent for the control, or before the minimum).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_uplift: Option<Comparison>,
    /// Against the control on revenue per customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue_uplift: Option<Comparison>,
}

/// The holdout's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldoutResult {
    /// Customers exposed while held out.
    pub customers: u64,
    /// Customers converted.
    pub conversions: u64,
    /// Revenue per exposed customer.
    pub revenue_per_customer: f64,
}

/// The results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Results {
    /// Per arm, the control first.
    pub arms: Vec<ArmResult>,
    /// The holdout.
    pub holdout: HoldoutResult,
    /// The customers each arm needs before comparisons are shown.
    pub minimum_sample: u32,
    /// Whether every arm has it.
    pub enough_data: bool,
    /// The sample-ratio check of the arms against their weights (absent with no exposure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_ratio: Option<SampleRatio>,
}

fn moments_revenue(c: &Counts) -> Moments {
    Moments {
        n: c.customers,
        sum: c.revenue,
        sum_squares: c.revenue_squares,
    }
}

fn per_customer(sum: f64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// The results of `spec` from the counts per arm (in the arms' order) and of the holdout.
pub fn results(spec: &ExperimentSpec, arms: &[Counts], holdout: Counts) -> Results {
    let counts: Vec<Counts> = (0..spec.arms.len())
        .map(|i| arms.get(i).copied().unwrap_or_default())
        .collect();
    let minimum = u64::from(spec.minimum_sample);
    let enough = counts.iter().all(|c| c.customers >= minimum);
    let control = counts.first().copied().unwrap_or_default();
    let arms = spec
        .arms
        .iter()
        .zip(&counts)
        .enumerate()
        .map(|(i, (arm, c))| {
            let compare = enough && i > 0;
            ArmResult {
                key: arm.key.clone(),
                customers: c.customers,
                conversions: c.converted,
                conversion_rate: per_customer(c.converted as f64, c.customers),
                revenue_per_customer: per_customer(c.revenue, c.customers),
                conversion_uplift: compare
                    .then(|| {
                        relative_uplift(
                            &Moments::conversions(control.customers, control.converted),
                            &Moments::conversions(c.customers, c.converted),
                        )
                    })
                    .flatten(),
                revenue_uplift: (compare && spec.goal.revenue_property.is_some())
                    .then(|| relative_uplift(&moments_revenue(&control), &moments_revenue(c)))
                    .flatten(),
            }
        })
        .collect();
    let observed: Vec<u64> = counts.iter().map(|c| c.customers).collect();
    let weights: Vec<f64> = spec.arms.iter().map(|a| f64::from(a.weight)).collect();
    Results {
        arms,
        holdout: HoldoutResult {
            customers: holdout.customers,
            conversions: holdout.converted,
            revenue_per_customer: per_customer(holdout.revenue, holdout.customers),
        },
        minimum_sample: spec.minimum_sample,
        enough_data: enough,
        sample_ratio: sample_ratio(&observed, &weights),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::experiments::definition::parse;

    fn spec(minimum: u32) -> ExperimentSpec {
        parse(
            json!({"name": "t", "subject": "message", "minimum_sample": minimum,
                     "arms": [{"key": "a", "weight": 1}, {"key": "b", "weight": 1}],
                     "goal": {"event": "Order Completed", "revenue_property": "revenue",
                              "window_days": 7}}),
        )
        .unwrap()
    }

    fn counts(customers: u64, converted: u64) -> Counts {
        Counts {
            customers,
            converted,
            revenue: converted as f64 * 20.0,
            revenue_squares: converted as f64 * 400.0,
        }
    }

    #[test]
    fn comparisons_wait_for_the_minimum_sample() {
        let r = results(
            &spec(100),
            &[counts(99, 10), counts(150, 30)],
            Counts::default(),
        );
        assert!(!r.enough_data);
        assert!(r.arms[1].conversion_uplift.is_none());
        assert_eq!(r.arms[1].conversion_rate, 0.2);
        let r = results(
            &spec(100),
            &[counts(1000, 100), counts(1000, 150)],
            Counts::default(),
        );
        assert!(r.enough_data);
        let up = r.arms[1].conversion_uplift.unwrap();
        assert!((up.relative_uplift - 0.5).abs() < 1e-12, "{up:?}");
        assert!(up.p_value < 0.01, "{up:?}");
        assert!(up.ci95[0] > 0.0);
        assert!(
            r.arms[0].conversion_uplift.is_none(),
            "the control is not compared"
        );
        let rev = r.arms[1].revenue_uplift.unwrap();
        assert!((rev.relative_uplift - 0.5).abs() < 1e-12, "{rev:?}");
        assert!(!r.sample_ratio.unwrap().mismatch);
    }

    #[test]
    fn a_lopsided_split_is_flagged() {
        let r = results(
            &spec(10),
            &[counts(1000, 1), counts(1200, 1)],
            Counts::default(),
        );
        assert!(r.sample_ratio.unwrap().mismatch);
    }
}
