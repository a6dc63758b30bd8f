//! What segment rules, stages and scores see of one customer, loaded in one piece so that the
//! streaming path and a full recompute evaluate the same thing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::lifecycle::Stage;
use crate::domain::rfm::RfmScore;

/// The event name of an order (Segment spec).
pub const ORDER_COMPLETED: &str = "Order Completed";

/// All-time totals of one event name.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NameTotals {
    /// Events.
    pub count: i64,
    /// Sum of their `value` (or `revenue`).
    pub sum: f64,
}

/// One retained event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFact {
    /// Its name (`track` events) or kind (`page`, `screen`, ...).
    pub name: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Its properties.
    pub properties: Map<String, Value>,
}

/// Stored predictions of the tenant's value models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueFacts {
    /// Probability alive.
    pub probability_alive: f64,
    /// Expected purchases over the horizon.
    pub expected_purchases: f64,
    /// Lifetime value over the horizon.
    pub lifetime_value: f64,
}

/// One customer as the rules see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The customer.
    pub customer_id: Uuid,
    /// Current traits (from `profile.created` / `profile.updated`).
    pub traits: Map<String, Value>,
    /// Loyalty tier (from `tier.changed`).
    pub loyalty_tier: Option<String>,
    /// First event.
    pub first_seen_at: Option<DateTime<Utc>>,
    /// Last event.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Last order.
    pub last_order_at: Option<DateTime<Utc>>,
    /// Revenue of the last order.
    pub last_order_value: f64,
    /// Categories bought (lower case).
    pub categories: BTreeSet<String>,
    /// Totals per event name, all time.
    pub totals: BTreeMap<String, NameTotals>,
    /// Distinct days with an order, ascending.
    pub order_days: Vec<NaiveDate>,
    /// Events within the tenant's retention, oldest first.
    pub events: Vec<EventFact>,
    /// Last RFM scores, when the customer has ordered and RFM has run.
    pub rfm: Option<RfmScore>,
    /// Last value predictions.
    pub value: Option<ValueFacts>,
    /// Segments the customer is in.
    pub segments: BTreeSet<Uuid>,
    /// What the last evaluation stored.
    pub stored: Stored,
}

/// The stage and lead state the last evaluation stored, to publish changes only.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stored {
    /// Stage (`None` before the first evaluation).
    pub stage: Option<Stage>,
    /// Lead score.
    pub lead_score: f64,
    /// Whether the lead was qualified.
    pub lead_qualified: bool,
    /// When time alone may change something.
    pub recheck_at: Option<DateTime<Utc>>,
}

impl Facts {
    /// Events of any name.
    pub fn events_total(&self) -> i64 {
        self.totals.values().map(|t| t.count).sum()
    }

    /// `Order Completed` events.
    pub fn orders(&self) -> i64 {
        self.totals.get(ORDER_COMPLETED).map_or(0, |t| t.count)
    }

    /// Revenue of all orders.
    pub fn revenue(&self) -> f64 {
        self.totals.get(ORDER_COMPLETED).map_or(0.0, |t| t.sum)
    }

    /// Revenue per order; 0 without orders.
    pub fn average_order_value(&self) -> f64 {
        match self.orders() {
            0 => 0.0,
            n => self.revenue() / n as f64,
        }
    }
}

/// The number an event adds to its name's sum: `properties.value`, else `revenue`, else 0.
pub fn event_amount(properties: &Map<String, Value>) -> f64 {
    properties
        .get("value")
        .or_else(|| properties.get("revenue"))
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
        .unwrap_or(0.0)
}

/// The categories of an order: `properties.category` and `products[].category`, lower case.
pub fn order_categories(properties: &Map<String, Value>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |v: Option<&Value>| {
        if let Some(s) = v.and_then(Value::as_str).map(str::trim) {
            if !s.is_empty() && s.len() <= 200 {
                out.insert(s.to_lowercase());
            }
        }
    };
    add(properties.get("category"));
    if let Some(products) = properties.get("products").and_then(Value::as_array) {
        for p in products.iter().take(500) {
            add(p.get("category"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn amounts_and_categories_follow_the_segment_spec() {
        assert_eq!(event_amount(&props(json!({"revenue": 12.5}))), 12.5);
        assert_eq!(event_amount(&props(json!({"value": 3, "revenue": 9}))), 3.0);
        assert_eq!(event_amount(&props(json!({"revenue": "x"}))), 0.0);
        let c = order_categories(&props(json!({
            "category": "Shoes",
            "products": [{"category": "bags "}, {"category": 3}, {"name": "x"}]
        })));
        assert_eq!(c.into_iter().collect::<Vec<_>>(), vec!["bags", "shoes"]);
    }

    #[test]
    fn derived_totals() {
        let mut f = Facts::default();
        assert_eq!(f.average_order_value(), 0.0);
        f.totals.insert(
            ORDER_COMPLETED.into(),
            NameTotals {
                count: 4,
                sum: 100.0,
            },
        );
        f.totals
            .insert("Page Viewed".into(), NameTotals { count: 6, sum: 0.0 });
        assert_eq!(f.events_total(), 10);
        assert_eq!(f.orders(), 4);
        assert_eq!(f.average_order_value(), 25.0);
    }
}
