//! `contacts`, `aliases` and `erased`: the contacts campaigns can reach, kept under the
//! survivor of a merge and never brought back after an erasure.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// A contact as the API shows it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Contact {
    /// The customer.
    pub customer_id: Uuid,
    /// Their email, from their profile.
    pub email: Option<String>,
    /// Events seen.
    pub events_seen: i64,
    /// Their latest event.
    pub last_event_at: Option<DateTime<Utc>>,
    /// Their traits, as identity last published them.
    pub traits: sqlx::types::Json<serde_json::Value>,
}

/// The id contacts of `$2` (tenant `$1`) are kept under, as a one-row subquery `x(id)`: the
/// survivor of a merged id, or no row once the id is erased. A macro so that `concat!` builds
/// each statement at compile time.
macro_rules! live {
    () => {
        "(SELECT coalesce(
             (SELECT survivor_id FROM aliases WHERE tenant_id = $1 AND merged_id = $2), $2) AS id) x
         WHERE NOT EXISTS (SELECT 1 FROM erased WHERE tenant_id = $1 AND customer_id = x.id)"
    };
}

/// Folds the merged contact into the survivor's (events add up, the later activity and the
/// survivor's email win, the merged one's email fills a gap) and records the alias.
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    merged: Uuid,
    survivor: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH gone AS (DELETE FROM contacts WHERE tenant_id = $1 AND customer_id = $2 RETURNING *)
         INSERT INTO contacts AS c (tenant_id, customer_id, email, events_seen, last_event_at, traits, traits_at)
         SELECT $1, $3, email, events_seen, last_event_at, traits, traits_at FROM gone
         ON CONFLICT (tenant_id, customer_id) DO UPDATE
         SET email = COALESCE(c.email, EXCLUDED.email),
             events_seen = c.events_seen + EXCLUDED.events_seen,
             last_event_at = GREATEST(c.last_event_at, EXCLUDED.last_event_at),
             traits = CASE WHEN c.traits_at IS NULL THEN EXCLUDED.traits ELSE c.traits END,
             traits_at = COALESCE(c.traits_at, EXCLUDED.traits_at),
             updated_at = now()",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO aliases (tenant_id, merged_id, survivor_id) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, merged_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a profile change: the email (`None` keeps the one known) and the traits, unless a
/// newer profile was recorded already; under the id contacts of `customer` are kept under;
/// nothing for an erased id.
pub async fn record_profile(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    email: Option<&str>,
    traits: &serde_json::Map<String, serde_json::Value>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO contacts AS c (tenant_id, customer_id, email, traits, traits_at) SELECT $1, id, $3, $4, $5 FROM ",
        live!(),
        " ON CONFLICT (tenant_id, customer_id) DO UPDATE
         SET email = COALESCE(EXCLUDED.email, c.email),
             traits = CASE WHEN c.traits_at IS NULL OR EXCLUDED.traits_at >= c.traits_at
                           THEN EXCLUDED.traits ELSE c.traits END,
             traits_at = GREATEST(c.traits_at, EXCLUDED.traits_at),
             updated_at = now()"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(email)
    .bind(sqlx::types::Json(traits))
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts one more event of `customer` at `at`, under the id its contacts are kept under;
/// nothing for an erased id.
pub async fn record_activity(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO contacts AS c (tenant_id, customer_id, events_seen, last_event_at)
         SELECT $1, id, 1, $3 FROM ",
        live!(),
        " ON CONFLICT (tenant_id, customer_id) DO UPDATE
         SET events_seen = c.events_seen + 1,
             last_event_at = GREATEST(c.last_event_at, EXCLUDED.last_event_at),
             updated_at = now()"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the contacts of `ids` (email and activity) and remembers the ids.
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM contacts WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO erased (tenant_id, customer_id) SELECT $1, unnest($2::uuid[])
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The contact of `customer`, if any.
pub async fn find(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<Option<Contact>, sqlx::Error> {
    sqlx::query_as(
        "SELECT customer_id, email, events_seen, last_event_at, traits FROM contacts
         WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_optional(conn)
    .await
}
