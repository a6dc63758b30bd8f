//! Lifecycle stages for database marketing: whom to acquire (prospects), retain (new, active,
//! at risk) and win back (lapsed, reactivated). A stage is a pure function of the customer's
//! distinct order days, today's date and the tenant's thresholds, so the stream, a recompute
//! and the `score` command agree.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use crm_rules::Stage;

/// Per-tenant thresholds, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// A first order this recent makes a customer `new` (default 30).
    pub new_days: u32,
    /// A last order this recent keeps a customer `active` (default 90).
    pub active_days: u32,
    /// A last order older than this makes a customer `lapsed` (default 180); between
    /// `active_days` and this, `at_risk`. A gap longer than this between two orders makes the
    /// later one a win-back.
    pub lapsed_days: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            new_days: 30,
            active_days: 90,
            lapsed_days: 180,
        }
    }
}

impl Thresholds {
    /// What is wrong with these thresholds, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.new_days > self.active_days {
            return Some("new_days must not exceed active_days".into());
        }
        if self.active_days >= self.lapsed_days {
            return Some("active_days must be less than lapsed_days".into());
        }
        if self.lapsed_days > 3650 {
            return Some("lapsed_days must be at most 3650".into());
        }
        None
    }
}

/// The stage on `today` of a customer whose distinct order days are `order_days` (ascending;
/// days after `today` are ignored).
pub fn stage(order_days: &[NaiveDate], today: NaiveDate, t: &Thresholds) -> Stage {
    let days: Vec<NaiveDate> = order_days.iter().copied().filter(|d| *d <= today).collect();
    let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
        return Stage::Prospect;
    };
    let since = (today - last).num_days();
    if since > i64::from(t.lapsed_days) {
        return Stage::Lapsed;
    }
    if since > i64::from(t.active_days) {
        return Stage::AtRisk;
    }
    if (today - first).num_days() <= i64::from(t.new_days) {
        return Stage::New;
    }
    match days.len().checked_sub(2).and_then(|i| days.get(i)) {
        Some(&previous) if (last - previous).num_days() > i64::from(t.lapsed_days) => {
            Stage::Reactivated
        }
        _ => Stage::Active,
    }
}

/// The first instant after `now` at which [`stage`] may give another answer without a new
/// order: midnight UTC of the day a threshold is crossed. `None` when nothing can change.
pub fn next_change(
    order_days: &[NaiveDate],
    now: DateTime<Utc>,
    t: &Thresholds,
) -> Option<DateTime<Utc>> {
    let today = now.date_naive();
    let first = order_days.first()?;
    let last = order_days.iter().rfind(|d| **d <= today).unwrap_or(first);
    let mut days = vec![
        *last + Duration::days(i64::from(t.active_days) + 1),
        *last + Duration::days(i64::from(t.lapsed_days) + 1),
        *first + Duration::days(i64::from(t.new_days) + 1),
    ];
    // Orders dated in the future count from their day on.
    days.extend(order_days.iter().filter(|d| **d > today).copied());
    days.into_iter()
        .filter(|d| *d > today)
        .min()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Duration::days(n)
    }

    #[test]
    fn stages_follow_the_thresholds() {
        let t = Thresholds::default();
        let today = day(1000);
        assert_eq!(stage(&[], today, &t), Stage::Prospect);
        assert_eq!(stage(&[day(990)], today, &t), Stage::New);
        assert_eq!(stage(&[day(970)], today, &t), Stage::New); // exactly 30 days
        assert_eq!(stage(&[day(969)], today, &t), Stage::Active);
        assert_eq!(stage(&[day(800), day(950)], today, &t), Stage::Active);
        assert_eq!(stage(&[day(800), day(909)], today, &t), Stage::AtRisk);
        assert_eq!(stage(&[day(800), day(820)], today, &t), Stage::AtRisk); // exactly 180 days
        assert_eq!(stage(&[day(800), day(819)], today, &t), Stage::Lapsed);
        assert_eq!(stage(&[day(500), day(990)], today, &t), Stage::Reactivated);
        // A gap of exactly lapsed_days is not a win-back.
        assert_eq!(stage(&[day(810), day(990)], today, &t), Stage::Active);
        // Orders after today do not count yet.
        assert_eq!(stage(&[day(1001)], today, &t), Stage::Prospect);
    }

    proptest! {
        /// Between now and `next_change` the stage never changes, and at it the stage may.
        #[test]
        fn stage_is_constant_until_next_change(
            mut offsets in proptest::collection::vec(0i64..600, 0..6),
            now_offset in 0i64..700,
        ) {
            offsets.sort_unstable();
            offsets.dedup();
            let days: Vec<NaiveDate> = offsets.iter().map(|o| day(*o)).collect();
            let t = Thresholds::default();
            let now = day(now_offset).and_hms_opt(12, 0, 0).unwrap().and_utc();
            let here = stage(&days, now.date_naive(), &t);
            match next_change(&days, now, &t) {
                None => {
                    for k in 1..400 {
                        prop_assert_eq!(stage(&days, now.date_naive() + Duration::days(k), &t), here);
                    }
                }
                Some(at) => {
                    prop_assert!(at > now);
                    let mut d = now.date_naive();
                    while d < at.date_naive() {
                        prop_assert_eq!(stage(&days, d, &t), here);
                        d += Duration::days(1);
                    }
                }
            }
        }
    }
}
