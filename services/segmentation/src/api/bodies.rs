//! The request and answer bodies of segmentation's API. The handlers build exactly these
//! types, and the gateway's `/openapi.json` names them, so the documented shape is the one
//! served (a field renamed here is renamed in both).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Answers that are the part's own types, named here so the gateway finds every body in one
/// module.
pub use crate::domain::settings::Settings;
pub use crate::recompute::Preview;

use crate::domain::lead::{Contribution, LeadScore};
use crate::domain::lifecycle::Stage;
use crate::domain::rfm::RfmScore;
use crate::store::segments::{SegmentRow, VersionRow};

/// A new segment.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Lapsed shoe buyers", "description": "Bought shoes, lapsed since",
    "rule": {"all": [{"bought_category": {"any_of": ["shoes"]}}, {"stage": {"in": ["lapsed"]}}]}}))]
pub struct NewSegment {
    /// Unique per tenant (case-insensitive).
    pub name: String,
    /// What it is for (default empty).
    #[serde(default)]
    pub description: String,
    /// The rule, in the closed rule language (docs/segmentation.md).
    #[schema(value_type = Object)]
    pub rule: Value,
}

/// A change to a segment: each field optional.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"description": "Bought shoes twice, lapsed since"}))]
pub struct SegmentPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New rule (the members are recomputed).
    #[schema(value_type = Option<Object>)]
    pub rule: Option<Value>,
}

/// A segment as saved.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentSaved {
    /// The segment.
    pub segment: SegmentRow,
    /// Whether its members are being computed in the background.
    pub computing: bool,
    /// The computation's job, to follow at `GET /v1/jobs/{job_id}` (when computing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<crm_service::jobs::JobQueued>,
}

/// A segment and its size.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentSized {
    /// The segment.
    pub segment: SegmentRow,
    /// Its members now.
    pub size: i64,
}

/// The tenant's segments.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentList {
    /// Each with its size.
    pub items: Vec<SegmentSized>,
}

/// A segment's versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentVersions {
    /// The segment.
    pub segment_id: Uuid,
    /// Newest first.
    pub versions: Vec<VersionRow>,
}

/// A rule to preview.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rule": {"stage": {"in": ["lapsed"]}}, "sample": 10}))]
pub struct PreviewRequest {
    /// The rule.
    #[schema(value_type = Object)]
    pub rule: Value,
    /// How many matching ids to show (default 10, at most 100).
    #[serde(default)]
    pub sample: Option<usize>,
}

/// One member.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SegmentMember)]
pub struct Member {
    /// The customer.
    pub customer_id: Uuid,
    /// When it entered.
    pub entered_at: DateTime<Utc>,
}

/// A page of a segment's members, by customer id.
#[derive(Debug, Serialize, ToSchema)]
pub struct Members {
    /// The segment.
    pub segment_id: Uuid,
    /// The members.
    pub items: Vec<Member>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<Uuid>,
}

/// One segment a customer is in.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerSegment {
    /// The segment.
    pub segment_id: Uuid,
    /// Its name.
    pub name: String,
    /// When the customer entered it.
    pub entered_at: DateTime<Utc>,
}

/// The segments a customer is in, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerSegments {
    /// The customer (the survivor, when the id asked for was merged).
    pub customer_id: Uuid,
    /// The segments.
    pub segments: Vec<CustomerSegment>,
}

/// A customer's lead score.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadView {
    /// The score.
    pub score: f64,
    /// Whether it reaches `qualified_at`.
    pub qualified: bool,
    /// The tenant's qualification threshold.
    pub qualified_at: f64,
    /// One line per rule that gave points.
    pub explanation: Vec<Contribution>,
}

impl LeadView {
    /// The view of `score` under threshold `qualified_at`.
    pub fn of(score: LeadScore, qualified_at: f64) -> Self {
        Self {
            score: score.total,
            qualified: score.qualified,
            qualified_at,
            explanation: score.explanation,
        }
    }
}

/// A customer's predicted value.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValueView {
    /// Probability the customer is still active.
    pub probability_alive: f64,
    /// Purchases expected over the horizon.
    pub expected_purchases: f64,
    /// Revenue expected over the horizon.
    pub lifetime_value: f64,
    /// The horizon, in weeks.
    pub horizon_weeks: f64,
}

