//! The tenant's programme, stored as checked JSON.

use crm_envelope::TenantId;
use sqlx::types::Json;
use sqlx::PgConnection;

use crate::domain::programme::Programme;

/// The tenant's programme, when one was configured.
pub async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Option<Programme>, sqlx::Error> {
    let row: Option<(Json<Programme>,)> =
        sqlx::query_as("SELECT programme FROM programmes WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(p,)| p.0))
}

/// Saves the tenant's programme (already checked).
pub async fn save(
    conn: &mut PgConnection,
    tenant: &TenantId,
    p: &Programme,
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO programmes (tenant_id, programme, updated_by) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET programme = EXCLUDED.programme, updated_by = EXCLUDED.updated_by, updated_at = now()",
    )
    .bind(tenant)
    .bind(Json(p))
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}
