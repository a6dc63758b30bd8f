//! The request and answer bodies of campaign's API. The handlers build exactly these types,
//! and the gateway's `/openapi.json` names them, so the documented shape is the one served.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::domain::channels::Settings;
pub use crate::domain::experiments::definition::ExperimentSpec;
/// Answers that are the part's own types, named here so the gateway finds every body in one
/// module.
pub use crate::domain::gate::policy::ContactPolicy;
use crate::domain::journeys::Channel;
pub use crate::domain::journeys::Journey;
pub use crate::domain::offers::catalogue::OfferSpec;
pub use crate::domain::offers::decide::DecisionSettings;
use crate::domain::report::Group;
use crate::domain::suppression::Reason;
use crate::domain::templates::Parts;
pub use crate::domain::templates::Rendered;
pub use crate::offers::decide::DecisionRequest;
pub use crate::offers::outcomes::OutcomeReport;
pub use crate::store::channels::ChannelRow;
pub use crate::store::decisions::{DecisionRecord, OutcomeRow};
pub use crate::store::experiments::ExperimentRow;
pub use crate::store::journeys::JourneyRow;
use crate::store::messages::MessageRow;
pub use crate::store::offers::OfferRow;
use crate::store::report::{Count, InstanceRow};
use crate::store::suppressions::Suppression;
use crate::store::templates::Template;

/// The tenant's journeys.
#[derive(Debug, Serialize, ToSchema)]
pub struct JourneyList {
    /// Each with its draft.
    pub items: Vec<JourneyRow>,
}

/// One published version.
#[derive(Debug, Serialize, ToSchema)]
pub struct JourneyVersion {
    /// Its number.
    pub version: i32,
    /// The definition frozen when it was published.
    #[schema(value_type = Object)]
    pub definition: Value,
}

/// A journey's published versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct JourneyVersions {
    /// The journey.
    pub journey_id: Uuid,
    /// Oldest first.
    pub items: Vec<JourneyVersion>,
}

/// Running instances moved to the live version.
#[derive(Debug, Serialize, ToSchema)]
pub struct Migrated {
    /// The journey.
    pub journey_id: Uuid,
    /// The live version.
    pub version: i32,
    /// Instances moved to it.
    pub moved: u64,
    /// Instances left on their version (their node is not in the live one).
    pub left: u64,
}

/// Where a journey's test send goes.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"address": "qa@example.com", "channel": "email"}))]
pub struct JourneyTestSend {
    /// An email address, or a phone number or push token for those channels.
    pub address: String,
    /// `email` (default), `sms` or `push`: the send nodes of this channel are sent.
    #[serde(default)]
    pub channel: Option<Channel>,
}

/// One message of a test send.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestMessage {
    /// The send node.
    pub node: String,
    /// Its template.
    pub template: String,
    /// The queued message (null when the address is suppressed).
    pub message_id: Option<Uuid>,
}

/// A journey's test send, queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct JourneyTestSent {
    /// The address, normalised.
    pub address: String,
    /// One per send node of the channel, in node-name order.
    pub messages: Vec<TestMessage>,
}

/// A template as written.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel": "email", "subject": "Welcome, {{ customer.first_name | default('friend') }}",
    "html": "<p>Hello {{ customer.first_name }}</p>", "text": "Hello {{ customer.first_name }}",
    "message_type": "marketing", "purpose": "marketing"}))]
pub struct TemplateBody {
    /// `email`, `sms` or `push`.
    pub channel: String,
    /// Its type, for frequency caps (default `marketing`).
    #[serde(default = "marketing")]
    pub message_type: String,
    /// The consent purpose it needs (default `marketing`; `transactional` is exempt from
    /// caps).
    #[serde(default = "marketing")]
    pub purpose: String,
    /// The subject (email) or the whole message (SMS, push title).
    pub subject: String,
    /// The HTML body (email).
    #[serde(default)]
    pub html: Option<String>,
    /// The text body.
    #[serde(default)]
    pub text: Option<String>,
}

fn marketing() -> String {
    "marketing".to_owned()
}

