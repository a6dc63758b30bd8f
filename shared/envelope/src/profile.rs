//! The customer profile: what identity serves, Redis caches, and the gateway returns.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// One identifier of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProfileIdentifier {
    /// `user_id`, `anonymous_id`, `email`, `phone`, `handle:<network>`.
    pub kind: String,
    /// The value.
    pub value: String,
}

/// A customer's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Profile {
    /// Stable customer id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: String,
    /// Traits from identify events (latest value wins, per key).
    #[schema(value_type = Object)]
    pub traits: Map<String, Value>,
    /// Identifiers linked to the customer.
    pub identifiers: Vec<ProfileIdentifier>,
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
