//! RFM: recency, frequency and monetary quintile scores (1-5) per tenant, and the named groups
//! of the (R, F) grid.
//!
//! Scores are quintiles of ranks, as `pandas.qcut(x.rank(method="first"), 5)` computes them:
//! customers are ranked by the value ascending, ties broken by the order they are given in
//! (callers give them by customer id, so ties are deterministic); the quintile edges are the
//! 0, 20, ..., 100 % quantiles of the ranks 1..n with linear interpolation, and a rank falls in
//! the first bin whose upper edge it does not exceed. Frequency and monetary score 5 for the
//! highest values; recency is ranked on days since the last order and scored the other way
//! round (`labels=[5, 4, 3, 2, 1]`), so 5 is the most recent.

use serde::{Deserialize, Serialize};

/// A customer's RFM scores and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RfmScore {
    /// Recency, 5 = most recent.
    pub r: u8,
    /// Frequency (distinct order days), 5 = most.
    pub f: u8,
    /// Monetary (revenue), 5 = most.
    pub m: u8,
    /// The named group of (r, f).
    pub group: RfmGroup,
}

pub use crm_rules::RfmGroup;

/// Quintile scores (1-5) of `values` by the rule in the module's documentation: rank ascending
/// with ties in input order, then the quintile of the rank.
pub fn quintiles(values: &[f64]) -> Vec<u8> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    // Stable: equal values keep input order (rank method "first").
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let edges: Vec<f64> = (1..5)
        .map(|k| 1.0 + (n.saturating_sub(1)) as f64 * f64::from(k) / 5.0)
        .collect();
    let mut out = vec![0u8; n];
    for (position, &i) in order.iter().enumerate() {
        let rank = (position + 1) as f64;
        out[i] = 1 + edges.iter().filter(|e| rank > **e).count() as u8;
    }
    out
}

/// One customer's inputs: days since the last order, distinct order days, revenue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RfmInput {
    /// Days since the last order.
    pub recency_days: f64,
    /// Distinct order days.
    pub frequency: f64,
    /// Revenue.
    pub monetary: f64,
}

/// Scores every customer (in the order given: customer id order for deterministic ties).
pub fn score(inputs: &[RfmInput]) -> Vec<RfmScore> {
    let pick = |f: fn(&RfmInput) -> f64| inputs.iter().map(f).collect::<Vec<_>>();
    let r = quintiles(&pick(|i| i.recency_days));
    let f = quintiles(&pick(|i| i.frequency));
    let m = quintiles(&pick(|i| i.monetary));
    (0..inputs.len())
        .map(|i| {
            let r = 6 - r[i];
            RfmScore {
                r,
                f: f[i],
                m: m[i],
                group: RfmGroup::of(r, f[i]),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quintiles_match_pandas_qcut_of_first_ranks() {
        // Expected values printed by pandas 2 on this machine:
        // pd.qcut(pd.Series(v).rank(method="first"), 5, labels=[1, 2, 3, 4, 5])
        let v = [10.0, 20.0, 20.0, 5.0, 7.0, 30.0, 1.0, 20.0, 8.0, 9.0];
        assert_eq!(quintiles(&v), vec![3, 4, 4, 1, 2, 5, 1, 5, 2, 3]);
        assert_eq!(quintiles(&[3.0]), vec![1]);
        assert_eq!(quintiles(&[]), Vec::<u8>::new());
        assert_eq!(quintiles(&[1.0; 5]), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn recency_scores_favour_the_recent() {
        let input = |d: f64| RfmInput {
            recency_days: d,
            frequency: 1.0,
            monetary: 1.0,
        };
        let s = score(&[
            input(1.0),
            input(400.0),
            input(30.0),
            input(200.0),
            input(90.0),
        ]);
        assert_eq!(
            s.iter().map(|s| s.r).collect::<Vec<_>>(),
            vec![5, 1, 4, 2, 3]
        );
    }

    #[test]
    fn every_cell_has_a_group_and_the_corners_are_named() {
        assert_eq!(RfmGroup::of(5, 5), RfmGroup::Champions);
        assert_eq!(RfmGroup::of(1, 1), RfmGroup::Lost);
        assert_eq!(RfmGroup::of(1, 5), RfmGroup::CannotLose);
        assert_eq!(RfmGroup::of(5, 1), RfmGroup::NewCustomers);
        assert_eq!(RfmGroup::of(2, 2), RfmGroup::Hibernating);
        for g in RfmGroup::ALL {
            assert_eq!(RfmGroup::parse(g.as_str()), Some(g));
        }
    }

    proptest! {
        /// Scores are 1-5, monotone in the value, and each quintile holds n/5 customers
        /// (rounded).
        #[test]
        fn quintiles_are_balanced_and_monotone(v in proptest::collection::vec(-1e6f64..1e6, 1..300)) {
            let q = quintiles(&v);
            let n = v.len();
            for i in 0..n {
                prop_assert!((1..=5).contains(&q[i]));
                for j in 0..n {
                    if v[i] < v[j] { prop_assert!(q[i] <= q[j]); }
                }
            }
            if n >= 5 {
                for s in 1..=5u8 {
                    let c = q.iter().filter(|x| **x == s).count() as f64;
                    prop_assert!((c - n as f64 / 5.0).abs() <= 1.0, "score {} has {} of {}", s, c, n);
                }
            }
        }
    }
}
