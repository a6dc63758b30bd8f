//! Loading the customer profile (`crm_envelope::Profile`) that identity serves and caches.

use chrono::{DateTime, Utc};
use crm_envelope::{Envelope, Profile, ProfileIdentifier, TenantId, UnattachedIdentifier};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct CustomerRow {
    id: Uuid,
    tenant_id: TenantId,
    traits: sqlx::types::Json<Map<String, Value>>,
    event_count: i64,
    version: i64,
    first_seen_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    identifiers: sqlx::types::Json<Vec<(String, String)>>,
    unattached: sqlx::types::Json<Vec<UnattachedIdentifier>>,
    accounts: sqlx::types::Json<Vec<String>>,
}

/// The customer columns of a profile and its identifiers (in first-seen order), in one round
/// trip; `{filter}` selects the customers.
const PROFILE_SELECT: &str = "SELECT c.id, c.tenant_id, c.traits, c.event_count, c.version,
        c.first_seen_at, c.last_seen_at, c.created_at, c.updated_at,
        COALESCE((SELECT jsonb_agg(jsonb_build_array(i.kind, i.value)
                                   ORDER BY i.first_seen_at, i.kind, i.value)
                  FROM identifiers i
                  WHERE i.tenant_id = c.tenant_id AND i.customer_id = c.id),
                 '[]'::jsonb) AS identifiers,
        COALESCE((SELECT jsonb_agg(jsonb_build_object('kind', u.kind, 'reason', u.reason,
                                   'held_by', u.held_by, 'event_id', u.event_id, 'at', u.at)
                                   ORDER BY u.at, u.kind)
                  FROM unattached_identifiers u
                  WHERE u.tenant_id = c.tenant_id AND u.customer_id = c.id),
                 '[]'::jsonb) AS unattached,
        COALESCE((SELECT jsonb_agg(DISTINCT m.group_id ORDER BY m.group_id)
                  FROM account_members m
                  WHERE m.tenant_id = c.tenant_id AND m.customer_id = c.id),
                 '[]'::jsonb) AS accounts
 FROM customers c WHERE c.tenant_id = $1 AND ";

impl From<CustomerRow> for Profile {
    fn from(row: CustomerRow) -> Self {
        Profile {
            id: row.id,
            tenant_id: row.tenant_id,
            traits: row.traits.0,
            identifiers: row
                .identifiers
                .0
                .into_iter()
                .map(|(kind, value)| ProfileIdentifier { kind, value })
                .collect(),
            unattached: row.unattached.0,
            accounts: row.accounts.0,
            event_count: row.event_count,
            version: row.version,
            first_seen_at: row.first_seen_at,
            last_seen_at: row.last_seen_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Loads a profile; `None` when the tenant has no such customer.
pub(crate) async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<Profile>, sqlx::Error> {
    let row: Option<CustomerRow> = sqlx::query_as(&format!("{PROFILE_SELECT} c.id = $2"))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(Profile::from))
}

/// Loads the profiles of `ids` that the tenant has, in one query.
pub(crate) async fn load_many(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<Vec<Profile>, sqlx::Error> {
    let rows: Vec<CustomerRow> = sqlx::query_as(&format!("{PROFILE_SELECT} c.id = ANY($2)"))
        .bind(tenant.as_str())
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(Profile::from).collect())
}

/// The id `id` answers to (itself, or its survivor when it was merged), if it is an active or
/// merged customer of the tenant.
pub(crate) async fn canonical_id(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(merged_into, id) FROM customers
         WHERE tenant_id = $1 AND id = $2 AND status IN ('active', 'merged')",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Loads the profile `id` answers to: itself, or its survivor when it was merged.
pub(crate) async fn load_following_alias(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<Profile>, sqlx::Error> {
    match canonical_id(conn, tenant, id).await? {
        Some(target) => load(conn, tenant, target).await,
        None => Ok(None),
    }
}

/// The customer an identifier belongs to.
pub(crate) async fn find_by_identifier(
    conn: &mut PgConnection,
    tenant: &TenantId,
    kind: &str,
    value: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT customer_id FROM identifiers WHERE tenant_id = $1 AND kind = $2 AND value = $3",
    )
    .bind(tenant.as_str())
    .bind(kind)
    .bind(value)
    .fetch_optional(conn)
    .await
}

/// A `profile.created` / `profile.updated` event carrying the current traits and the first
/// identifier of each core kind.
pub(crate) fn change_event(tenant: &TenantId, kind: &str, p: &Profile) -> Envelope {
    let mut e = Envelope::domain(tenant.clone(), kind, p.id, "identity");
    e.traits = p.traits.clone();
    let first = |kind: &str| {
        p.identifiers
            .iter()
            .find(|i| i.kind == kind)
            .map(|i| i.value.clone())
    };
    e.identity.user_id = first("user_id");
    e.identity.anonymous_id = first("anonymous_id");
    e.identity.email = first("email").map(crm_envelope::Pii::new);
    e.identity.phone = first("phone").map(crm_envelope::Pii::new);
    e
}

/// Records that `kind` from event `event_id` was not attached to `customer`, and why.
pub(crate) async fn record_unattached(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    kind: &str,
    held_by: Option<Uuid>,
    reason: &str,
    event_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO unattached_identifiers (tenant_id, customer_id, kind, held_by, reason, event_id)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, customer_id, kind, coalesce(held_by, '00000000-0000-0000-0000-000000000000'::uuid))
         DO UPDATE SET reason = EXCLUDED.reason, event_id = EXCLUDED.event_id, at = now()",
    )
    .bind(tenant.as_str())
    .bind(customer)
    .bind(kind)
    .bind(held_by)
    .bind(reason)
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// After `merged` joined `survivor`: what one held is no longer unattached from the other, and
/// the merged customer's records move to the survivor.
pub(crate) async fn merge_unattached(
    conn: &mut PgConnection,
    tenant: &TenantId,
    survivor: Uuid,
    merged: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM unattached_identifiers WHERE tenant_id = $1
           AND ((customer_id = $2 AND held_by = $3) OR (customer_id = $3 AND held_by = $2))",
    )
    .bind(tenant.as_str())
    .bind(survivor)
    .bind(merged)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO unattached_identifiers (tenant_id, customer_id, kind, held_by, reason, event_id, at)
         SELECT tenant_id, $2, kind, held_by, reason, event_id, at FROM unattached_identifiers
         WHERE tenant_id = $1 AND customer_id = $3
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(survivor)
    .bind(merged)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM unattached_identifiers WHERE tenant_id = $1 AND customer_id = $2")
        .bind(tenant.as_str())
        .bind(merged)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE unattached_identifiers SET held_by = $2 WHERE tenant_id = $1 AND held_by = $3",
    )
    .bind(tenant.as_str())
    .bind(survivor)
    .bind(merged)
    .execute(conn)
    .await?;
    Ok(())
}
