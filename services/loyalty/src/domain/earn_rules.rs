//! What an event earns: order points (rate, category and tier multipliers, rounding, caps),
//! the share of an order a refund takes back, and which events earn bonuses. Pure functions.

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};

use crate::domain::programme::{Cap, CapPeriod, Programme};

/// The revenue of an order event (`revenue`, else `total`), when positive and finite.
pub fn revenue(properties: &Map<String, Value>) -> Option<f64> {
    properties
        .get("revenue")
        .or_else(|| properties.get("total"))
        .and_then(Value::as_f64)
        .filter(|r| r.is_finite() && *r >= 0.0)
}

/// Points an order earns before caps: revenue × earn rate × tier multiplier, each product's
/// share of the revenue (price × quantity) taking its category's multiplier, then rounded.
pub fn order_points(p: &Programme, properties: &Map<String, Value>, tier_multiplier: f64) -> i64 {
    let Some(revenue) = revenue(properties) else {
        return 0;
    };
    let products: Vec<(f64, f64)> = properties
        .get("products")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .take(1000)
                .filter_map(|item| {
                    let price = item.get("price").and_then(Value::as_f64)?;
                    let quantity = item.get("quantity").and_then(Value::as_f64).unwrap_or(1.0);
                    let amount = price * quantity;
                    let multiplier = item
                        .get("category")
                        .and_then(Value::as_str)
                        .and_then(|c| p.category_multipliers.get(&c.trim().to_lowercase()))
                        .copied()
                        .unwrap_or(1.0);
                    (amount.is_finite() && amount > 0.0).then_some((amount, multiplier))
                })
                .collect()
        })
        .unwrap_or_default();
    let total: f64 = products.iter().map(|(a, _)| a).sum();
    let weighted = if total > 0.0 {
        products.iter().map(|(a, m)| revenue * a / total * m).sum()
    } else {
        revenue
    };
    p.rounding
        .apply(weighted * p.earn_rate * tier_multiplier)
        .max(0)
}

/// The key of the cap period containing `at` (`day:2026-11-23`, `week:2026-W48`, `month:2026-11`).
pub fn period_key(cap: &Cap, at: DateTime<Utc>) -> String {
    let d = at.date_naive();
    match cap.period {
        CapPeriod::Day => format!("day:{d}"),
        CapPeriod::Week => {
            let w = d.iso_week();
            format!("week:{}-W{:02}", w.year(), w.week())
        }
        CapPeriod::Month => format!("month:{}-{:02}", d.year(), d.month()),
    }
}

/// `points` limited by every cap, given the points already earned in each cap's period.
pub fn capped(points: i64, caps: &[Cap], used: &[i64]) -> i64 {
    caps.iter()
        .zip(used)
        .fold(points, |p, (cap, used)| {
            p.min((cap.max_points - used).max(0))
        })
        .max(0)
}

/// Points a refund takes back: the refunded share of the order's points (all that remain when
/// the refund names no amount), never more than what is left of them.
pub fn refund_points(
    earned: i64,
    already_taken: i64,
    order_revenue: f64,
    refunded: Option<f64>,
) -> i64 {
    let left = (earned - already_taken).max(0);
    let share = match refunded {
        Some(r) if order_revenue > 0.0 => (earned as f64 * (r / order_revenue)).round() as i64,
        _ => left,
    };
    share.clamp(0, left)
}

/// Whether a `Social Mention` is positive: `sentiment` is `"positive"` or a number ≥ 0.5; an
/// event that carries no sentiment is scored here from its `text` (in its `language`, if
/// given) by the shared lexicons (`crm-sentiment`), with the same threshold.
pub fn positive(properties: &Map<String, Value>) -> bool {
    match properties.get("sentiment") {
        Some(Value::String(s)) => s.eq_ignore_ascii_case("positive"),
        Some(Value::Null) | None => {
            properties
                .get("text")
                .and_then(Value::as_str)
                .is_some_and(|text| {
                    let language = properties.get("language").and_then(Value::as_str);
                    crm_sentiment::score(text, language).score >= 0.5
                })
        }
        Some(v) => v.as_f64().is_some_and(|x| x >= 0.5),
    }
}

/// What kind of bonus an event name earns, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bonus {
    /// `Signed Up` (once per customer).
    SignUp,
    /// `Referral Completed`.
    Referral,
    /// `Review Posted`.
    Review,
    /// A positive `Social Mention`.
    PositiveMention,
}

impl Bonus {
    /// The bonus event `name` with `properties` earns.
    pub fn of(name: &str, properties: &Map<String, Value>) -> Option<Self> {
        match name {
            "Signed Up" => Some(Bonus::SignUp),
            "Referral Completed" => Some(Bonus::Referral),
            "Review Posted" => Some(Bonus::Review),
            "Social Mention" if positive(properties) => Some(Bonus::PositiveMention),
            _ => None,
        }
    }

