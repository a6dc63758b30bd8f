//! The Fellegi–Sunter model: for every field and agreement level, `m` is the probability of
//! that level among true matches and `u` among non-matches; a pair's match weight is the sum of
//! `log2(m / u)` over its non-missing fields. `m`, `u` and the share of matches are estimated
//! without labels by expectation–maximisation over the candidate pairs' comparison patterns,
//! assuming fields independent given the match status.
//!
//! EM runs over distinct patterns with their counts: a million candidate pairs have a few
//! thousand distinct patterns, so each iteration is cheap.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::compare::MISSING;
use super::schema::{Schema, MAX_FIELDS};

/// Distinct comparison patterns and how many candidate pairs have each.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    width: usize,
    index: HashMap<u128, usize, BuildHasherDefault<PackedHasher>>,
    rows: Vec<Box<[u8]>>,
    counts: Vec<f64>,
}

/// A pattern of up to [`MAX_FIELDS`] levels packed into one integer: the map key, hashed by
/// one multiplication instead of SipHash over a byte slice (this runs once per pair).
fn pack(pattern: &[u8]) -> u128 {
    pattern
        .iter()
        .fold(0u128, |acc, &level| (acc << 8) | u128::from(level))
}

/// Hasher of packed patterns (not for untrusted keys: patterns are levels we computed).
#[derive(Debug, Clone, Copy, Default)]
pub struct PackedHasher(u64);

impl Hasher for PackedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u128(&mut self, v: u128) {
        let folded = (v as u64) ^ ((v >> 64) as u64).rotate_left(29);
        self.0 = (self.0 ^ folded)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(31);
    }
}

impl Patterns {
    /// An empty set of patterns of `width` fields.
    pub fn new(width: usize) -> Self {
        Self {
            width,
            ..Self::default()
        }
    }

    /// Counts one pair with `pattern` (at most [`MAX_FIELDS`] levels) and returns the
    /// pattern's index.
    pub fn add(&mut self, pattern: &[u8]) -> usize {
        debug_assert_eq!(pattern.len(), self.width);
        debug_assert!(pattern.len() <= MAX_FIELDS);
        let key = pack(pattern);
        if let Some(&i) = self.index.get(&key) {
            self.counts[i] += 1.0;
            return i;
        }
        let i = self.rows.len();
        self.rows.push(pattern.into());
        self.counts.push(1.0);
        self.index.insert(key, i);
        i
    }

    /// The pattern at `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        &self.rows[i]
    }

    /// How many distinct patterns.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// How many pairs in all.
    pub fn total(&self) -> f64 {
        self.counts.iter().sum()
    }
}

/// Settings of the estimation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmOptions {
    /// Most iterations (default 500).
    pub max_iterations: usize,
    /// Stop when no parameter moves more than this (default 1e-7).
    pub tolerance: f64,
    /// Starting share of matches among candidates (default 0.1).
    pub initial_prior: f64,
    /// Pseudo-count added to every level, so no weight is infinite (default 0.5).
    pub smoothing: f64,
}

impl Default for EmOptions {
    fn default() -> Self {
        Self {
            max_iterations: 500,
            tolerance: 1e-7,
            initial_prior: 0.1,
            smoothing: 0.5,
        }
    }
}

/// m and u of one field, per level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldParameters {
    /// Field name.
    pub field: String,
    /// P(level | match).
    pub m: Vec<f64>,
    /// P(level | non-match).
    pub u: Vec<f64>,
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Estimated share of matches among the candidate pairs.
    pub prior: f64,
    /// Per field, in schema order.
    pub fields: Vec<FieldParameters>,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the estimate converged within the tolerance.
    pub converged: bool,
}

/// One field's part of a pair's weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldWeight {
    /// Field name.
    pub field: String,
    /// Agreement level (0 strongest), `None` when missing on a side.
    pub level: Option<u8>,
    /// `log2(m / u)` of that level; 0 when missing.
    pub weight: f64,
}

