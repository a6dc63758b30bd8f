//! The rule language of the suite: closed and typed, written as JSON, shared by segments
//! (segmentation evaluates rules over a customer's facts) and by what else selects customers
//! on the same terms (offers' eligibility in campaign).
//!
//! A rule is a tree of conditions combined with `all` / `any` / `not`. Every node kind is a Rust
//! type; unknown fields are refused when parsing, and [`validate`] bounds depth, size and values
//! and names the faulty node by its JSON path. Nothing in a rule is executed: each user walks
//! the tree over what it knows of a customer. docs/segmentation.md lists every node with an
//! example. Nothing here does I/O.

mod validate;
mod values;
mod vocabulary;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use validate::{from_value, parse, validate, Limits, RuleError};
pub use values::value_matches;
pub use vocabulary::{RfmGroup, Stage};

/// One node of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// Every condition holds.
    All(Vec<Rule>),
    /// At least one condition holds.
    Any(Vec<Rule>),
    /// The condition does not hold.
    Not(Box<Rule>),
    /// A profile trait compared with a value.
    Trait(TraitCondition),
    /// A per-customer aggregate compared with a number.
    Aggregate(AggregateCondition),
    /// Bought in at least one of these categories (`products[].category` of `Order Completed`).
    BoughtCategory(CategoryCondition),
    /// Event `name` with property filters, counted in a window.
    Event(EventCondition),
    /// RFM scores or group.
    Rfm(RfmCondition),
    /// Lifecycle stage.
    Stage(StageCondition),
    /// Lead score compared with a number.
    LeadScore(Compare),
    /// Loyalty tier (from `tier.changed` on `crm.loyalty.v1`).
    LoyaltyTier(TierCondition),
    /// A customer-value prediction compared with a number.
    Value(ValueCondition),
    /// Member of another segment of the tenant.
    Segment(SegmentRef),
    /// Consent given for a purpose (on a channel). Decided at contact time: offers'
    /// eligibility reads it; segments refuse it (consent gates contact, not membership).
    Consent(ConsentCondition),
    /// A field of the context a decision is asked in (channel, page, placement). Only offers'
    /// eligibility has a context; segments refuse it.
    Context(ContextCondition),
}

impl Rule {
    /// The node's name as written in JSON (`all`, `trait`, `loyalty_tier`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::All(_) => "all",
            Rule::Any(_) => "any",
            Rule::Not(_) => "not",
            Rule::Trait(_) => "trait",
            Rule::Aggregate(_) => "aggregate",
            Rule::BoughtCategory(_) => "bought_category",
            Rule::Event(_) => "event",
            Rule::Rfm(_) => "rfm",
            Rule::Stage(_) => "stage",
            Rule::LeadScore(_) => "lead_score",
            Rule::LoyaltyTier(_) => "loyalty_tier",
            Rule::Value(_) => "value",
            Rule::Segment(_) => "segment",
            Rule::Consent(_) => "consent",
            Rule::Context(_) => "context",
        }
    }

    /// Every condition that is not `all` / `any` / `not`, with the JSON pointer of the node
    /// that holds it (`/all/1`; `""` for the root), in document order. Users that accept only
    /// some kinds walk this to name the first node they refuse.
    pub fn leaves(&self) -> Vec<(String, &Rule)> {
        let mut out = Vec::new();
        collect(self, String::new(), &mut out);
        out
    }
}

fn collect<'a>(rule: &'a Rule, path: String, out: &mut Vec<(String, &'a Rule)>) {
    match rule {
        Rule::All(rules) | Rule::Any(rules) => {
            for (i, r) in rules.iter().enumerate() {
                collect(r, format!("{path}/{}/{i}", rule.kind()), out);
            }
        }
        Rule::Not(r) => collect(r, format!("{path}/not"), out),
        leaf => out.push((path, leaf)),
    }
}

/// Comparison operators on numbers (and, for traits, strings and ISO dates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
}

impl CmpOp {
    /// Whether `left op right` holds.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            CmpOp::Eq => left == right,
            CmpOp::Ne => left != right,
            CmpOp::Gt => left > right,
            CmpOp::Gte => left >= right,
            CmpOp::Lt => left < right,
            CmpOp::Lte => left <= right,
        }
    }
}

/// `{"op": "gte", "value": 50}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// The operator.
    pub op: CmpOp,
    /// The number compared with.
    pub value: f64,
}

/// Operators on traits and event properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchOp {
    /// Equal (numbers, strings, booleans).
    Eq,
    /// Not equal; also true when the field is missing.
    Ne,
    /// Greater than (numbers, or strings such as ISO dates compared as text).
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Equal to one of a list.
    In,
    /// A string containing the value (case-insensitive), or a list containing it.
    Contains,
    /// A string starting with the value (case-insensitive).
    StartsWith,
    /// The field is present and not null.
    Exists,
    /// The field is absent or null.
    Missing,
}