    /// Its points in `p`.
    pub fn points(self, p: &Programme) -> i64 {
        match self {
            Bonus::SignUp => p.bonuses.sign_up,
            Bonus::Referral => p.bonuses.referral,
            Bonus::Review => p.bonuses.review,
            Bonus::PositiveMention => p.bonuses.positive_mention,
        }
    }

    /// Its name in statements.
    pub fn as_str(self) -> &'static str {
        match self {
            Bonus::SignUp => "sign_up",
            Bonus::Referral => "referral",
            Bonus::Review => "review",
            Bonus::PositiveMention => "positive_mention",
        }
    }
}

/// Whether `at` is the birthday `birthday` (ISO `YYYY-MM-DD`; 29 February counts on 28
/// February in other years).
pub fn is_birthday(birthday: &str, at: DateTime<Utc>) -> bool {
    let Ok(b) = chrono::NaiveDate::parse_from_str(birthday, "%Y-%m-%d") else {
        return false;
    };
    let d = at.date_naive();
    let leap = chrono::NaiveDate::from_ymd_opt(d.year(), 2, 29).is_some();
    if b.month() == 2 && b.day() == 29 && !leap {
        return d.month() == 2 && d.day() == 28;
    }
    b.month() == d.month() && b.day() == d.day()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn programme(v: Value) -> Programme {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn orders_earn_by_rate_category_tier_and_rounding() {
        let p = programme(json!({"earn_rate": 2, "category_multipliers": {"shoes": 3}}));
        assert_eq!(order_points(&p, &props(json!({"revenue": 10.75})), 1.0), 21);
        // 60 of shoes (×3) and 40 of bags: 2 × (60 × 3 + 40) = 440, then tier ×1.5 = 660.
        let order = props(json!({"revenue": 100, "products": [
            {"category": "Shoes", "price": 30, "quantity": 2}, {"category": "bags", "price": 40}]}));
        assert_eq!(order_points(&p, &order, 1.0), 440);
        assert_eq!(order_points(&p, &order, 1.5), 660);
        assert_eq!(order_points(&p, &props(json!({"revenue": "x"})), 1.0), 0);
        assert_eq!(order_points(&p, &props(json!({"revenue": -5})), 1.0), 0);
    }

    #[test]
    fn caps_refunds_and_bonuses() {
        let caps = [
            Cap {
                period: CapPeriod::Day,
                max_points: 100,
            },
            Cap {
                period: CapPeriod::Month,
                max_points: 150,
            },
        ];
        assert_eq!(capped(80, &caps, &[50, 60]), 50);
        assert_eq!(capped(80, &caps, &[0, 120]), 30);
        assert_eq!(capped(80, &caps, &[200, 0]), 0);
        assert_eq!(refund_points(100, 0, 50.0, Some(25.0)), 50);
        assert_eq!(refund_points(100, 80, 50.0, Some(25.0)), 20);
        assert_eq!(refund_points(100, 30, 50.0, None), 70);
        assert_eq!(
            Bonus::of("Social Mention", &props(json!({"sentiment": "positive"}))),
            Some(Bonus::PositiveMention)
        );
        // No sentiment carried: the text is scored here.
        assert_eq!(
            Bonus::of(
                "Social Mention",
                &props(json!({"text": "¡Me encantan estas botas, son geniales! 😍"}))
            ),
            Some(Bonus::PositiveMention)
        );
        assert_eq!(
            Bonus::of(
                "Social Mention",
                &props(json!({"text": "Las botas llegaron rotas, qué desastre", "language": "es"}))
            ),
            None
        );
        assert_eq!(
            Bonus::of("Social Mention", &props(json!({"sentiment": "positive"}))),
            Some(Bonus::PositiveMention)
        );
        assert_eq!(
            Bonus::of("Social Mention", &props(json!({"sentiment": 0.2}))),
            None
        );
        assert_eq!(Bonus::of("Social Mention", &props(json!({}))), None);
        assert!(is_birthday(
            "1990-11-23",
            "2026-11-23T10:00:00Z".parse().unwrap()
        ));
        assert!(is_birthday(
            "1992-02-29",
            "2026-02-28T10:00:00Z".parse().unwrap()
        ));
        assert!(!is_birthday(
            "not a date",
            "2026-02-28T10:00:00Z".parse().unwrap()
        ));
        let week = Cap {
            period: CapPeriod::Week,
            max_points: 1,
        };
        assert_eq!(
            period_key(&week, "2026-11-23T10:00:00Z".parse().unwrap()),
            "week:2026-W48"
        );
    }

    proptest! {
        /// Refunds never take back more than was earned, however they are split.
        #[test]
        fn refunds_never_exceed_the_order(earned in 0i64..100_000, revenue in 1.0f64..10_000.0,
                                          parts in proptest::collection::vec(0.0f64..1.0, 1..10)) {
            let mut taken = 0;
            for share in parts {
                let t = refund_points(earned, taken, revenue, Some(revenue * share));
                prop_assert!(t >= 0);
                taken += t;
                prop_assert!(taken <= earned);
            }
        }
    }
}
