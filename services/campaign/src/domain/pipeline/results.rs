//! Closed-opportunity results per owner from a histogram: how many were won and lost, the win
//! rate, the mean cycle (exact, from summed durations) and the median cycle in whole days
//! (interpolated between the two middle values, as PostgreSQL's `percentile_cont(0.5)`).
//!
//! The sales report keeps closed opportunities as counts per owner, status and whole days from
//! creation to closing (`opportunity_closed_totals`), so the median comes from the histogram
//! rather than from every row.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Closed opportunities of one status, owner and whole-day cycle length.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedCount {
    /// The owner (absent: nobody).
    pub owner: Option<String>,
    /// Won (true) or lost.
    pub won: bool,
    /// Whole days from creation to closing.
    pub cycle_day: i32,
    /// How many.
    pub count: i64,
    /// Their durations from creation to closing, summed, in seconds.
    pub cycle_seconds: f64,
}

/// Closed opportunities of one owner (absent: nobody) in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OwnerResult {
    /// The owner.
    pub owner: Option<String>,
    /// Won.
    pub won: i64,
    /// Lost.
    pub lost: i64,
    /// `won / (won + lost)`.
    pub win_rate: Option<f64>,
    /// Mean days from creation to winning.
    pub cycle_days: Option<f64>,
    /// Median whole days from creation to winning.
    pub median_cycle_days: Option<f64>,
}

#[derive(Default)]
struct Tally {
    won: i64,
    lost: i64,
    won_seconds: f64,
    /// Won opportunities per whole-day cycle length.
    won_days: BTreeMap<i32, i64>,
}

impl Tally {
    fn add(&mut self, c: &ClosedCount) {
        if c.won {
            self.won += c.count;
            self.won_seconds += c.cycle_seconds;
            *self.won_days.entry(c.cycle_day).or_default() += c.count;
        } else {
            self.lost += c.count;
        }
    }

    fn result(&self, owner: Option<String>) -> OwnerResult {
        let closed = self.won + self.lost;
        OwnerResult {
            owner,
            won: self.won,
            lost: self.lost,
            win_rate: (closed > 0).then(|| self.won as f64 / closed as f64),
            cycle_days: (self.won > 0).then(|| self.won_seconds / self.won as f64 / 86_400.0),
            median_cycle_days: median(&self.won_days),
        }
    }
}

/// The value at 0-based position `k` of the sorted values a histogram counts.
fn nth(histogram: &BTreeMap<i32, i64>, k: i64) -> Option<i32> {
    let mut seen = 0;
    for (value, count) in histogram {
        seen += count;
        if k < seen {
            return Some(*value);
        }
    }
    None
}

/// The median of the values a histogram counts (positive counts), interpolated as
/// `percentile_cont(0.5)`.
pub fn median(histogram: &BTreeMap<i32, i64>) -> Option<f64> {
    let n: i64 = histogram.values().filter(|c| **c > 0).sum();
    if n == 0 {
        return None;
    }
    let at = (n - 1) as f64 / 2.0;
    let (lo, hi) = (at.floor() as i64, at.ceil() as i64);
    let (a, b) = (nth(histogram, lo)?, nth(histogram, hi)?);
    Some(f64::from(a) + (at - lo as f64) * f64::from(b - a))
}

/// One result per owner with a closed opportunity (ordered by owner, nobody last), then all
/// together (owner absent), from the histogram's rows (several rows may share a key: they
/// add up; rows whose counts cancel out count nothing).
pub fn results(rows: &[ClosedCount]) -> Vec<OwnerResult> {
    let mut owners: BTreeMap<(bool, Option<&str>), Tally> = BTreeMap::new();
    let mut all = Tally::default();
    for r in rows.iter().filter(|r| r.count != 0) {
        owners
            .entry((r.owner.is_none(), r.owner.as_deref()))
            .or_default()
            .add(r);
        all.add(r);
    }
    let mut out: Vec<OwnerResult> = owners
        .into_iter()
        .filter(|(_, t)| t.won + t.lost > 0)
        .map(|((_, owner), t)| t.result(owner.map(str::to_owned)))
        .collect();
    out.push(all.result(None));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(owner: Option<&str>, won: bool, cycle_day: i32, count: i64) -> ClosedCount {
        ClosedCount {
            owner: owner.map(str::to_owned),
            won,
            cycle_day,
            count,
            cycle_seconds: count as f64 * (f64::from(cycle_day) + 0.5) * 86_400.0,
        }
    }

    #[test]
    fn medians_interpolate_like_percentile_cont() {
        // 1, 2, 3, 4 → 2.5; 1, 2, 2 → 2; nothing → none.
        let h = BTreeMap::from([(1, 1), (2, 1), (3, 1), (4, 1)]);
        assert_eq!(median(&h), Some(2.5));
        assert_eq!(median(&BTreeMap::from([(1, 1), (2, 2)])), Some(2.0));
        assert_eq!(median(&BTreeMap::from([(7, 0)])), None);
    }

    #[test]
    fn owners_in_order_nobody_last_then_everyone() {
        let rows = [
            row(Some("bo"), true, 10, 2),
            row(None, false, 3, 1),
            row(Some("ana"), true, 4, 1),
            row(Some("ana"), false, 2, 1),
            row(Some("bo"), true, 10, -1),
        ];
        let r = results(&rows);
        let owners: Vec<Option<&str>> = r.iter().map(|x| x.owner.as_deref()).collect();
        assert_eq!(owners, [Some("ana"), Some("bo"), None, None]);
        assert_eq!((r[0].won, r[0].lost, r[0].win_rate), (1, 1, Some(0.5)));
        assert_eq!(r[0].cycle_days, Some(4.5));
        assert_eq!((r[1].won, r[1].median_cycle_days), (1, Some(10.0)));
        assert_eq!((r[2].won, r[2].lost, r[2].cycle_days), (0, 1, None));
        let all = &r[3];
        assert_eq!((all.won, all.lost), (2, 2));
        assert_eq!(all.median_cycle_days, Some(7.0));
    }

    #[test]
    fn no_closed_opportunity_gives_one_empty_total() {
        assert_eq!(
            results(&[]),
            [OwnerResult {
                owner: None,
                won: 0,
                lost: 0,
                win_rate: None,
                cycle_days: None,
                median_cycle_days: None
            }]
        );
    }

    proptest! {
        /// The histogram's median is the median of the values it counts, sorted.
        #[test]
        fn the_median_of_a_histogram_is_the_median_of_its_values(
            values in proptest::collection::vec(0i32..400, 1..200)
        ) {
            let mut h = BTreeMap::new();
            for v in &values {
                *h.entry(*v).or_insert(0i64) += 1;
            }
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let n = sorted.len();
            let expected = if n % 2 == 1 {
                f64::from(sorted[n / 2])
            } else {
                (f64::from(sorted[n / 2 - 1]) + f64::from(sorted[n / 2])) / 2.0
            };
            prop_assert_eq!(median(&h), Some(expected));
        }
    }
}
