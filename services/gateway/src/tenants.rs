//! Creating tenants and keys (used by the `crm-gateway create-tenant` / `create-key` commands
//! and by the admin API).

use crm_envelope::TenantId;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::{new_key, Scope};

/// A key just created. The plain key is shown once and never stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    /// The key's id (for revocation and listings).
    pub id: Uuid,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// The key itself: keep it secret; it cannot be shown again.
    pub api_key: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

/// Why a tenant or key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The tenant id is taken.
    #[error("tenant {0} already exists")]
    Exists(String),
    /// No such tenant.
    #[error("tenant {0} does not exist")]
    Missing(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Creates a tenant and its first admin key.
pub async fn create_tenant(
    pool: &PgPool,
    id: &TenantId,
    name: &str,
) -> Result<IssuedKey, TenantError> {
    let mut tx = pool.begin().await?;
    let inserted =
        sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(id.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
    if inserted.rows_affected() == 0 {
        return Err(TenantError::Exists(id.to_string()));
    }
    let key = insert_key(&mut tx, id, "first admin key", &[Scope::Admin]).await?;
    tx.commit().await?;
    Ok(key)
}

/// Issues another key for an existing tenant.
pub async fn create_key(
    pool: &PgPool,
    tenant: &TenantId,
    name: &str,
    scopes: &[Scope],
) -> Result<IssuedKey, TenantError> {
    let mut tx = pool.begin().await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)")
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        return Err(TenantError::Missing(tenant.to_string()));
    }
    let key = insert_key(&mut tx, tenant, name, scopes).await?;
    tx.commit().await?;
    Ok(key)
}

async fn insert_key(
    conn: &mut sqlx::PgConnection,
    tenant: &TenantId,
    name: &str,
    scopes: &[Scope],
) -> Result<IssuedKey, sqlx::Error> {
    let (key, hash) = new_key();
    let id = Uuid::now_v7();
    let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, key_prefix, key_hash, scopes)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(tenant.as_str())
    .bind(name)
    .bind(&key[..12])
    .bind(hash)
    .bind(&scope_names)
    .execute(conn)
    .await?;
    Ok(IssuedKey {
        id,
        tenant_id: tenant.to_string(),
        api_key: key,
        scopes: scopes.to_vec(),
    })
}

/// A key as listed: never the key itself, only its first characters.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct KeyInfo {
    /// The key's id.
    pub id: Uuid,
    /// What it is for.
    pub name: String,
    /// Its first 12 characters (`crm_` and 8 more), to recognise it.
    pub key_prefix: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// When it was issued.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was revoked; a revoked key is refused at once.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `tenant`'s keys, newest first, revoked ones included.
pub async fn list_keys(pool: &PgPool, tenant: &TenantId) -> Result<Vec<KeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, key_prefix, scopes, created_at, revoked_at FROM api_keys
         WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(tenant.as_str())
    .fetch_all(pool)
    .await
}

/// Revokes `tenant`'s key `id` (again revoking a revoked key keeps its first time); the key
/// as listed, or `None` when the tenant has no such key.
pub async fn revoke_key(
    pool: &PgPool,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<KeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
         WHERE tenant_id = $1 AND id = $2
         RETURNING id, name, key_prefix, scopes, created_at, revoked_at",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(pool)
    .await
}
