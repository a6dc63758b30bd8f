//! The request and answer bodies of identity's API. The handlers build exactly these types,
//! and the gateway's `/openapi.json` names them, so the documented shape is the one served.

use chrono::{DateTime, Utc};
use crm_envelope::Profile;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Answers that are the part's own types, named here so the gateway finds every body in one
/// module.
pub use crate::domain::settings::Settings;
pub use crate::privacy::ExportDocument;
pub use crate::store::accounts::Account;

use crate::merge::MergeRecord;
use crate::privacy::ConsentState;
use crate::store::timeline::Entry;

/// Customers found by an exact identifier (none or one).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileList {
    /// The profiles.
    pub items: Vec<Profile>,
}

/// A page of search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfilePage {
    /// The profiles, best match first.
    pub items: Vec<Profile>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<Uuid>,
}

/// A page of a customer's timeline, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelinePage {
    /// The customer (the survivor, when the id asked for was merged).
    pub customer_id: Uuid,
    /// The entries.
    pub items: Vec<Entry>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next: Option<String>,
}

/// One identifier with when it was first seen.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Identifier {
    /// `user_id`, `email`, `phone`, `anonymous_id`, ...
    pub kind: String,
    /// Its standardised value.
    pub value: String,
    /// When the customer first showed it.
    pub first_seen_at: DateTime<Utc>,
}

/// A customer's identifiers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Identifiers {
    /// The customer (the survivor, when the id asked for was merged).
    pub customer_id: Uuid,
    /// By kind, then first seen.
    pub items: Vec<Identifier>,
}

/// The merges a customer took part in.
#[derive(Debug, Serialize, ToSchema)]
pub struct MergeList {
    /// Newest first.
    pub items: Vec<MergeRecord>,
}

/// An undone merge.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unmerged {
    /// The merge.
    pub merge_id: Uuid,
    /// `undone`.
    pub status: String,
    /// The customer that stayed, as it is now.
    pub survivor: Option<Profile>,
    /// The customer brought back.
    pub restored: Option<Profile>,
}

/// A customer's current consent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentList {
    /// The customer.
    pub customer_id: Uuid,
    /// The latest entry per purpose and channel.
    pub items: Vec<ConsentState>,
}

/// A consent change.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"purpose": "marketing", "channel": "email", "granted": false, "source": "preference_centre"}))]
pub struct ConsentBody {
    /// `marketing`, `analytics`, ... (lower case, letters, digits, `_`).
    pub purpose: String,
    /// `email`, `sms`, `push`, `any`, ...
    pub channel: String,
    /// Given or withdrawn.
    pub granted: bool,
    /// When the customer gave or withdrew it (default: now).
    pub at: Option<DateTime<Utc>>,
    /// Who collected it (default `api`).
    pub source: Option<String>,
}

/// An erasure.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    /// `erased`.
    pub status: String,
    /// The customer and its aliases, now tombstones.
    pub erased_ids: Vec<Uuid>,
}

/// One field's data quality.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct FieldQuality {
    /// The field (`email`, `phone`, `postcode`, ...).
    pub field: String,
    /// Values received.
    pub present: i64,
    /// Usable values (already standard or standardised).
    pub valid: i64,
    /// Values kept as received with an invalid flag.
    pub invalid: i64,
    /// Valid values that had to be rewritten to the standard form.
    pub standardised: i64,
}

/// The tenant's data-quality report.
#[derive(Debug, Serialize, ToSchema)]
pub struct QualityReport {
    /// Per field.
    pub fields: Vec<FieldQuality>,
}

/// A pair of customers that may be one person.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Review {
    /// Its id.
    pub id: Uuid,
    /// One customer.
    pub customer_a: Uuid,
    /// The other.
    pub customer_b: Uuid,
    /// `different_user_id`, `identifier_cap` or `probabilistic`.
    pub reason: String,
    /// The matcher's probability, for `probabilistic`.
    pub probability: Option<f64>,
    /// What the two share and where they differ.
    #[schema(value_type = Object)]
    pub evidence: sqlx::types::Json<Value>,
    /// `pending`, `accepted` or `rejected`.
    pub status: String,
    /// Queued.
    pub created_at: DateTime<Utc>,
    /// Decided.
    pub decided_at: Option<DateTime<Utc>>,
}

/// A page of reviews, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewPage {
    /// The reviews.
    pub items: Vec<Review>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<Uuid>,
}

/// A decided review.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewDecision {
    /// The review.
    pub id: Uuid,
    /// `accepted` or `rejected`.
    pub status: String,
    /// The merge made, when accepted (null when rejected, or when one of the two was merged or erased since).
    pub merge_id: Option<Uuid>,
    /// The customer that stayed.
    pub survivor_id: Option<Uuid>,
    /// The customer merged into it.
    pub merged_id: Option<Uuid>,
}

/// A stored import, queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportQueued {
    /// The import.
    pub id: Uuid,
    /// `queued`.
    pub status: String,
    /// Where to follow it (also in `Location`).
    pub url: String,
}

/// An import job with its per-row report.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct ImportJob {
    /// Its id.
    pub id: Uuid,
    /// `csv` or `ndjson`.
    pub format: String,
    /// `receiving`, `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// Rows in the file, once counted.
    pub total_rows: i64,
    /// Rows done.
    pub processed: i64,
    /// Rows that changed a customer.
    pub imported: i64,
    /// Rows that changed nothing.
    pub unchanged: i64,
    /// Rows refused.
    pub failed: i64,
    /// The first refused rows: `{row, code, detail}`.
    #[schema(value_type = Vec<Object>)]
    pub errors: sqlx::types::Json<Value>,
    /// The clean-up run after the import, once done.
    #[schema(value_type = Option<Object>)]
    pub cleanup: Option<sqlx::types::Json<Value>>,
    /// Why the whole import failed.
    pub failure: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Ended.
    pub finished_at: Option<DateTime<Utc>>,
}

pub use super::search::ProspectPage;
pub use crate::store::prospects::{Interest, Prospect};
