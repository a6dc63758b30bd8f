//! A tenant's loyalty programme: currency, earn rate and rounding, multipliers, caps, bonuses,
//! expiry and tiers. Stored as one checked JSON document per tenant.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How fractional points are rounded when earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Down (the default: a programme never gives more than it promises).
    Floor,
    /// To the nearest, halves up.
    Nearest,
    /// Up.
    Ceil,
}

impl Rounding {
    /// `x` rounded to whole points.
    pub fn apply(self, x: f64) -> i64 {
        let r = match self {
            Rounding::Floor => (x + 1e-9).floor(),
            Rounding::Nearest => x.round(),
            Rounding::Ceil => (x - 1e-9).ceil(),
        };
        r.clamp(-1e15, 1e15) as i64
    }
}

/// A tier: reached when points earned in the rolling window reach `threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Its name (`silver`).
    pub name: String,
    /// Points earned in the window needed to qualify.
    pub threshold: i64,
    /// Earn multiplier for members of the tier (default 1).
    #[serde(default = "one")]
    pub multiplier: f64,
}

fn one() -> f64 {
    1.0
}

/// The length of an earning cap's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapPeriod {
    /// A UTC day.
    Day,
    /// An ISO week (UTC).
    Week,
    /// A calendar month (UTC).
    Month,
}

/// At most `max_points` earned from orders per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PointsCap)]
pub struct Cap {
    /// The period.
    pub period: CapPeriod,
    /// Most points from orders in one period.
    pub max_points: i64,
}

/// Fixed bonuses in points (0 disables one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Bonuses {
    /// Once per customer, on `Signed Up`.
    pub sign_up: i64,
    /// Once a year, on the first event of the customer's birthday (trait `birthday`).
    pub birthday: i64,
    /// Per `Referral Completed` (to the referrer, the event's customer).
    pub referral: i64,
    /// Per `Review Posted`.
    pub review: i64,
    /// Per `Social Mention` whose `sentiment` is positive (`"positive"` or a number ≥ 0.5).
    pub positive_mention: i64,
}

/// A tenant's programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Programme {
    /// Name of the points currency shown to customers (`points`, `miles`).
    #[serde(default = "points")]
    pub currency: String,
    /// Points per unit of order revenue (default 1).
    #[serde(default = "one")]
    pub earn_rate: f64,
    /// Rounding of earned points (default floor).
    #[serde(default = "floor")]
    pub rounding: Rounding,
    /// Multipliers per product category (`products[].category`, lower case), applied to that
    /// category's share of the order.
    #[serde(default)]
    pub category_multipliers: BTreeMap<String, f64>,
    /// Caps on points from orders.
    #[serde(default)]
    pub caps: Vec<Cap>,
    /// Bonuses.
    #[serde(default)]
    pub bonuses: Bonuses,
    /// Points expire this many days after they were earned (none: never).
    #[serde(default)]
    pub expiry_days: Option<u32>,
    /// Whether a balance may go negative (refunds after redemption); default false.
    #[serde(default)]
    pub allow_negative: bool,
    /// Tiers, by ascending threshold; the first has threshold 0 and is the base tier.
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// Days of the rolling window tiers qualify on (default 365).
    #[serde(default = "year")]
    pub tier_window_days: u32,
    /// A tier is kept at least this many days; downgrades happen only at the end of such a
    /// period (default 365).
    #[serde(default = "year")]
    pub tier_period_days: u32,
    /// An unconfirmed reward reservation is released after this many seconds (default 900).
    #[serde(default = "quarter_hour")]
    pub reservation_timeout_secs: u32,
}

fn points() -> String {
    "points".into()
}
fn floor() -> Rounding {
    Rounding::Floor
}
fn year() -> u32 {
    365
}
fn quarter_hour() -> u32 {
    900
}

impl Default for Programme {
    fn default() -> Self {
        serde_json::from_str("{}").unwrap_or_else(|_| Self {
            currency: points(),
            earn_rate: 1.0,
            rounding: Rounding::Floor,
            category_multipliers: BTreeMap::new(),
            caps: Vec::new(),
            bonuses: Bonuses::default(),
            expiry_days: None,
            allow_negative: false,
            tiers: Vec::new(),
            tier_window_days: 365,
            tier_period_days: 365,
            reservation_timeout_secs: 900,
        })
    }
}

