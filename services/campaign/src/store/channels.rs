//! `channels`: each tenant's channel settings by key, and their secrets (provider tokens,
//! webhook signing secrets), which the API never shows back.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::Serialize;
use sqlx::types::Json;
use sqlx::PgConnection;

use crate::domain::channels::Settings;

/// A channel as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelRow {
    /// Its key.
    pub key: String,
    /// Its settings.
    pub settings: Settings,
    /// How many secrets it holds (two during a rotation).
    pub secrets: usize,
    /// When it was disabled (a webhook answering 410), if it was.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why.
    pub disabled_reason: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

type Row = (
    String,
    Json<Settings>,
    Vec<String>,
    Option<DateTime<Utc>>,
    Option<String>,
    DateTime<Utc>,
);

fn channel(r: Row) -> (ChannelRow, Vec<String>) {
    let (key, settings, secrets, disabled_at, disabled_reason, updated_at) = r;
    (
        ChannelRow {
            key,
            settings: settings.0,
            secrets: secrets.len(),
            disabled_at,
            disabled_reason,
            updated_at,
        },
        secrets,
    )
}

const COLUMNS: &str = "key, settings, secrets, disabled_at, disabled_reason, updated_at";

/// Creates or replaces channel `key`; `secrets` `Some` replaces its secrets (newest first),
/// `None` keeps them. Saving enables a disabled channel again.
pub async fn put(
    conn: &mut PgConnection,
    tenant: &TenantId,
    key: &str,
    settings: &Settings,
    secrets: Option<&[String]>,
    by: &str,
) -> Result<ChannelRow, sqlx::Error> {
    let sql = format!(
        "INSERT INTO channels AS c (tenant_id, key, kind, settings, secrets, updated_by)
         VALUES ($1, $2, $3, $4, COALESCE($5, '{{}}'::text[]), $6)
         ON CONFLICT (tenant_id, key) DO UPDATE SET kind = EXCLUDED.kind,
             settings = EXCLUDED.settings, secrets = COALESCE($5, c.secrets),
             disabled_at = NULL, disabled_reason = NULL, updated_at = now(),
             updated_by = EXCLUDED.updated_by
         RETURNING {COLUMNS}"
    );
    let r: Row = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(key)
        .bind(settings.kind())
        .bind(Json(settings))
        .bind(secrets)
        .bind(by)
        .fetch_one(conn)
        .await?;
    Ok(channel(r).0)
}

/// Channel `key` with its secrets, if any.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<(ChannelRow, Vec<String>)>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM channels WHERE tenant_id = $1 AND key = $2");
    let r: Option<Row> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(key)
        .fetch_optional(conn)
        .await?;
    Ok(r.map(channel))
}

/// The tenant's first enabled channel of `kind` (the sender of email, the SMS provider).
pub async fn of_kind(
    conn: &mut PgConnection,
    tenant: &TenantId,
    kind: &str,
) -> Result<Option<(ChannelRow, Vec<String>)>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM channels WHERE tenant_id = $1 AND kind = $2 AND disabled_at IS NULL
         ORDER BY key LIMIT 1"
    );
    let r: Option<Row> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(kind)
        .fetch_optional(conn)
        .await?;
    Ok(r.map(channel))
}

/// Every channel of the tenant, by key.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<ChannelRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM channels WHERE tenant_id = $1 ORDER BY key");
    let rows: Vec<Row> = sqlx::query_as(&sql).bind(tenant).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|r| channel(r).0).collect())
}

/// Disables the channel with a reason (a webhook endpoint answered 410 Gone).
pub async fn disable(
    conn: &mut PgConnection,
    tenant: &TenantId,
    key: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE channels SET disabled_at = now(), disabled_reason = $3
         WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant)
    .bind(key)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}
