//! The stable problem codes every route answers with: one enum, so a code cannot be misspelt
//! in one handler and a client that switches on `code` sees the whole list here (and in
//! `/openapi.json`'s `Problem` schema of the gateway).

use std::fmt;

/// A stable, machine-readable problem code (`code` in the problem+json body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// `invalid_webhook`
    InvalidWebhook,
    /// `webhook_not_found`
    WebhookNotFound,
    /// `webhook_delivery_not_found`
    WebhookDeliveryNotFound,
    /// `account_not_found`
    AccountNotFound,
    /// `channel_not_found`
    ChannelNotFound,
    /// `invalid_channel`
    InvalidChannel,
    /// `invalid_policy`
    InvalidPolicy,
    /// `invalid_template`
    InvalidTemplate,
    /// `invalid_token`
    InvalidToken,
    /// `template_not_found`
    TemplateNotFound,
    /// `unknown_link`
    UnknownLink,
    /// `already_applied`
    AlreadyApplied,
    /// `auth_unavailable`
    AuthUnavailable,
    /// `batch_too_large`
    BatchTooLarge,
    /// `broker_unavailable`
    BrokerUnavailable,
    /// `contact_not_found`
    ContactNotFound,
    /// `customer_id_not_allowed`
    CustomerIdNotAllowed,
    /// `customer_not_found`
    CustomerNotFound,
    /// `empty_batch`
    EmptyBatch,
    /// `event_too_large`
    EventTooLarge,
    /// `idempotency_key_in_progress`
    IdempotencyKeyInProgress,
    /// `idempotency_key_required`
    IdempotencyKeyRequired,
    /// `idempotency_key_reused`
    IdempotencyKeyReused,
    /// `identity_unavailable`
    IdentityUnavailable,
    /// `import_not_found`
    ImportNotFound,
    /// `import_unavailable`
    ImportUnavailable,
    /// `insufficient_points`
    InsufficientPoints,
    /// `insufficient_scope`
    InsufficientScope,
    /// `internal`
    Internal,
    /// `invalid_batch`
    InvalidBatch,
    /// `invalid_body`
    InvalidBody,
    /// `invalid_consent`
    InvalidConsent,
    /// `invalid_cursor`
    InvalidCursor,
    /// `invalid_email`
    InvalidEmail,
    /// `invalid_envelope`
    InvalidEnvelope,
    /// `invalid_events`
    InvalidEvents,
    /// `invalid_field`
    InvalidField,
    /// `invalid_format`
    InvalidFormat,
    /// `invalid_id`
    InvalidId,
    /// `invalid_journey`
    InvalidJourney,
    /// `invalid_json`
    InvalidJson,
    /// `invalid_key_request`
    InvalidKeyRequest,
    /// `invalid_limit`
    InvalidLimit,
    /// `invalid_lookup`
    InvalidLookup,
    /// `invalid_period`
    InvalidPeriod,
    /// `invalid_programme`
    InvalidProgramme,
    /// `invalid_query`
    InvalidQuery,
    /// `invalid_range`
    InvalidRange,
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_reward`
    InvalidReward,
    /// `invalid_rule`
    InvalidRule,
    /// `invalid_segment`
    InvalidSegment,
    /// `invalid_settings`
    InvalidSettings,
    /// `invalid_state`
    InvalidState,
    /// `invalid_status`
    InvalidStatus,
    /// `invalid_tenant`
    InvalidTenant,
    /// `job_not_found`
    JobNotFound,
    /// `journey_not_found`
    JourneyNotFound,
    /// `key_not_found`
    KeyNotFound,
    /// `merge_not_found`
    MergeNotFound,
    /// `method_not_allowed`
    MethodNotAllowed,
    /// `missing_identity`
    MissingIdentity,
    /// `missing_name`
    MissingName,
    /// `no_programme`
    NoProgramme,
    /// `not_an_object`
    NotAnObject,
    /// `not_found`
    NotFound,
    /// `overloaded`
    Overloaded,
    /// `payload_too_large`
    PayloadTooLarge,
    /// `pii_in_query`
    PiiInQuery,
    /// `request_timeout`
    RequestTimeout,
    /// `review_not_found`
    ReviewNotFound,
    /// `reward_unavailable`
    RewardUnavailable,
    /// `segment_cycle`
    SegmentCycle,
    /// `segment_in_use`
    SegmentInUse,
    /// `segment_name_taken`
    SegmentNameTaken,
    /// `segment_not_found`
    SegmentNotFound,
    /// `segmentation_unavailable`
    SegmentationUnavailable,
    /// `service_token_required`
    ServiceTokenRequired,
    /// `survivor_merged_again`
    SurvivorMergedAgain,
    /// `tenant_mismatch`
    TenantMismatch,
    /// `unauthorized`
    Unauthorized,
    /// `unknown_decision`
    UnknownDecision,
    /// `unknown_kind`
    UnknownKind,
    /// `unknown_segment`
    UnknownSegment,
    /// `unreadable_body`
    UnreadableBody,
    /// `unsupported_media_type`
    UnsupportedMediaType,
    /// `upload_interrupted`
    UploadInterrupted,
    /// `upstream_timeout`
    UpstreamTimeout,
    /// `upstream_unavailable`
    UpstreamUnavailable,
    /// `invalid_offer`
    InvalidOffer,
    /// `offer_not_found`
    OfferNotFound,
    /// `offer_name_taken`
    OfferNameTaken,
    /// `invalid_decision`
    InvalidDecision,
    /// `decision_not_found`
    DecisionNotFound,
    /// `invalid_outcome`
    InvalidOutcome,
    /// `invalid_decision_settings`
    InvalidDecisionSettings,
    /// `invalid_experiment`
    InvalidExperiment,
    /// `experiment_not_found`
    ExperimentNotFound,
    /// `invalid_lead`
    InvalidLead,
    /// `lead_not_found`
    LeadNotFound,
    /// `invalid_lead_settings`
    InvalidLeadSettings,
    /// `invalid_pipeline`
    InvalidPipeline,
    /// `pipeline_not_found`
    PipelineNotFound,
    /// `pipeline_name_taken`
    PipelineNameTaken,
    /// `pipeline_stage_in_use`
    PipelineStageInUse,
    /// `invalid_opportunity`
    InvalidOpportunity,
    /// `opportunity_not_found`
    OpportunityNotFound,
    /// `lost_reason_required`
    LostReasonRequired,
    /// `invalid_task`
    InvalidTask,
    /// `task_not_found`
    TaskNotFound,
    /// `connector_name_taken`
    ConnectorNameTaken,
    /// `connector_not_found`
    ConnectorNotFound,
    /// `invalid_connector`
    InvalidConnector,
    /// `invalid_signature`
    InvalidSignature,
    /// `invalid_payload`
    InvalidPayload,
    /// `connector_disabled`
    ConnectorDisabled,
    /// `conversation_not_found`
    ConversationNotFound,
    /// `invalid_conversation`
    InvalidConversation,
    /// `survey_not_found`
    SurveyNotFound,
    /// `survey_name_taken`
    SurveyNameTaken,
    /// `invalid_survey`
    InvalidSurvey,
    /// `invalid_answer`
    InvalidAnswer,
    /// `survey_closed`
    SurveyClosed,
    /// `rate_limited`
    RateLimited,
}

impl Code {
    /// Every code, in alphabetical order.
    pub const ALL: &'static [Code] = &[
        Self::AccountNotFound,
        Self::AlreadyApplied,
        Self::AuthUnavailable,
        Self::BatchTooLarge,
        Self::BrokerUnavailable,
        Self::ChannelNotFound,
        Self::ConnectorDisabled,
        Self::ConnectorNameTaken,
        Self::ConnectorNotFound,
        Self::ContactNotFound,
        Self::ConversationNotFound,
        Self::CustomerIdNotAllowed,
        Self::CustomerNotFound,
        Self::DecisionNotFound,
        Self::EmptyBatch,
        Self::EventTooLarge,
        Self::ExperimentNotFound,
        Self::IdempotencyKeyInProgress,
        Self::IdempotencyKeyRequired,
        Self::IdempotencyKeyReused,
        Self::IdentityUnavailable,
        Self::ImportNotFound,
        Self::ImportUnavailable,
        Self::InsufficientPoints,
        Self::InsufficientScope,
        Self::Internal,
        Self::InvalidAnswer,
        Self::InvalidBatch,
        Self::InvalidBody,
        Self::InvalidChannel,
        Self::InvalidConnector,
        Self::InvalidConsent,
        Self::InvalidConversation,
        Self::InvalidCursor,
        Self::InvalidDecision,
        Self::InvalidDecisionSettings,
        Self::InvalidEmail,
        Self::InvalidEnvelope,
        Self::InvalidEvents,
        Self::InvalidExperiment,
        Self::InvalidField,
        Self::InvalidFormat,
        Self::InvalidId,
        Self::InvalidJourney,
        Self::InvalidJson,
        Self::InvalidKeyRequest,
        Self::InvalidLead,
        Self::InvalidLeadSettings,
        Self::InvalidLimit,
        Self::InvalidLookup,
        Self::InvalidOffer,
        Self::InvalidOpportunity,
        Self::InvalidOutcome,
        Self::InvalidPayload,
        Self::InvalidPeriod,
        Self::InvalidPipeline,
        Self::InvalidPolicy,
        Self::InvalidProgramme,
        Self::InvalidQuery,
        Self::InvalidRange,
        Self::InvalidRequest,
        Self::InvalidReward,
        Self::InvalidRule,
        Self::InvalidSegment,
        Self::InvalidSettings,
        Self::InvalidSignature,
        Self::InvalidState,
        Self::InvalidStatus,
        Self::InvalidSurvey,
        Self::InvalidTask,
        Self::InvalidTemplate,
        Self::InvalidTenant,
        Self::InvalidToken,
        Self::InvalidWebhook,
        Self::JobNotFound,
        Self::JourneyNotFound,
        Self::KeyNotFound,
        Self::LeadNotFound,
        Self::LostReasonRequired,
        Self::MergeNotFound,
        Self::MethodNotAllowed,
        Self::MissingIdentity,
        Self::MissingName,
        Self::NoProgramme,
        Self::NotAnObject,
        Self::NotFound,
        Self::OfferNameTaken,
        Self::OfferNotFound,
        Self::OpportunityNotFound,
        Self::Overloaded,
        Self::PayloadTooLarge,
        Self::PiiInQuery,
        Self::PipelineNameTaken,
        Self::PipelineNotFound,
        Self::PipelineStageInUse,
        Self::RateLimited,
        Self::RequestTimeout,
        Self::ReviewNotFound,
        Self::RewardUnavailable,
        Self::SegmentCycle,
        Self::SegmentInUse,
        Self::SegmentNameTaken,
        Self::SegmentNotFound,
        Self::SegmentationUnavailable,
        Self::ServiceTokenRequired,
        Self::SurveyClosed,
        Self::SurveyNameTaken,
        Self::SurveyNotFound,
        Self::SurvivorMergedAgain,
        Self::TaskNotFound,
        Self::TemplateNotFound,
        Self::TenantMismatch,
        Self::Unauthorized,
        Self::UnknownDecision,
        Self::UnknownKind,
        Self::UnknownLink,
        Self::UnknownSegment,
        Self::UnreadableBody,
        Self::UnsupportedMediaType,
        Self::UploadInterrupted,
        Self::UpstreamTimeout,
        Self::UpstreamUnavailable,
        Self::WebhookDeliveryNotFound,
        Self::WebhookNotFound,
    ];

    /// The code as clients see it (snake_case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidExperiment => "invalid_experiment",
            Self::ExperimentNotFound => "experiment_not_found",
            Self::InvalidLead => "invalid_lead",
            Self::LeadNotFound => "lead_not_found",
            Self::InvalidLeadSettings => "invalid_lead_settings",
            Self::InvalidPipeline => "invalid_pipeline",
            Self::PipelineNotFound => "pipeline_not_found",
            Self::PipelineNameTaken => "pipeline_name_taken",
            Self::PipelineStageInUse => "pipeline_stage_in_use",
            Self::InvalidOpportunity => "invalid_opportunity",
            Self::OpportunityNotFound => "opportunity_not_found",
            Self::LostReasonRequired => "lost_reason_required",
            Self::InvalidTask => "invalid_task",
            Self::TaskNotFound => "task_not_found",
            Self::ConnectorNameTaken => "connector_name_taken",
            Self::ConnectorNotFound => "connector_not_found",
            Self::InvalidConnector => "invalid_connector",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidPayload => "invalid_payload",
            Self::ConnectorDisabled => "connector_disabled",
            Self::ConversationNotFound => "conversation_not_found",
            Self::InvalidConversation => "invalid_conversation",
            Self::SurveyNotFound => "survey_not_found",
            Self::SurveyNameTaken => "survey_name_taken",
            Self::InvalidSurvey => "invalid_survey",
            Self::InvalidAnswer => "invalid_answer",
            Self::SurveyClosed => "survey_closed",
            Self::RateLimited => "rate_limited",
            Self::InvalidOffer => "invalid_offer",
            Self::OfferNotFound => "offer_not_found",
            Self::OfferNameTaken => "offer_name_taken",
            Self::InvalidDecision => "invalid_decision",
            Self::DecisionNotFound => "decision_not_found",
            Self::InvalidOutcome => "invalid_outcome",
            Self::InvalidDecisionSettings => "invalid_decision_settings",
            Self::ChannelNotFound => "channel_not_found",
            Self::InvalidChannel => "invalid_channel",
            Self::InvalidPolicy => "invalid_policy",
            Self::InvalidTemplate => "invalid_template",
            Self::InvalidToken => "invalid_token",
            Self::TemplateNotFound => "template_not_found",
            Self::UnknownLink => "unknown_link",
            Self::InvalidWebhook => "invalid_webhook",
            Self::WebhookNotFound => "webhook_not_found",
            Self::WebhookDeliveryNotFound => "webhook_delivery_not_found",
            Self::AccountNotFound => "account_not_found",
            Self::AlreadyApplied => "already_applied",
            Self::AuthUnavailable => "auth_unavailable",
            Self::BatchTooLarge => "batch_too_large",
            Self::BrokerUnavailable => "broker_unavailable",
            Self::ContactNotFound => "contact_not_found",
            Self::CustomerIdNotAllowed => "customer_id_not_allowed",
            Self::CustomerNotFound => "customer_not_found",
            Self::EmptyBatch => "empty_batch",
            Self::EventTooLarge => "event_too_large",
            Self::IdempotencyKeyInProgress => "idempotency_key_in_progress",
            Self::IdempotencyKeyRequired => "idempotency_key_required",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdentityUnavailable => "identity_unavailable",
            Self::ImportNotFound => "import_not_found",
            Self::ImportUnavailable => "import_unavailable",
            Self::InsufficientPoints => "insufficient_points",
            Self::InsufficientScope => "insufficient_scope",
            Self::Internal => "internal",
            Self::InvalidBatch => "invalid_batch",
            Self::InvalidBody => "invalid_body",
            Self::InvalidConsent => "invalid_consent",
            Self::InvalidCursor => "invalid_cursor",
            Self::InvalidEmail => "invalid_email",
            Self::InvalidEnvelope => "invalid_envelope",
            Self::InvalidEvents => "invalid_events",
            Self::InvalidField => "invalid_field",
            Self::InvalidFormat => "invalid_format",
            Self::InvalidId => "invalid_id",
            Self::InvalidJourney => "invalid_journey",
            Self::InvalidJson => "invalid_json",
            Self::InvalidKeyRequest => "invalid_key_request",
            Self::InvalidLimit => "invalid_limit",
            Self::InvalidLookup => "invalid_lookup",
            Self::InvalidPeriod => "invalid_period",
            Self::InvalidProgramme => "invalid_programme",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidRange => "invalid_range",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidReward => "invalid_reward",
            Self::InvalidRule => "invalid_rule",
            Self::InvalidSegment => "invalid_segment",
            Self::InvalidSettings => "invalid_settings",
            Self::InvalidState => "invalid_state",
            Self::InvalidStatus => "invalid_status",
            Self::InvalidTenant => "invalid_tenant",
            Self::JobNotFound => "job_not_found",
            Self::JourneyNotFound => "journey_not_found",
            Self::KeyNotFound => "key_not_found",
            Self::MergeNotFound => "merge_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::MissingIdentity => "missing_identity",
            Self::MissingName => "missing_name",
            Self::NoProgramme => "no_programme",
            Self::NotAnObject => "not_an_object",
            Self::NotFound => "not_found",
            Self::Overloaded => "overloaded",
            Self::PayloadTooLarge => "payload_too_large",
            Self::PiiInQuery => "pii_in_query",
            Self::RequestTimeout => "request_timeout",
            Self::ReviewNotFound => "review_not_found",
            Self::RewardUnavailable => "reward_unavailable",
            Self::SegmentCycle => "segment_cycle",
            Self::SegmentInUse => "segment_in_use",
            Self::SegmentNameTaken => "segment_name_taken",
            Self::SegmentNotFound => "segment_not_found",
            Self::SegmentationUnavailable => "segmentation_unavailable",
            Self::ServiceTokenRequired => "service_token_required",
            Self::SurvivorMergedAgain => "survivor_merged_again",
            Self::TenantMismatch => "tenant_mismatch",
            Self::Unauthorized => "unauthorized",
            Self::UnknownDecision => "unknown_decision",
            Self::UnknownKind => "unknown_kind",
            Self::UnknownSegment => "unknown_segment",
            Self::UnreadableBody => "unreadable_body",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::UploadInterrupted => "upload_interrupted",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamUnavailable => "upstream_unavailable",
        }
    }
}

impl Code {
    /// The code named `name`, if there is one (for codes that come from another crate, such as
    /// the ingest contract's per-event codes).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_sorted() {
        let names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for n in names {
            assert!(
                n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{n}"
            );
            assert_eq!(Code::from_name(n).map(Code::as_str), Some(n));
        }
        assert_eq!(Code::from_name("no_such_code"), None);
    }
}