impl Programme {
    /// What is wrong with the programme, if anything (shown to the API caller).
    pub fn problem(&self) -> Option<String> {
        if self.currency.trim().is_empty() || self.currency.len() > 40 {
            return Some("currency must be 1 to 40 characters".into());
        }
        if !(self.earn_rate.is_finite() && self.earn_rate >= 0.0 && self.earn_rate <= 1e6) {
            return Some("earn_rate must be 0 to 1000000".into());
        }
        if let Some((c, m)) = self
            .category_multipliers
            .iter()
            .find(|(_, m)| !(m.is_finite() && **m >= 0.0 && **m <= 100.0))
        {
            return Some(format!("category_multipliers.{c}: {m} must be 0 to 100"));
        }
        if self.caps.iter().any(|c| c.max_points < 0) {
            return Some("caps: max_points must not be negative".into());
        }
        let b = self.bonuses;
        if [
            b.sign_up,
            b.birthday,
            b.referral,
            b.review,
            b.positive_mention,
        ]
        .iter()
        .any(|p| *p < 0)
        {
            return Some("bonuses must not be negative".into());
        }
        if self.expiry_days == Some(0) {
            return Some("expiry_days must be at least 1 (or absent: never)".into());
        }
        if let Some(first) = self.tiers.first() {
            if first.threshold != 0 {
                return Some("tiers: the first tier is the base tier, with threshold 0".into());
            }
        }
        for w in self.tiers.windows(2) {
            if w[1].threshold <= w[0].threshold {
                return Some("tiers: thresholds must increase".into());
            }
        }
        if self.tiers.iter().any(|t| {
            t.name.trim().is_empty()
                || !(t.multiplier.is_finite() && t.multiplier >= 0.0 && t.multiplier <= 100.0)
        }) {
            return Some("tiers: a name and a multiplier 0 to 100 each".into());
        }
        let mut names: Vec<&str> = self.tiers.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        if names.len() != self.tiers.len() {
            return Some("tiers: names must be unique".into());
        }
        if self.tier_window_days == 0 || self.tier_period_days == 0 {
            return Some("tier_window_days and tier_period_days must be at least 1".into());
        }
        if !(10..=86_400).contains(&self.reservation_timeout_secs) {
            return Some("reservation_timeout_secs must be 10 to 86400".into());
        }
        None
    }

    /// The tier reached with `qualifying` points (`None` without tiers).
    pub fn tier_for(&self, qualifying: i64) -> Option<&Tier> {
        self.tiers.iter().rev().find(|t| qualifying >= t.threshold)
    }

    /// The position of tier `name` (higher is better).
    pub fn rank_of(&self, name: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let p = Programme::default();
        assert_eq!(p.earn_rate, 1.0);
        assert_eq!(p.rounding, Rounding::Floor);
        assert_eq!(p.problem(), None);
        let bad: Result<Programme, _> = serde_json::from_str(r#"{"earn_rate": 1, "script": "x"}"#);
        assert!(bad.is_err());
        let p: Programme = serde_json::from_str(
            r#"{"tiers": [{"name": "base", "threshold": 0}, {"name": "gold", "threshold": 0}]}"#,
        )
        .unwrap();
        assert!(p.problem().unwrap().contains("increase"));
        let p: Programme = serde_json::from_str(r#"{"tiers": [{"name": "base", "threshold": 0}, {"name": "gold", "threshold": 1000, "multiplier": 2}]}"#).unwrap();
        assert_eq!(p.tier_for(999).map(|t| t.name.as_str()), Some("base"));
        assert_eq!(p.tier_for(1000).map(|t| t.name.as_str()), Some("gold"));
    }

    #[test]
    fn rounding() {
        assert_eq!(Rounding::Floor.apply(12.99), 12);
        assert_eq!(Rounding::Floor.apply(12.999_999_999_9), 13); // float noise
        assert_eq!(Rounding::Nearest.apply(12.5), 13);
        assert_eq!(Rounding::Ceil.apply(12.01), 13);
        assert_eq!(Rounding::Ceil.apply(12.000_000_000_1), 12);
    }
}