/// A template as the API shows it (the stored [`Template`] with its parts spelt out: a
/// flattened `Parts`, which refuses unknown fields, would make its schema refuse the others).
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    /// Its key (what `send` nodes name).
    pub key: String,
    /// `email`, `sms` or `push`.
    pub channel: String,
    /// Its type, for frequency caps.
    pub message_type: String,
    /// The consent purpose it needs.
    pub purpose: String,
    /// The subject (email) or the whole message (SMS, push title).
    pub subject: String,
    /// The HTML body (email).
    pub html: Option<String>,
    /// The text body.
    pub text: Option<String>,
    /// Bumped on each change.
    pub version: i32,
    /// Last change.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Template> for TemplateView {
    fn from(t: Template) -> Self {
        Self {
            key: t.key,
            channel: t.channel,
            message_type: t.message_type,
            purpose: t.purpose,
            subject: t.parts.subject,
            html: t.parts.html,
            text: t.parts.text,
            version: t.version,
            updated_at: t.updated_at,
        }
    }
}

/// The tenant's templates.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    /// By key.
    pub items: Vec<TemplateView>,
}

/// Where a template's test send goes.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"address": "qa@example.com"}))]
#[schema(as = TemplateTestSend)]
pub struct TestSend {
    /// The address, of the template's channel.
    pub address: String,
}

/// A test send, queued.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TemplateTestSent)]
pub struct TestSent {
    /// The queued message (null when the address is suppressed).
    pub message_id: Option<Uuid>,
    /// The address, normalised.
    pub address: String,
}

/// A sample customer to render a template for.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"traits": {"first_name": "Ada"}, "stage": "active", "tier": "gold"}))]
#[schema(as = TemplateSample)]
pub struct Sample {
    /// Traits, as `customer.*` and `traits.*`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub traits: serde_json::Map<String, Value>,
    /// Lifecycle stage.
    #[serde(default)]
    pub stage: Option<String>,
    /// Loyalty tier.
    #[serde(default)]
    pub tier: Option<String>,
    /// Segment ids.
    #[serde(default)]
    pub segments: Vec<Uuid>,
}

/// A template not saved yet, with a sample customer.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"template": {"subject": "Hi {{ customer.first_name }}", "text": "Hello"},
    "sample": {"traits": {"first_name": "Ada"}}}))]
#[schema(as = TemplateDraft)]
pub struct Draft {
    /// Subject, HTML and text.
    pub template: Parts,
    /// The customer (default: none).
    #[serde(default)]
    pub sample: Option<Sample>,
}

/// A channel as written.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"settings": {"kind": "email", "from": "news@shop.example", "from_name": "Shop"}}))]
pub struct ChannelBody {
    /// The settings, by `kind`.
    pub settings: Settings,
    /// The provider's token (SMS and push).
    #[serde(default)]
    pub token: Option<String>,
}

/// A channel, with its signing secret when one was just made.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    /// The channel.
    #[serde(flatten)]
    pub channel: ChannelRow,
    /// A new webhook signing secret (`whsec_…`), shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The tenant's channels.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    /// By key.
    pub items: Vec<ChannelRow>,
}

/// A customer's messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    /// Newest first, at most 200.
    pub items: Vec<MessageRow>,
}

/// A customer's journeys.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerJourneys {
    /// Newest first.
    pub items: Vec<InstanceRow>,
}

/// One split arm's conversion.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArmReport {
    /// The arm (null: instances that passed no split).
    pub arm: Option<String>,
    /// Customers in it.
    pub entered: u64,
    /// Of them, converted.
    pub converted: u64,
    /// `converted / entered`.
    pub rate: f64,
}

/// The goal against the holdout.
#[derive(Debug, Serialize, ToSchema)]
pub struct GoalReport {
    /// Customers who got the messages.
    pub treated: Group,
    /// The control group.
    pub holdout: Group,
    /// `treated.rate - holdout.rate`.
    pub uplift: f64,
    /// `uplift / holdout.rate`, when the holdout converted at all.
    pub relative_uplift: Option<f64>,
    /// The 95% Wald interval of `uplift`, `[low, high]`, once both groups are large enough.
    pub ci95: Option<[f64; 2]>,
    /// Customers each group needs before the interval is shown.
    pub min_group_for_interval: u64,
}

