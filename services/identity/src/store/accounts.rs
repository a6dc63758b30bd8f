//! Accounts (B2B) and who belongs to them, from `group` events: `properties.group_id` names the
//! account and `properties.traits` are the account's traits (never the person's).

use chrono::{DateTime, Utc};
use crm_envelope::{Envelope, TenantId};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

/// The longest account id kept (the table checks it too).
const MAX_GROUP_ID: usize = 256;

/// The account a `group` event names, if it names one that can be kept.
fn group_of(envelope: &Envelope) -> Option<(&str, Map<String, Value>)> {
    let group_id = envelope
        .properties
        .get("group_id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|g| !g.is_empty() && g.len() <= MAX_GROUP_ID)?;
    let traits = envelope
        .properties
        .get("traits")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Some((group_id, traits))
}

/// Applies a `group` event resolved to `customer`: creates or updates the account (its traits
/// merged in, key by key) and makes the customer a member. A `group` event that names no
/// usable account changes nothing here (it stays on the timeline). Other events are ignored.
pub(crate) async fn apply_group(
    tx: &mut PgConnection,
    envelope: &Envelope,
    customer: Uuid,
) -> Result<(), sqlx::Error> {
    if envelope.kind != "group" {
        return Ok(());
    }
    let Some((group_id, traits)) = group_of(envelope) else {
        tracing::debug!("group event without a usable group_id; no account changed");
        return Ok(());
    };
    let tenant = envelope.tenant_id.as_str();
    sqlx::query(
        "INSERT INTO accounts (tenant_id, group_id, traits) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, group_id)
         DO UPDATE SET traits = accounts.traits || EXCLUDED.traits, updated_at = now()",
    )
    .bind(tenant)
    .bind(group_id)
    .bind(sqlx::types::Json(&traits))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO account_members (tenant_id, group_id, customer_id, owner_id, joined_at)
         VALUES ($1, $2, $3, $3, $4)
         ON CONFLICT (tenant_id, group_id, owner_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(group_id)
    .bind(customer)
    .bind(envelope.occurred_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// An account as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Account {
    /// The id the `group` calls gave it.
    pub group_id: String,
    /// Its traits (latest call wins, per key).
    #[schema(value_type = Object)]
    pub traits: Value,
    /// Its members (current customer ids, each once), earliest first.
    pub members: Vec<Uuid>,
    /// When the first group call named it.
    pub created_at: DateTime<Utc>,
    /// When a group call last changed it.
    pub updated_at: DateTime<Utc>,
}

/// An account's row: id, traits, created, updated.
type AccountRow = (
    String,
    sqlx::types::Json<Value>,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// The account `group_id` of the tenant, if any.
pub(crate) async fn read(
    conn: &mut PgConnection,
    tenant: &TenantId,
    group_id: &str,
) -> Result<Option<Account>, sqlx::Error> {
    let row: Option<AccountRow> = sqlx::query_as(
        "SELECT group_id, traits, created_at, updated_at FROM accounts
             WHERE tenant_id = $1 AND group_id = $2",
    )
    .bind(tenant.as_str())
    .bind(group_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((group_id, traits, created_at, updated_at)) = row else {
        return Ok(None);
    };
    let members: Vec<Uuid> = sqlx::query_scalar(
        "SELECT customer_id FROM account_members WHERE tenant_id = $1 AND group_id = $2
         GROUP BY customer_id ORDER BY min(joined_at), customer_id",
    )
    .bind(tenant.as_str())
    .bind(&group_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(Account {
        group_id,
        traits: traits.0,
        members,
        created_at,
        updated_at,
    }))
}
