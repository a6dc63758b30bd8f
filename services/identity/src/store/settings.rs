//! `identity_settings`: each tenant's identity settings as one JSON document; a tenant
//! without a row gets the defaults.

use crm_envelope::TenantId;
use sqlx::PgConnection;

use crate::domain::settings::Settings;

/// Loads the tenant's settings (defaults when it has none).
pub async fn load(conn: &mut PgConnection, tenant: &TenantId) -> Result<Settings, sqlx::Error> {
    let stored: Option<sqlx::types::Json<Settings>> =
        sqlx::query_scalar("SELECT settings FROM identity_settings WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(conn)
            .await?;
    Ok(stored.map(|s| s.0).unwrap_or_default())
}

/// Stores the tenant's settings (validated by the caller).
pub async fn save(
    conn: &mut PgConnection,
    tenant: &TenantId,
    settings: &Settings,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO identity_settings (tenant_id, settings) VALUES ($1, $2)
         ON CONFLICT (tenant_id) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now()",
    )
    .bind(tenant.as_str())
    .bind(sqlx::types::Json(settings))
    .execute(conn)
    .await?;
    Ok(())
}