/// A customer's scores.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerScores {
    /// The customer.
    pub customer_id: Uuid,
    /// Its lifecycle stage now.
    pub stage: Stage,
    /// Since when.
    pub stage_since: Option<DateTime<Utc>>,
    /// RFM scores, once a scoring run saw an order.
    pub rfm: Option<RfmScore>,
    /// Lead score with its explanation.
    pub lead: LeadView,
    /// Value predictions, once the tenant's model is fitted.
    pub value: Option<ValueView>,
    /// Loyalty tier, as loyalty last announced it.
    pub loyalty_tier: Option<String>,
}

/// One event name's counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventCounts {
    /// All time (within retention).
    pub count: i64,
    /// Sum of `value` / `revenue`.
    pub sum: f64,
    /// In the last 7 days.
    pub last_7_days: u64,
    /// In the last 30 days.
    pub last_30_days: u64,
    /// In the last 90 days.
    pub last_90_days: u64,
}

/// A customer's aggregates.
#[derive(Debug, Serialize, ToSchema)]
pub struct Activity {
    /// The customer.
    pub customer_id: Uuid,
    /// Events seen.
    pub events_total: i64,
    /// First seen.
    pub first_seen_at: Option<DateTime<Utc>>,
    /// Last seen.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Orders.
    pub orders: i64,
    /// Revenue.
    pub revenue: f64,
    /// Revenue per order.
    pub average_order_value: f64,
    /// Last order.
    pub last_order_at: Option<DateTime<Utc>>,
    /// Value of the last order.
    pub last_order_value: f64,
    /// Product categories bought.
    pub categories: Vec<String>,
    /// Distinct days with an order.
    pub order_days: usize,
    /// Counts per event name.
    pub events: BTreeMap<String, EventCounts>,
}

/// Customers of one RFM group.
#[derive(Debug, Serialize, ToSchema)]
pub struct RfmGroupCount {
    /// The group (`champions`, `at_risk`, ...).
    pub group: String,
    /// Customers in it.
    pub customers: i64,
    /// Their revenue.
    pub revenue: f64,
}

/// Customers of one (R, F) cell.
#[derive(Debug, Serialize, ToSchema)]
pub struct RfmCell {
    /// Recency score.
    pub r: i16,
    /// Frequency score.
    pub f: i16,
    /// Customers in the cell.
    pub customers: i64,
}

/// The scoring run a report comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastRun {
    /// Run id.
    pub run_id: i64,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

/// Customers per RFM group and (R, F) cell.
#[derive(Debug, Serialize, ToSchema)]
pub struct RfmReport {
    /// Per group.
    pub groups: Vec<RfmGroupCount>,
    /// Per cell.
    pub cells: Vec<RfmCell>,
    /// The last run, if any.
    pub last_run: Option<LastRun>,
}

/// Customers moved from one stage to another.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StageTransition)]
pub struct Transition {
    /// From this stage (null: a new customer).
    pub from: Option<String>,
    /// To this stage.
    pub to: String,
    /// Customers.
    pub customers: i64,
}

/// One period's transitions.
#[derive(Debug, Serialize, ToSchema)]
pub struct LifecyclePeriod {
    /// Its start.
    pub period_start: DateTime<Utc>,
    /// Customers who moved into each stage.
    pub into: BTreeMap<String, i64>,
    /// Each move.
    pub transitions: Vec<Transition>,
}

/// Customers per stage and transitions per period.
#[derive(Debug, Serialize, ToSchema)]
pub struct LifecycleReport {
    /// Customers per stage now.
    pub stages: BTreeMap<String, i64>,
    /// `day`, `week` or `month`.
    pub period: String,
    /// Start of the range.
    pub from: DateTime<Utc>,
    /// End of the range.
    pub to: DateTime<Utc>,
    /// The periods, oldest first.
    pub periods: Vec<LifecyclePeriod>,
    /// How to read it: which transitions are acquisition, retention and win-back.
    pub reading: BTreeMap<String, String>,
}

/// One scoring run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoringRunView {
    /// Run id.
    pub run_id: i64,
    /// `schedule` or `api`.
    pub trigger: String,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Customers scored.
    pub customers: Option<i64>,
    /// Customers whose RFM group changed.
    pub rfm_group_changes: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The tenant's fitted value model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValueModelView {
    /// The fitted parameters.
    #[schema(value_type = Object)]
    pub model: Value,
    /// When.
    pub fitted_at: DateTime<Utc>,
}

/// Recent scoring runs and the value model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoringRuns {
    /// Newest first, at most 50.
    pub runs: Vec<ScoringRunView>,
    /// Null until enough repeat buyers.
    pub value_model: Option<ValueModelView>,
}
