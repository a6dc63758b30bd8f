//! `suppressions`: the addresses no marketing message may reach, per tenant and channel.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::Serialize;
use sqlx::PgConnection;

use crate::domain::journeys::Channel;
use crate::domain::suppression::{channel_str, Reason};

/// A suppression as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq, utoipa::ToSchema)]
pub struct Suppression {
    /// `email`, `sms` or `push`.
    pub channel: String,
    /// The normalised address.
    pub address: String,
    /// Why.
    pub reason: String,
    /// Since when.
    pub created_at: DateTime<Utc>,
    /// Who or what added it.
    pub created_by: String,
}

/// Adds an address (normalised by the caller); an address already suppressed keeps its first
/// reason. `true` when it was new.
pub async fn add(
    conn: &mut PgConnection,
    tenant: &TenantId,
    channel: Channel,
    address: &str,
    reason: Reason,
    by: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO suppressions (tenant_id, channel, address, reason, created_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(channel_str(channel))
    .bind(address)
    .bind(reason.as_str())
    .bind(by)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes an address; `true` when it was there.
pub async fn remove(
    conn: &mut PgConnection,
    tenant: &TenantId,
    channel: Channel,
    address: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM suppressions WHERE tenant_id = $1 AND channel = $2 AND address = $3",
    )
    .bind(tenant)
    .bind(channel_str(channel))
    .bind(address)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the address is suppressed (what the gate asks).
pub async fn is_suppressed(
    conn: &mut PgConnection,
    tenant: &TenantId,
    channel: Channel,
    address: &str,
) -> Result<bool, sqlx::Error> {
    let hit: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM suppressions WHERE tenant_id = $1 AND channel = $2 AND address = $3",
    )
    .bind(tenant)
    .bind(channel_str(channel))
    .bind(address)
    .fetch_optional(conn)
    .await?;
    Ok(hit.is_some())
}

/// A page of the list, ordered by channel and address.
pub async fn page(
    conn: &mut PgConnection,
    tenant: &TenantId,
    offset: i64,
    limit: i64,
) -> Result<Vec<Suppression>, sqlx::Error> {
    sqlx::query_as(
        "SELECT channel, address, reason, created_at, created_by FROM suppressions
         WHERE tenant_id = $1 ORDER BY channel, address OFFSET $2 LIMIT $3",
    )
    .bind(tenant)
    .bind(offset)
    .bind(limit)
    .fetch_all(conn)
    .await
}
