//! Who is in which arm of an experiment: a holdout carved out first, then the arms by their
//! weights, both by a salted hash of the customer id (`gate::holdout`), so the answer is the
//! same on every call, replica and retry, and never a random draw. The arms are hashed with
//! a salt of their own, so they split the customers outside the holdout evenly.

use serde::Serialize;
use uuid::Uuid;

use crate::domain::gate::holdout::{arm, held_out};

/// Where a customer stands in an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Assignment {
    /// In the holdout: gets the fallback, counted apart.
    Holdout,
    /// In this arm (its index in the experiment's arms).
    Arm {
        /// The arm's index.
        index: usize,
    },
}

/// The assignment of `customer` in the experiment salted `salt`, with `holdout_percent` held
/// out (0 to 50) and the arms' `weights`; `None` when every weight is zero.
pub fn assign(
    salt: &str,
    customer: Uuid,
    holdout_percent: u8,
    weights: &[u32],
) -> Option<Assignment> {
    if held_out(&format!("{salt}/holdout"), customer, holdout_percent) {
        return Some(Assignment::Holdout);
    }
    arm(&format!("{salt}/arms"), customer, weights).map(|index| Assignment::Arm { index })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::experiments::analysis::sample_ratio;

    fn customers(n: u128) -> impl Iterator<Item = Uuid> {
        (0..n).map(|i| Uuid::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) + 17))
    }

    #[test]
    fn assignment_is_stable_and_the_split_is_the_plan() {
        let weights = [50, 25, 25];
        let mut counts = [0u64; 3];
        let mut holdout = 0u64;
        for c in customers(40_000) {
            let first = assign("exp-1", c, 10, &weights);
            // The same call, many times: always the same answer.
            for _ in 0..3 {
                assert_eq!(assign("exp-1", c, 10, &weights), first);
            }
            match first {
                Some(Assignment::Holdout) => holdout += 1,
                Some(Assignment::Arm { index }) => counts[index] += 1,
                None => panic!("weights are not all zero"),
            }
        }
        let share = holdout as f64 / 40_000.0;
        assert!((share - 0.10).abs() < 0.01, "holdout {share}");
        // The arms pass the sample-ratio check against their weights.
        let srm = sample_ratio(&counts, &[50.0, 25.0, 25.0]).unwrap();
        assert!(!srm.mismatch, "{counts:?} {srm:?}");
        assert_eq!(assign("exp-1", Uuid::nil(), 0, &[0, 0]), None);
    }

    #[test]
    fn experiments_with_different_salts_are_independent() {
        let same = customers(20_000)
            .filter(|c| assign("a", *c, 0, &[1, 1]) == assign("b", *c, 0, &[1, 1]))
            .count();
        let share = same as f64 / 20_000.0;
        assert!((share - 0.5).abs() < 0.02, "{share}");
    }
}
