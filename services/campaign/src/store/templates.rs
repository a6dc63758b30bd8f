//! `templates`: each tenant's message templates by key, checked by the caller
//! (`domain::templates::check`) before they reach this module.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::domain::templates::Parts;

/// A template as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Its key (what `send` nodes name).
    pub key: String,
    /// `email`, `sms` or `push`.
    pub channel: String,
    /// Its type, for frequency caps (`marketing`, `newsletter`, …).
    pub message_type: String,
    /// The consent purpose it needs (`marketing`).
    pub purpose: String,
    /// Subject, HTML and text.
    #[serde(flatten)]
    pub parts: Parts,
    /// Bumped on each change.
    pub version: i32,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i32,
    DateTime<Utc>,
);

fn template(r: Row) -> Template {
    let (key, channel, message_type, purpose, subject, html, text, version, updated_at) = r;
    Template {
        key,
        channel,
        message_type,
        purpose,
        parts: Parts {
            subject,
            html,
            text,
        },
        version,
        updated_at,
    }
}

const COLUMNS: &str =
    "key, channel, message_type, purpose, subject, html, text, version, updated_at";

/// Creates or replaces the template `t.key` (its version goes up by one).
pub async fn put(
    conn: &mut PgConnection,
    tenant: &TenantId,
    t: &Template,
    by: &str,
) -> Result<Template, sqlx::Error> {
    let sql = format!(
        "INSERT INTO templates AS t (tenant_id, key, channel, message_type, purpose, subject, html,
             text, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (tenant_id, key) DO UPDATE SET channel = EXCLUDED.channel,
             message_type = EXCLUDED.message_type, purpose = EXCLUDED.purpose,
             subject = EXCLUDED.subject, html = EXCLUDED.html, text = EXCLUDED.text,
             version = t.version + 1, updated_at = now(), updated_by = EXCLUDED.updated_by
         RETURNING {COLUMNS}"
    );
    let r: Row = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(&t.key)
        .bind(&t.channel)
        .bind(&t.message_type)
        .bind(&t.purpose)
        .bind(&t.parts.subject)
        .bind(&t.parts.html)
        .bind(&t.parts.text)
        .bind(by)
        .fetch_one(conn)
        .await?;
    Ok(template(r))
}

/// The template `key`, if any.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<Template>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM templates WHERE tenant_id = $1 AND key = $2");
    let r: Option<Row> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(key)
        .fetch_optional(conn)
        .await?;
    Ok(r.map(template))
}

/// Every template of the tenant, by key.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<Template>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM templates WHERE tenant_id = $1 ORDER BY key");
    let rows: Vec<Row> = sqlx::query_as(&sql).bind(tenant).fetch_all(conn).await?;
    Ok(rows.into_iter().map(template).collect())
}

/// Deletes the template; `false` when there was none.
pub async fn delete(
    conn: &mut PgConnection,
    tenant: &TenantId,
    key: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM templates WHERE tenant_id = $1 AND key = $2")
        .bind(tenant)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
