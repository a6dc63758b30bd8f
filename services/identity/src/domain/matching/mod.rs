//! Probabilistic record matching (Fellegi–Sunter), the same code for the batch deduplication
//! of a tenant's base, the `crm-identity dedupe` command and the online check of new customers.
//!
//! The pipeline: [`blocking`] picks candidate pairs; [`compare`] turns each pair into a pattern
//! of agreement levels; [`fellegi_sunter`] estimates m and u by EM and scores each pattern;
//! pairs at or above the merge threshold are joined into clusters ([`cluster`]), pairs between
//! the two thresholds go to review, the rest are distinct.

pub mod blocking;
pub mod cluster;
pub mod compare;
pub mod fellegi_sunter;
pub mod generate;
pub mod keys;
pub mod person;
pub mod quality;
pub mod record;
pub mod schema;
pub mod similarity;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::blocking::candidate_pairs;
use self::cluster::UnionFind;
use self::fellegi_sunter::{estimate, EmOptions, Model, Patterns};
use self::schema::{Record, Schema};

/// Thresholds and limits of a matching run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MatchOptions {
    /// Match probability at or above which two records merge (default 0.99).
    pub merge_at: f64,
    /// Match probability at or above which (and below `merge_at`) a pair goes to review
    /// (default 0.5).
    pub review_at: f64,
    /// Blocks with more records than this are skipped (default 1,000).
    pub max_block: usize,
    /// Settings of the EM estimation.
    pub em: EmOptions,
}

impl Default for MatchOptions {
    fn default() -> Self {
        Self {
            merge_at: 0.99,
            review_at: 0.5,
            max_block: 1_000,
            em: EmOptions::default(),
        }
    }
}

impl MatchOptions {
    /// Checks the thresholds: `0 < review_at <= merge_at < 1`.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.review_at > 0.0 && self.review_at <= self.merge_at && self.merge_at < 1.0) {
            return Err(format!(
                "thresholds must satisfy 0 < review_at <= merge_at < 1 (got review_at {}, merge_at {})",
                self.review_at, self.merge_at
            ));
        }
        if self.max_block < 2 {
            return Err("max_block must be at least 2".into());
        }
        Ok(())
    }
}

/// A scored candidate pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoredPair {
    /// Index of the first record.
    pub a: u32,
    /// Index of the second record.
    pub b: u32,
    /// Index of the pair's comparison pattern in [`Outcome::patterns`].
    pub pattern: u32,
    /// Match weight in bits.
    pub weight: f64,
    /// Match probability.
    pub probability: f64,
}

/// Counts and timings of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Records read.
    pub records: usize,
    /// Candidate pairs compared.
    pub candidate_pairs: usize,
    /// Blocks skipped for their size.
    pub skipped_blocks: usize,
    /// Distinct comparison patterns.
    pub distinct_patterns: usize,
    /// Pairs at or above the merge threshold.
    pub matched_pairs: usize,
    /// Pairs sent to review.
    pub review_pairs: usize,
    /// Clusters (singletons included).
    pub clusters: usize,
    /// Time spent blocking.
    pub blocking: Duration,
    /// Time spent comparing pairs.
    pub comparing: Duration,
    /// Time spent estimating m and u.
    pub estimating: Duration,
    /// Time spent scoring and clustering.
    pub classifying: Duration,
}

impl Stats {
    /// Blocking, comparing, estimating and classifying together.
    pub fn total(&self) -> Duration {
        self.blocking + self.comparing + self.estimating + self.classifying
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Cluster label per record (0.., in order of first record).
    pub labels: Vec<u32>,
    /// Pairs merged.
    pub matches: Vec<ScoredPair>,
    /// Pairs for review.
    pub review: Vec<ScoredPair>,
    /// The fitted model.
    pub model: Model,
    /// Distinct comparison patterns.
    pub patterns: Patterns,
    /// Counts and timings.
    pub stats: Stats,
}

/// Deduplicates `records`: blocks, compares, fits the model on these records' own candidate
/// pairs (no labels), classifies and clusters. Fails only on an invalid schema or options.
pub fn deduplicate(
    schema: &Schema,
    records: &[Record],
    options: &MatchOptions,
) -> Result<Outcome, String> {
    schema.validate()?;
    options.validate()?;
    let mut stats = Stats {
        records: records.len(),
        ..Stats::default()
    };

    let started = Instant::now();
    let candidates = candidate_pairs(schema, records, options.max_block);
    stats.blocking = started.elapsed();
    stats.candidate_pairs = candidates.pairs.len();
    stats.skipped_blocks = candidates.skipped_blocks;

    let started = Instant::now();
    let width = schema.fields.len();
    let mut patterns = Patterns::new(width);
    let mut pattern_of = Vec::with_capacity(candidates.pairs.len());
    let mut buf = vec![0u8; width];
    let comparer = schema.comparer();
    for &(a, b) in &candidates.pairs {
        comparer.compare(&records[a as usize], &records[b as usize], &mut buf);
        pattern_of.push(patterns.add(&buf) as u32);
    }
    stats.comparing = started.elapsed();
    stats.distinct_patterns = patterns.len();

    let started = Instant::now();
    let model = estimate(schema, &patterns, options.em);
    stats.estimating = started.elapsed();

    let started = Instant::now();
    let scores: Vec<(f64, f64)> = (0..patterns.len())
        .map(|p| {
            let row = patterns.get(p);
            (model.weight(row), model.probability(row))
        })
        .collect();
    let mut union = UnionFind::new(records.len());
    let (mut matches, mut review) = (Vec::new(), Vec::new());
    for (&(a, b), &p) in candidates.pairs.iter().zip(&pattern_of) {
        let (weight, probability) = scores[p as usize];
        let pair = ScoredPair {
            a,
            b,
            pattern: p,
            weight,
            probability,
        };
        if probability >= options.merge_at {
            union.union(a, b);
            matches.push(pair);
        } else if probability >= options.review_at {
            review.push(pair);
        }
    }
    let labels = union.labels();
    stats.classifying = started.elapsed();
    stats.matched_pairs = matches.len();
    stats.review_pairs = review.len();
    stats.clusters = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);

    Ok(Outcome {
        labels,
        matches,
        review,
        model,
        patterns,
        stats,
    })
}
