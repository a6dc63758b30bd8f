//! `contact_policies`: each tenant's frequency caps, quiet hours and global control group.

use crm_envelope::TenantId;
use sqlx::types::Json;
use sqlx::PgConnection;

use crate::domain::gate::policy::ContactPolicy;

/// The tenant's policy (the default, no caps and no quiet hours, when none was saved).
pub async fn get(conn: &mut PgConnection, tenant: &TenantId) -> Result<ContactPolicy, sqlx::Error> {
    let r: Option<(Json<ContactPolicy>,)> =
        sqlx::query_as("SELECT policy FROM contact_policies WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(r.map(|(p,)| p.0).unwrap_or_default())
}

/// Saves the tenant's policy.
pub async fn put(
    conn: &mut PgConnection,
    tenant: &TenantId,
    policy: &ContactPolicy,
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO contact_policies (tenant_id, policy, updated_by) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET policy = EXCLUDED.policy, updated_at = now(),
             updated_by = EXCLUDED.updated_by",
    )
    .bind(tenant)
    .bind(Json(policy))
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}