/// `{"name": "country", "op": "eq", "value": "FR"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraitCondition {
    /// The trait's name (a top-level key of the profile's traits).
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The value; absent for `exists` and `missing`, a list for `in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// `{"property": "category", "op": "eq", "value": "shoes"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyFilter {
    /// The property's name; `products.category` looks inside the `products` list.
    pub property: String,
    /// The operator.
    pub op: MatchOp,
    /// The value; absent for `exists` and `missing`, a list for `in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// Aggregates a rule can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Events of any name, all time.
    EventsTotal,
    /// `Order Completed` events, all time.
    Orders,
    /// Revenue of all orders.
    Revenue,
    /// Revenue / orders (0 without orders).
    AverageOrderValue,
    /// Revenue of the last order.
    LastOrderValue,
    /// Whole days since the last order (no order: the condition is false).
    DaysSinceLastOrder,
    /// Whole days since the last event.
    DaysSinceLastSeen,
    /// Whole days since the first event.
    DaysSinceFirstSeen,
    /// Events named `event`, all time.
    Count,
    /// Sum of `value` (or `revenue`) of events named `event`, all time.
    Sum,
}

/// `{"metric": "orders", "op": "gte", "value": 3}`; `count` and `sum` also take `event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateCondition {
    /// What is compared.
    pub metric: Metric,
    /// The event name, for `count` and `sum` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The operator.
    pub op: CmpOp,
    /// The number compared with.
    pub value: f64,
}

/// `{"any_of": ["shoes", "bags"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryCondition {
    /// Categories, compared case-insensitively.
    pub any_of: Vec<String>,
}

/// Times bounding an event window: `from` inclusive, `to` exclusive (RFC 3339).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Between {
    /// Start, inclusive.
    pub from: chrono::DateTime<chrono::Utc>,
    /// End, exclusive.
    pub to: chrono::DateTime<chrono::Utc>,
}

/// `{"name": "Order Completed", "where": [...], "at_least": 2, "within_days": 90}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCondition {
    /// The event name.
    pub name: String,
    /// Property filters, all of which must hold.
    #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<PropertyFilter>,
    /// At least this many matching events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<u32>,
    /// At most this many matching events (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<u32>,
    /// Only events of the last D days count (a sliding window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_days: Option<u32>,
    /// Only events between two times count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub between: Option<Between>,
}

/// `{"r": [4, 5], "f": [5]}` or `{"group": ["champions"]}`; all given parts must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RfmCondition {
    /// Recency scores accepted (1-5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<Vec<u8>>,
    /// Frequency scores accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f: Option<Vec<u8>>,
    /// Monetary scores accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<Vec<u8>>,
    /// Named groups accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Vec<RfmGroup>>,
}

/// `{"in": ["at_risk", "lapsed"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageCondition {
    /// Stages accepted.
    #[serde(rename = "in")]
    pub stages: Vec<Stage>,
}

/// `{"in": ["gold"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierCondition {
    /// Tiers accepted (names as the loyalty programme spells them, case-insensitive).
    #[serde(rename = "in")]
    pub tiers: Vec<String>,
}

/// Predictions of the customer-value models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueMetric {
    /// BG/NBD probability that the customer is still alive.
    ProbabilityAlive,
    /// Expected purchases over the tenant's horizon.
    ExpectedPurchases,
    /// Expected purchases × expected spend.
    LifetimeValue,
}

/// `{"metric": "probability_alive", "op": "lt", "value": 0.3}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueCondition {
    /// The prediction.
    pub metric: ValueMetric,
    /// The operator.
    pub op: CmpOp,
    /// The number compared with.
    pub value: f64,
}

/// `{"purpose": "marketing", "channel": "email"}`: the customer's latest word for the purpose
/// on that channel (or on `any`) is a grant. Without `channel`, a grant on any channel counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentCondition {
    /// The purpose (`marketing`, `profiling`, …).
    pub purpose: String,
    /// The channel (`email`, `sms`, `push`, …); absent: any channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// `{"field": "channel", "op": "eq", "value": "web"}`: a field of the decision's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextCondition {
    /// The context field (a top-level key of the context object).
    pub field: String,
    /// The operator.
    pub op: MatchOp,
    /// The value; absent for `exists` and `missing`, a list for `in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// `{"id": "<segment uuid>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRef {
    /// The segment.
    pub id: Uuid,
}
