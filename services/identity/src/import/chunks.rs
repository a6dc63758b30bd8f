//! `import_chunks`: an import's file as it arrived, in order.

use crm_envelope::TenantId;
use sqlx::PgPool;
use uuid::Uuid;

/// Stores chunk `seq` of import `id`.
pub async fn store(
    pool: &PgPool,
    tenant: &TenantId,
    id: Uuid,
    seq: i32,
    data: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO import_chunks (tenant_id, import_id, seq, data) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(seq)
    .bind(data)
    .execute(pool)
    .await?;
    Ok(())
}

/// The whole file of import `id`, its chunks joined in order.
pub async fn file(pool: &PgPool, tenant: &TenantId, id: Uuid) -> Result<Vec<u8>, sqlx::Error> {
    let chunks: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT data FROM import_chunks WHERE tenant_id = $1 AND import_id = $2 ORDER BY seq",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(chunks.concat())
}

/// Deletes the file of import `id` (its job ended, or its upload failed).
pub async fn delete(pool: &PgPool, tenant: &TenantId, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM import_chunks WHERE tenant_id = $1 AND import_id = $2")
        .bind(tenant.as_str())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