/// A journey's report.
#[derive(Debug, Serialize, ToSchema)]
pub struct JourneyReport {
    /// The journey.
    pub journey_id: Uuid,
    /// Customers who entered.
    pub entered: u64,
    /// Of them, held out.
    pub held_out: u64,
    /// Of them, converted.
    pub converted: u64,
    /// Per split arm.
    pub arms: Vec<ArmReport>,
    /// Live instances by node.
    pub at_node: Vec<Count>,
    /// Ended instances by exit reason.
    pub exited: Vec<Count>,
    /// Messages by node and status.
    pub messages: Vec<Count>,
    /// Skipped messages by node and reason.
    pub skipped: Vec<Count>,
    /// The goal's uplift.
    pub goal: GoalReport,
}

/// An address of a channel.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel": "email", "address": "ada@example.com", "reason": "manual"}))]
pub struct AddressBody {
    /// `email`, `sms` or `push`.
    pub channel: Channel,
    /// The address (normalised before it is stored).
    pub address: String,
    /// Why, when adding (default `manual`).
    #[serde(default)]
    pub reason: Option<Reason>,
}

/// An address added to the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Suppressed {
    /// The channel.
    pub channel: Channel,
    /// The address, normalised.
    pub address: String,
    /// False when it was suppressed already (its first reason stays).
    pub added: bool,
}

/// An address taken off the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unsuppressed {
    /// The channel.
    pub channel: Channel,
    /// The address, normalised.
    pub address: String,
    /// True when it was suppressed and no longer is.
    pub removed: bool,
}

/// A page of the suppression list.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionPage {
    /// The addresses.
    pub items: Vec<Suppression>,
    /// Entries skipped.
    pub offset: i64,
    /// The page size.
    pub limit: i64,
}

/// The tenant's offers that are not archived, by name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OfferList {
    /// The offers.
    pub items: Vec<OfferRow>,
}

/// What an outcome report did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutcomeRecorded {
    /// The decision.
    pub decision_id: Uuid,
    /// The offer.
    pub offer_id: Uuid,
    /// The outcome.
    pub kind: crate::store::decisions::OutcomeKind,
    /// Whether it was new (a repeated report changes nothing and says `false`).
    pub recorded: bool,
}

/// A customer's latest decisions, newest first, and their outcomes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CustomerDecisions {
    /// The customer (the survivor of a merge).
    pub customer_id: Uuid,
    /// The decisions.
    pub decisions: Vec<DecisionRecord>,
    /// Outcomes of those decisions, oldest first.
    pub outcomes: Vec<OutcomeRow>,
}

/// The tenant's experiments, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExperimentList {
    /// The experiments.
    pub items: Vec<ExperimentRow>,
}

/// An experiment's results.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExperimentResults {
    /// The experiment.
    pub experiment_id: Uuid,
    /// Where it is in its life.
    pub status: crate::domain::experiments::definition::ExperimentStatus,
    /// Per arm, the holdout, the sample-ratio check and, with enough data, the comparisons.
    pub results: crate::domain::experiments::results::Results,
}

/// Who to assign.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRequest {
    /// `{"id": "<uuid>"}`, `{"user_id": "…"}`, `{"anonymous_id": "…"}` or `{"email": "…"}`.
    pub customer: crate::store::offers::CustomerRef,
}

/// A customer's place in a running experiment, recorded as an exposure.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssignmentAnswer {
    /// The experiment.
    pub experiment_id: Uuid,
    /// The customer (the survivor of a merge).
    pub customer_id: Uuid,
    /// The arm's key; absent in the holdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// In the holdout: apply nothing.
    pub holdout: bool,
    /// What applying the arm takes (the arm's `variant`).
    pub variant: serde_json::Map<String, Value>,
    /// Whether this call exposed the customer for the first time (the goal window starts).
    pub first_exposure: bool,
}

