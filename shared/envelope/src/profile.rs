//! The customer profile: what identity serves, Redis caches, and the gateway returns.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::TenantId;

/// One identifier of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProfileIdentifier {
    /// `user_id`, `anonymous_id`, `email`, `phone`, `handle:<network>`.
    pub kind: String,
    /// The value.
    pub value: String,
}

/// An identifier an event carried that identity did not attach to this customer, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnattachedIdentifier {
    /// `email`, `phone`, `user_id`, ...
    pub kind: String,
    /// Why: `held_by_customer_with_another_user_id` (another customer has the value and its
    /// own user_id, so the two are different people), `merge_refused:<guard>` (another customer
    /// has it and a merge guard stopped the merge; a review is open), `cap_reached` (the
    /// tenant's cap of identifiers of this kind per customer).
    pub reason: String,
    /// The customer that holds the value, if another one does.
    pub held_by: Option<Uuid>,
    /// The event that carried it.
    pub event_id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A customer's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Profile {
    /// Stable customer id.
    pub id: Uuid,
    /// Tenant.
    #[schema(value_type = String)]
    pub tenant_id: TenantId,
    /// Traits from identify events (latest value wins, per key).
    #[schema(value_type = Object)]
    pub traits: Map<String, Value>,
    /// Identifiers linked to the customer.
    pub identifiers: Vec<ProfileIdentifier>,
    /// Identifiers its events carried that were not attached, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unattached: Vec<UnattachedIdentifier>,
    /// The accounts (B2B) it belongs to: the `groupId`s of its Segment `group` calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// Events applied to this customer.
    pub event_count: i64,
    /// Bumped by every applied event; lets clients see that a change happened.
    pub version: i64,
    /// Earliest `occurred_at` seen.
    pub first_seen_at: DateTime<Utc>,
    /// Latest `occurred_at` seen.
    pub last_seen_at: DateTime<Utc>,
    /// When identity created the customer.
    pub created_at: DateTime<Utc>,
    /// When the profile last changed.
    pub updated_at: DateTime<Utc>,
}