impl Model {
    /// The weight of each field of `pattern`.
    pub fn explain(&self, pattern: &[u8]) -> Vec<FieldWeight> {
        self.fields
            .iter()
            .zip(pattern)
            .map(|(f, &level)| FieldWeight {
                field: f.field.clone(),
                level: (level != MISSING).then_some(level),
                weight: level_weight(f, level),
            })
            .collect()
    }

    /// The match weight of `pattern`: the sum of its fields' weights (bits).
    pub fn weight(&self, pattern: &[u8]) -> f64 {
        self.fields
            .iter()
            .zip(pattern)
            .map(|(f, &level)| level_weight(f, level))
            .sum()
    }

    /// The probability that a candidate pair with `pattern` is a match.
    pub fn probability(&self, pattern: &[u8]) -> f64 {
        let log_odds = (self.prior / (1.0 - self.prior)).log2() + self.weight(pattern);
        1.0 / (1.0 + (-log_odds).exp2())
    }
}

fn level_weight(f: &FieldParameters, level: u8) -> f64 {
    if level == MISSING {
        return 0.0;
    }
    let l = usize::from(level);
    match (f.m.get(l), f.u.get(l)) {
        (Some(m), Some(u)) => (m / u).log2(),
        _ => 0.0,
    }
}

/// Estimates the model from the candidate pairs' patterns by EM.
///
/// Starting point: `m` puts 90% on the strongest level, the rest decreasing; `u` is each
/// level's share among all candidates (nearly all of them non-matches).
pub fn estimate(schema: &Schema, patterns: &Patterns, options: EmOptions) -> Model {
    let levels: Vec<usize> = schema
        .fields
        .iter()
        .map(|f| f.comparator.levels())
        .collect();
    let mut m: Vec<Vec<f64>> = levels.iter().map(|&n| initial_m(n)).collect();
    let mut u: Vec<Vec<f64>> = levels.iter().map(|&n| vec![0.0; n]).collect();
    for (row, &count) in patterns.rows.iter().zip(&patterns.counts) {
        for (f, &level) in row.iter().enumerate() {
            if level != MISSING {
                u[f][usize::from(level)] += count;
            }
        }
    }
    for u_f in &mut u {
        normalise(u_f, options.smoothing);
    }
    let mut prior = options.initial_prior;
    let mut iterations = 0;
    let mut converged = false;
    let mut posterior = vec![0.0; patterns.len()];
    while iterations < options.max_iterations {
        iterations += 1;
        // E: the probability that each pattern is a match.
        let log_prior_odds = (prior / (1.0 - prior)).ln();
        for (p, row) in posterior.iter_mut().zip(&patterns.rows) {
            let mut log_odds = log_prior_odds;
            for (f, &level) in row.iter().enumerate() {
                if level != MISSING {
                    let l = usize::from(level);
                    log_odds += (m[f][l] / u[f][l]).ln();
                }
            }
            *p = 1.0 / (1.0 + (-log_odds).exp());
        }
        // M: expected counts of each level among matches and non-matches.
        let mut new_m: Vec<Vec<f64>> = levels.iter().map(|&n| vec![0.0; n]).collect();
        let mut new_u = new_m.clone();
        let mut matches = 0.0;
        for ((row, &count), &p) in patterns.rows.iter().zip(&patterns.counts).zip(&posterior) {
            matches += p * count;
            for (f, &level) in row.iter().enumerate() {
                if level != MISSING {
                    new_m[f][usize::from(level)] += p * count;
                    new_u[f][usize::from(level)] += (1.0 - p) * count;
                }
            }
        }
        for (m_f, u_f) in new_m.iter_mut().zip(&mut new_u) {
            normalise(m_f, options.smoothing);
            normalise(u_f, options.smoothing);
        }
        let total = patterns.total().max(1.0);
        let new_prior = (matches / total).clamp(1e-9, 1.0 - 1e-9);
        let change = max_change(&m, &new_m)
            .max(max_change(&u, &new_u))
            .max((prior - new_prior).abs());
        (m, u, prior) = (new_m, new_u, new_prior);
        if change < options.tolerance {
            converged = true;
            break;
        }
    }
    Model {
        prior,
        fields: schema
            .fields
            .iter()
            .zip(m.into_iter().zip(u))
            .map(|(f, (m, u))| FieldParameters {
                field: f.name.clone(),
                m,
                u,
            })
            .collect(),
        iterations,
        converged,
    }
}

