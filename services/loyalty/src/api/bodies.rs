//! The request and answer bodies of loyalty's API. The handlers build exactly these types, and
//! the gateway's `/openapi.json` names them, so the documented shape is the one served.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Answers that are the part's own types, named here so the gateway finds every body in one
/// module.
pub use crate::domain::programme::Programme;
pub use crate::store::rewards::Redemption;

/// A customer's tier.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierView {
    /// The tier's name.
    pub name: String,
    /// Held since.
    pub since: DateTime<Utc>,
    /// Kept at least until then (a downgrade happens only at the end of the period).
    pub period_end: DateTime<Utc>,
}

/// Points that expire at one time.
#[derive(Debug, Serialize, ToSchema)]
pub struct Expiring {
    /// When.
    pub expires_at: DateTime<Utc>,
    /// How many.
    pub points: i64,
}

/// A customer's account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// The customer.
    pub customer_id: Uuid,
    /// The programme's points currency.
    pub currency: String,
    /// Points available.
    pub balance: i64,
    /// Points held by reward reservations.
    pub reserved: i64,
    /// The tier, once earned.
    pub tier: Option<TierView>,
    /// Points earned in the tier window.
    pub qualifying_points: i64,
    /// The tier window, in days.
    pub tier_window_days: u32,
    /// The next expiries, soonest first (at most 10).
    pub expiring: Vec<Expiring>,
}

/// One ledger entry of a customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementEntry {
    /// The entry (pass the last one as `before` for the next page).
    pub entry_id: i64,
    /// `customer` (available) or `reserved`.
    pub account: String,
    /// Points, signed.
    pub points: i64,
    /// Its transaction.
    pub transaction_id: i64,
    /// `earn`, `redeem`, `adjust`, `expire`, ...
    pub kind: String,
    /// Why.
    pub reason: String,
    /// The event that caused it, if any.
    pub source_event: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A page of a customer's statement, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Statement {
    /// The customer.
    pub customer_id: Uuid,
    /// The entries.
    pub items: Vec<StatementEntry>,
    /// Pass as `before` for the next page; null on the last.
    pub next: Option<i64>,
}

/// A manual adjustment.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"points": -50, "reason": "goodwill correction"}))]
pub struct Adjustment {
    /// Points to add (negative: remove), non-zero, at most 1e9 either way.
    pub points: i64,
    /// Why (shown on the statement).
    pub reason: String,
}

/// An adjustment made.
#[derive(Debug, Serialize, ToSchema)]
pub struct Adjusted {
    /// Its transaction.
    pub transaction_id: i64,
    /// The customer.
    pub customer_id: Uuid,
    /// Points added (negative: removed).
    pub points: i64,
    /// The balance after it.
    pub balance: i64,
}

/// What the programme owes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liability {
    /// Points held by customers, available and reserved.
    pub outstanding: i64,
    /// Available.
    pub available: i64,
    /// Reserved.
    pub reserved: i64,
    /// Customers holding points.
    pub customers_with_points: i64,
    /// Points ever issued.
    pub issued: i64,
    /// Points redeemed.
    pub redeemed: i64,
    /// Points expired.
    pub expired: i64,
    /// Whether outstanding equals issued less redeemed and expired (always, unless corrupted).
    pub reconciles: bool,
}

/// A reward to create or replace.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Free coffee", "cost": 150, "stock": 100, "active": true}))]
pub struct RewardBody {
    /// Its name.
    pub name: String,
    /// Points it costs (positive).
    pub cost: i64,
    /// How many are left (absent: unlimited).
    #[serde(default)]
    pub stock: Option<i32>,
    /// Redeemable from.
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    /// Redeemable until.
    #[serde(default)]
    pub valid_to: Option<DateTime<Utc>>,
    /// Whether it can be redeemed (default true).
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// A reward.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Reward {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Points it costs.
    pub cost: i64,
    /// How many are left (null: unlimited).
    pub stock: Option<i32>,
    /// Redeemable from.
    pub valid_from: Option<DateTime<Utc>>,
    /// Redeemable until.
    pub valid_to: Option<DateTime<Utc>>,
    /// Whether it can be redeemed.
    pub active: bool,
}

/// The tenant's rewards, cheapest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RewardList {
    /// The rewards.
    pub items: Vec<Reward>,
}

/// A reservation of a reward.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveBody {
    /// The customer.
    pub customer_id: Uuid,
    /// The reward.
    pub reward_id: Uuid,
}
