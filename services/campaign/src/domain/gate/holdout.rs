//! Control groups and split arms by a salted hash of the customer id: the same customer is
//! always in or out (and always in the same arm) for the same salt, whatever replica decides
//! and however often, and different salts (journeys) give independent groups.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A number in 0..10,000 for (salt, customer), uniform over customers.
pub fn bucket(salt: &str, customer: Uuid) -> u32 {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(customer.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) % 10_000) as u32
}

/// Whether the customer is in the `percent` control group of `salt`.
pub fn held_out(salt: &str, customer: Uuid, percent: u8) -> bool {
    bucket(salt, customer) < u32::from(percent.min(100)) * 100
}

/// The arm (index into `weights`) of the customer in a split salted by `salt`; `None` when
/// every weight is 0.
pub fn arm(salt: &str, customer: Uuid, weights: &[u32]) -> Option<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let point = u64::from(bucket(salt, customer)) * total / 10_000;
    let mut acc = 0u64;
    for (i, w) in weights.iter().enumerate() {
        acc += u64::from(*w);
        if point < acc {
            return Some(i);
        }
    }
    weights.len().checked_sub(1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn groups_are_the_size_asked_and_independent_per_salt() {
        let ids: Vec<Uuid> = (0..20_000u128)
            .map(|n| Uuid::from_u128(n * 7919 + 3))
            .collect();
        let a = ids
            .iter()
            .filter(|c| held_out("journey-a", **c, 10))
            .count();
        let b = ids
            .iter()
            .filter(|c| held_out("journey-b", **c, 10))
            .count();
        let both = ids
            .iter()
            .filter(|c| held_out("journey-a", **c, 10) && held_out("journey-b", **c, 10))
            .count();
        assert!((1_800..=2_200).contains(&a), "{a}");
        assert!((1_800..=2_200).contains(&b), "{b}");
        // Independent: about 1% in both, not 10%.
        assert!((120..=280).contains(&both), "{both}");
        assert!(!ids.iter().any(|c| held_out("x", *c, 0)));
        assert!(ids.iter().all(|c| held_out("x", *c, 100)));
    }

    #[test]
    fn arms_follow_their_weights() {
        let mut counts = [0usize; 3];
        for n in 0..30_000u128 {
            if let Some(i) = arm("split", Uuid::from_u128(n), &[1, 1, 2]) {
                counts[i] += 1;
            }
        }
        assert!((7_000..=8_000).contains(&counts[0]), "{counts:?}");
        assert!((7_000..=8_000).contains(&counts[1]), "{counts:?}");
        assert!((14_300..=15_700).contains(&counts[2]), "{counts:?}");
        assert_eq!(arm("split", Uuid::nil(), &[0, 0]), None);
    }

    proptest! {
        #[test]
        fn the_same_customer_always_gets_the_same_answer(
            salt in "[a-z0-9-]{1,20}", n in any::<u128>(), percent in 0u8..=100,
            weights in prop::collection::vec(0u32..100, 1..6),
        ) {
            let c = Uuid::from_u128(n);
            prop_assert_eq!(held_out(&salt, c, percent), held_out(&salt, c, percent));
            let a = arm(&salt, c, &weights);
            prop_assert_eq!(a, arm(&salt, c, &weights));
            if let Some(i) = a {
                prop_assert!(weights[i] > 0);
            }
        }
    }
}