fn initial_m(levels: usize) -> Vec<f64> {
    let mut m = vec![0.0; levels];
    m[0] = 0.9;
    let rest: f64 = (1..levels).map(|l| 1.0 / l as f64).sum();
    for (l, v) in m.iter_mut().enumerate().skip(1) {
        *v = 0.1 * (1.0 / l as f64) / rest;
    }
    m
}

/// Turns counts into probabilities, with `smoothing` added to each.
fn normalise(counts: &mut [f64], smoothing: f64) {
    let total: f64 = counts.iter().sum::<f64>() + smoothing * counts.len() as f64;
    for c in counts.iter_mut() {
        *c = (*c + smoothing) / total;
    }
}

fn max_change(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matching::blocking::{BlockingKey, KeyPart};
    use crate::domain::matching::compare::Comparator;
    use crate::domain::matching::schema::Field;

    fn schema(n: usize) -> Schema {
        Schema {
            fields: (0..n)
                .map(|i| Field {
                    name: format!("f{i}"),
                    comparator: Comparator::Exact,
                })
                .collect(),
            swappable: None,
            blocking: vec![BlockingKey {
                parts: vec![KeyPart::whole("f0")],
                unordered: false,
            }],
        }
    }

    /// Pairs drawn from a known model: EM must find its parameters again.
    #[test]
    fn recovers_known_parameters() {
        let (m_true, u_true, prior_true) = ([0.95, 0.9, 0.85, 0.9], [0.1, 0.2, 0.05, 0.3], 0.2);
        let s = schema(4);
        let mut patterns = Patterns::new(4);
        // Expected counts of every pattern, exactly, for 100,000 pairs.
        for bits in 0u32..16 {
            let row: Vec<u8> = (0..4).map(|f| ((bits >> f) & 1) as u8).collect();
            let (mut pm, mut pu): (f64, f64) = (prior_true, 1.0 - prior_true);
            for (f, &level) in row.iter().enumerate() {
                pm *= if level == 0 {
                    m_true[f]
                } else {
                    1.0 - m_true[f]
                };
                pu *= if level == 0 {
                    u_true[f]
                } else {
                    1.0 - u_true[f]
                };
            }
            let count = ((pm + pu) * 100_000.0).round() as usize;
            for _ in 0..count {
                patterns.add(&row);
            }
        }
        let model = estimate(
            &s,
            &patterns,
            EmOptions {
                smoothing: 0.0,
                ..EmOptions::default()
            },
        );
        assert!(model.converged, "{model:?}");
        assert!((model.prior - prior_true).abs() < 0.01, "{}", model.prior);
        for (f, p) in model.fields.iter().enumerate() {
            assert!((p.m[0] - m_true[f]).abs() < 0.01, "m{f} {}", p.m[0]);
            assert!((p.u[0] - u_true[f]).abs() < 0.01, "u{f} {}", p.u[0]);
        }
        // Agreement on every field is a match, disagreement on every field is not.
        assert!(model.probability(&[0, 0, 0, 0]) > 0.99);
        assert!(model.probability(&[1, 1, 1, 1]) < 0.01);
        let explained = model.explain(&[0, MISSING, 1, 0]);
        assert_eq!(explained[1].level, None);
        assert_eq!(explained[1].weight, 0.0);
        let sum: f64 = explained.iter().map(|w| w.weight).sum();
        assert!((sum - model.weight(&[0, MISSING, 1, 0])).abs() < 1e-12);
    }
}
