//! Pairwise quality of a clustering against known true pairs: a predicted pair is every pair
//! of records placed in the same cluster.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

/// Pairwise precision, recall and F1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairQuality {
    /// Pairs predicted (same cluster).
    pub predicted: u64,
    /// True pairs.
    pub truth: u64,
    /// Predicted pairs that are true.
    pub correct: u64,
    /// correct / predicted (1 when nothing is predicted).
    pub precision: f64,
    /// correct / truth (1 when there is no true pair).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
}

/// Scores `labels` (a cluster label per record) against `truth` (pairs of record indices).
pub fn pair_quality(labels: &[u32], truth: &[(u32, u32)]) -> PairQuality {
    let truth: HashSet<(u32, u32)> = truth.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
    let mut members: HashMap<u32, Vec<u32>> = HashMap::new();
    for (i, &label) in labels.iter().enumerate() {
        members.entry(label).or_default().push(i as u32);
    }
    let (mut predicted, mut correct) = (0u64, 0u64);
    for group in members.values() {
        for (x, &a) in group.iter().enumerate() {
            for &b in &group[x + 1..] {
                predicted += 1;
                correct += u64::from(truth.contains(&(a.min(b), a.max(b))));
            }
        }
    }
    let ratio = |n: u64, d: u64| if d == 0 { 1.0 } else { n as f64 / d as f64 };
    let precision = ratio(correct, predicted);
    let recall = ratio(correct, truth.len() as u64);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    PairQuality {
        predicted,
        truth: truth.len() as u64,
        correct,
        precision,
        recall,
        f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pairs_within_clusters() {
        // Clusters {0,1,2} and {3}; truth (0,1), (3,4).
        let q = pair_quality(&[0, 0, 0, 1, 2], &[(1, 0), (3, 4)]);
        assert_eq!((q.predicted, q.truth, q.correct), (3, 2, 1));
        assert!((q.precision - 1.0 / 3.0).abs() < 1e-12);
        assert!((q.recall - 0.5).abs() < 1e-12);
        assert!((q.f1 - 0.4).abs() < 1e-12);
    }
}