pub use crate::domain::pipeline::pipelines::PipelineSpec;
pub use crate::domain::pipeline::settings::LeadSettings;
pub use crate::pipeline::leads::{ConvertRequest, LeadPatch, LeadRequest};
pub use crate::pipeline::opportunities::{OpportunityPatch, OpportunityRequest};
pub use crate::store::leads::{LeadChange, LeadRow};
pub use crate::store::opportunities::{OpportunityRow, StageVisit};
pub use crate::store::pipelines::PipelineRow;

/// A page of leads, and where the next one starts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LeadList {
    /// The leads (newest first; in a work queue, highest priority first).
    pub items: Vec<LeadRow>,
    /// Whether more follow: ask again with `after` (and, in a work queue, `after_priority`)
    /// from the last item.
    pub has_more: bool,
}

impl LeadList {
    /// The first `limit` of `rows` (read one more than `limit` to know whether more follow).
    pub fn page(mut rows: Vec<LeadRow>, limit: i64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        Self {
            items: rows,
            has_more,
        }
    }
}

/// A lead, its priority now with the reasons, and its history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LeadDetail {
    /// The lead (its `priority` as last stored, the work queue's order).
    pub lead: LeadRow,
    /// The priority computed now, each factor's points.
    pub priority_now: crate::domain::pipeline::priority::Priority,
    /// Every change of status or owner, oldest first.
    pub history: Vec<LeadChange>,
}

/// A converted lead and the opportunity it became.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Conversion {
    /// The lead, `converted`.
    pub lead: LeadRow,
    /// Its opportunity.
    pub opportunity: OpportunityRow,
}

/// The tenant's pipelines, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PipelineList {
    /// The pipelines.
    pub items: Vec<PipelineRow>,
}

/// A page of opportunities, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OpportunityList {
    /// The opportunities.
    pub items: Vec<OpportunityRow>,
    /// Whether more follow: ask again with `after` from the last item.
    pub has_more: bool,
}

impl OpportunityList {
    /// The first `limit` of `rows` (read one more than `limit`).
    pub fn page(mut rows: Vec<OpportunityRow>, limit: i64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        Self {
            items: rows,
            has_more,
        }
    }
}

/// An opportunity and the stages it went through.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OpportunityDetail {
    /// The opportunity.
    pub opportunity: OpportunityRow,
    /// Each stage entered, oldest first, with the time spent there.
    pub stages: Vec<StageVisit>,
}

pub use crate::pipeline::tasks::{NoteRequest, TaskPatch, TaskRequest};
pub use crate::store::tasks::{NoteRow, TaskRow};

/// A page of tasks, soonest due first (undated last).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    /// The tasks.
    pub items: Vec<TaskRow>,
    /// Whether more follow: ask again with `after` from the last item.
    pub has_more: bool,
}

/// The notes of a lead or an opportunity, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NoteList {
    /// The notes.
    pub items: Vec<NoteRow>,
}

pub use super::connectors::{ConnectorList, ConnectorPatch, ConnectorRequest, ConnectorView};
pub use super::conversations::{
    ConversationDetail, ConversationList, ConversationPatch, ReplyQueued, ReplyRequest,
};
pub use super::surveys::{
    AnswerList, LinkRequest, LinkView, SurveyList, SurveyPatch, SurveyRequest,
};
pub use crate::domain::surveys::report::Report as SurveyReport;
pub use crate::pipeline::imports::{ImportRow, LeadImport, LeadImportResult, RowError};
pub use crate::store::sales_report::{ConversionRow, PipelineReport};
pub use crate::store::surveys::SurveyRow;
pub use crate::surveys::answering::{
    PublicSurvey, Submission as SurveySubmission, Taken as SurveyTaken,
};

/// Lead conversion by source and campaign, for leads created in the period.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LeadConversion {
    /// From (inclusive).
    pub from: chrono::DateTime<chrono::Utc>,
    /// To (exclusive).
    pub to: chrono::DateTime<chrono::Utc>,
    /// Per source and campaign.
    pub rows: Vec<ConversionRow>,
}
