//! The tenant's settings, stored as one JSON document, and the tenant's generation: every
//! change of settings or segments bumps it so that evaluators reload their compiled model.

use crm_envelope::TenantId;
use sqlx::PgConnection;

use crate::domain::settings::Settings;

/// The tenant's settings (defaults when none were saved).
pub async fn load(conn: &mut PgConnection, tenant: &TenantId) -> Result<Settings, sqlx::Error> {
    let row: Option<(sqlx::types::Json<Settings>,)> =
        sqlx::query_as("SELECT settings FROM tenant_settings WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(s,)| s.0).unwrap_or_default())
}

/// Saves the tenant's settings (already checked) and bumps its generation.
pub async fn save(
    conn: &mut PgConnection,
    tenant: &TenantId,
    settings: &Settings,
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tenant_settings (tenant_id, settings, updated_by) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE
         SET settings = EXCLUDED.settings, updated_by = EXCLUDED.updated_by, updated_at = now()",
    )
    .bind(tenant)
    .bind(sqlx::types::Json(settings))
    .bind(by)
    .execute(&mut *conn)
    .await?;
    bump_generation(conn, tenant).await
}

/// The advisory lock that orders evaluations against changes of the tenant's model: every
/// evaluating transaction holds it shared ([`hold_generation`]), a change takes it exclusive
/// ([`bump_generation`]).
const GENERATION_LOCK: &str = "hashtextextended('crm.segmentation.generation:' || $1, 0)";

/// Holds the tenant's generation steady until the caller's transaction ends: a change of
/// segments or settings waits for this transaction, and this one waits for a change in
/// progress. A transaction that evaluated with the old model has therefore committed before
/// the change does, so the recompute that follows the change sees every customer it touched.
/// Without it, a customer created by an evaluation of the old model while the recompute was
/// already past its id never got the new segment.
pub async fn hold_generation(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "SELECT pg_advisory_xact_lock_shared({GENERATION_LOCK})"
    ))
    .bind(tenant)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the tenant's segments or settings as changed (see [`hold_generation`]).
pub async fn bump_generation(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SELECT pg_advisory_xact_lock({GENERATION_LOCK})"))
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO tenant_generations (tenant_id, generation) VALUES ($1, 1)
         ON CONFLICT (tenant_id) DO UPDATE SET generation = tenant_generations.generation + 1",
    )
    .bind(tenant)
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenant's current generation (0 before any change).
pub async fn generation(conn: &mut PgConnection, tenant: &TenantId) -> Result<i64, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT generation FROM tenant_generations WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(row.map_or(0, |(g,)| g))
}
