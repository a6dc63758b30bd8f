//! `api_writes`: the answers of API writes, by tenant and idempotency key (see `api::keyed`).

use crm_envelope::TenantId;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

/// How long applied keys are kept.
pub const RETENTION_DAYS: i32 = 7;

/// A stored answer: the request's fingerprint, the status and the body.
pub type Stored = (String, i16, sqlx::types::Json<Value>);

/// Holds `tenant`'s `key` until the transaction ends: a second request with it waits.
pub async fn lock(tx: &mut PgConnection, tenant: &TenantId, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || E'\\n' || $2, 7))")
        .bind(tenant)
        .bind(key)
        .execute(tx)
        .await?;
    Ok(())
}

/// The answer stored for `key`, if a write with it was applied.
pub async fn find(
    tx: &mut PgConnection,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<Stored>, sqlx::Error> {
    sqlx::query_as("SELECT request, status, body FROM api_writes WHERE tenant_id = $1 AND key = $2")
        .bind(tenant)
        .bind(key)
        .fetch_optional(tx)
        .await
}

/// Stores the answer of the write applied with `key` (in the write's transaction).
pub async fn record(
    tx: &mut PgConnection,
    tenant: &TenantId,
    key: &str,
    request: &str,
    status: i16,
    body: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_writes (tenant_id, key, request, status, body) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(key)
    .bind(request)
    .bind(status)
    .bind(sqlx::types::Json(body))
    .execute(tx)
    .await?;
    Ok(())
}

/// Deletes answers older than [`RETENTION_DAYS`]; how many.
pub async fn purge(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM api_writes WHERE created_at < now() - make_interval(days => $1)")
            .bind(RETENTION_DAYS)
            .execute(pool)
            .await?;
    Ok(done.rows_affected())
}
