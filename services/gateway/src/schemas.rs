//! The shapes of bodies the gateway passes on from the parts, for `/openapi.json` only: the
//! parts own these answers (their handlers build them), and the gateway forwards them as they
//! are, so these types are never built here. They declare the fields a client can rely on;
//! parts may add fields (every object allows more).

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Customers found by an identifier (empty when none).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProfileList {
    /// The profiles.
    items: Vec<crm_envelope::Profile>,
}

/// A page of search results.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProfilePage {
    /// The profiles, best match first.
    items: Vec<crm_envelope::Profile>,
    /// Pass as `after` for the next page; null on the last.
    next_after: Option<Uuid>,
}

/// One entry of a customer's timeline.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TimelineEntry {
    /// The event's id.
    event_id: String,
    /// `track`, `identify`, `message.sent`, ...
    kind: String,
    /// The event name of a track.
    name: Option<String>,
    /// Where it came from.
    source: String,
    /// When it happened.
    occurred_at: DateTime<Utc>,
    /// Its properties.
    #[schema(value_type = Object)]
    properties: serde_json::Value,
}

/// A page of a customer's timeline, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TimelinePage {
    /// The customer (the survivor, when the id asked for was merged).
    customer_id: Uuid,
    /// The entries.
    items: Vec<TimelineEntry>,
    /// Pass as `cursor` for the next page; null on the last.
    next: Option<String>,
}

/// One suppressed address.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Suppression {
    /// `email`, `sms` or `push`.
    channel: String,
    /// The address.
    address: String,
    /// `manual`, `unsubscribe`, `hard_bounce`, `complaint` or `soft_bounces`.
    reason: String,
    /// When it was suppressed.
    created_at: DateTime<Utc>,
    /// Who suppressed it (`key:<name>`, `tracking`, ...).
    created_by: Option<String>,
}

/// A page of the suppression list.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SuppressionList {
    /// The addresses.
    items: Vec<Suppression>,
    /// Entries skipped.
    offset: i64,
    /// The page size.
    limit: i64,
}

/// Whether an address was on the list.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Removed {
    /// True when it was suppressed and no longer is.
    removed: bool,
}
