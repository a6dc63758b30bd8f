//! Segment definitions: create, read, update, delete, with every version kept (who changed
//! what, when). Rules are checked when saved; references must name live segments and must not
//! close a cycle.

use crm_envelope::TenantId;
use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::model::find_cycle;
use crate::domain::rules::{from_value, Dependencies, Limits, Rule, RuleError};
use crate::store::settings;
use crate::store::settings::bump_generation;

/// A stored segment.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SegmentRow {
    /// Its id.
    pub id: Uuid,
    /// Its name, unique per tenant (case-insensitive).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its rule.
    #[schema(value_type = Object)]
    pub rule: Json<Value>,
    /// Its version, 1 when created.
    pub version: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it.
    pub updated_by: String,
}

/// One saved version.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct VersionRow {
    /// Version number.
    pub version: i32,
    /// `created`, `updated` or `deleted`.
    pub change: String,
    /// Name at that version.
    pub name: String,
    /// Description at that version.
    pub description: String,
    /// Rule at that version.
    #[schema(value_type = Object)]
    pub rule: Json<Value>,
    /// Who saved it.
    pub changed_by: String,
    /// When.
    pub changed_at: DateTime<Utc>,
}

/// Why a segment could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The rule is not valid.
    #[error("{0}")]
    Invalid(RuleError),
    /// Saving would make segments refer to each other in a loop.
    #[error("segment references would form a cycle: {0:?}")]
    Cycle(Vec<Uuid>),
    /// The rule refers to segments that do not exist.
    #[error("unknown segments referred to: {0:?}")]
    UnknownReference(Vec<Uuid>),
    /// Another live segment has that name.
    #[error("a segment named {0:?} exists")]
    NameTaken(String),
    /// No such segment.
    #[error("no such segment")]
    NotFound,
    /// Other segments refer to it.
    #[error("segments {0:?} refer to this segment")]
    InUse(Vec<Uuid>),
    /// Name or description out of bounds.
    #[error("{0}")]
    BadField(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The rule in `value`, checked against the tenant's limits and its other segments.
pub async fn check_rule(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    value: Value,
) -> Result<Rule, SaveError> {
    let settings = settings::load(conn, tenant).await?;
    let limits = Limits {
        retention_days: settings.retention_days,
        ..Limits::default()
    };
    let rule = from_value(value, &limits).map_err(SaveError::Invalid)?;
    crate::domain::rules::segment_nodes_only(&rule).map_err(SaveError::Invalid)?;
    let refs = Dependencies::of(&rule).segments;
    if refs.is_empty() {
        return Ok(rule);
    }
    let rows: Vec<(Uuid, Json<Value>)> =
        sqlx::query_as("SELECT id, rule FROM segments WHERE tenant_id = $1 AND deleted_at IS NULL")
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await?;
    let mut others: HashMap<Uuid, BTreeSet<Uuid>> = HashMap::new();
    for (other, r) in rows {
        if other != id {
            let deps = serde_json::from_value::<Rule>(r.0)
                .map(|r| Dependencies::of(&r).segments)
                .unwrap_or_default();
            others.insert(other, deps);
        }
    }
    let unknown: Vec<Uuid> = refs
        .iter()
        .copied()
        .filter(|r| *r != id && !others.contains_key(r))
        .collect();
    if !unknown.is_empty() {
        return Err(SaveError::UnknownReference(unknown));
    }
    find_cycle(id, &rule, &others).map_err(SaveError::Cycle)?;
    Ok(rule)
}

fn check_fields(name: &str, description: &str) -> Result<(), SaveError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(SaveError::BadField(
            "name must be 1 to 200 characters".into(),
        ));
    }
    if description.len() > 2000 {
        return Err(SaveError::BadField(
            "description must be at most 2000 characters".into(),
        ));
    }
    Ok(())
}

fn name_taken(e: sqlx::Error, name: &str) -> SaveError {
    match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("segments_name") => {
            SaveError::NameTaken(name.to_owned())
        }
        _ => SaveError::Db(e),
    }
}

async fn record_version(
    conn: &mut PgConnection,
    tenant: &TenantId,
    row: &SegmentRow,
    change: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO segment_versions (tenant_id, segment_id, version, change, name, description, rule, changed_by, changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant)
    .bind(row.id)
    .bind(row.version)
    .bind(change)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.rule)
    .bind(&row.updated_by)
    .bind(row.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

const COLUMNS: &str = "id, name, description, rule, version, created_at, updated_at, updated_by";

/// Creates a segment (version 1).
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    name: &str,
    description: &str,
    rule: Value,
    by: &str,
) -> Result<SegmentRow, SaveError> {
    check_fields(name, description)?;
    let id = Uuid::now_v7();
    let rule = check_rule(conn, tenant, id, rule).await?;
    let row: SegmentRow = sqlx::query_as(&format!(
        "INSERT INTO segments (tenant_id, id, name, description, rule, version, updated_by)
         VALUES ($1, $2, $3, $4, $5, 1, $6) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(name.trim())
    .bind(description)
    .bind(Json(&rule))
    .bind(by)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| name_taken(e, name))?;
    record_version(conn, tenant, &row, "created").await?;
    bump_generation(conn, tenant).await?;
    Ok(row)
}

/// A live segment.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<SegmentRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM segments WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The tenant's live segments by name.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<SegmentRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM segments WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY lower(name)"))
        .bind(tenant)
        .fetch_all(conn)
        .await
}

/// Changes a segment's name, description or rule (each optional); a new version.
pub async fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    name: Option<&str>,
    description: Option<&str>,
    rule: Option<Value>,
    by: &str,
) -> Result<SegmentRow, SaveError> {
    let current = sqlx::query_as::<_, SegmentRow>(&format!(
        "SELECT {COLUMNS} FROM segments WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(SaveError::NotFound)?;
    let name = name.unwrap_or(&current.name).trim().to_owned();
    let description = description.unwrap_or(&current.description).to_owned();
    check_fields(&name, &description)?;
    let rule = match rule {
        Some(v) => check_rule(conn, tenant, id, v).await?,
        None => serde_json::from_value(current.rule.0.clone()).map_err(|e| {
            SaveError::Invalid(RuleError {
                path: String::new(),
                message: e.to_string(),
            })
        })?,
    };
    let row: SegmentRow = sqlx::query_as(&format!(
        "UPDATE segments SET name = $3, description = $4, rule = $5, version = version + 1,
             updated_at = now(), updated_by = $6
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&name)
    .bind(&description)
    .bind(Json(&rule))
    .bind(by)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| name_taken(e, &name))?;
    record_version(conn, tenant, &row, "updated").await?;
    bump_generation(conn, tenant).await?;
    Ok(row)
}

/// Deletes a segment that no other refers to; returns the customers that were in it (their
/// memberships are removed; the caller publishes the exits).
pub async fn delete(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    by: &str,
) -> Result<(SegmentRow, Vec<Uuid>), SaveError> {
    let current = get(conn, tenant, id).await?.ok_or(SaveError::NotFound)?;
    let rows: Vec<(Uuid, Json<Value>)> = sqlx::query_as(
        "SELECT id, rule FROM segments WHERE tenant_id = $1 AND deleted_at IS NULL AND id <> $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let users: Vec<Uuid> = rows
        .into_iter()
        .filter(|(_, r)| {
            serde_json::from_value::<Rule>(r.0.clone())
                .is_ok_and(|r| Dependencies::of(&r).segments.contains(&id))
        })
        .map(|(other, _)| other)
        .collect();
    if !users.is_empty() {
        return Err(SaveError::InUse(users));
    }
    let row: SegmentRow = sqlx::query_as(&format!(
        "UPDATE segments SET deleted_at = now(), version = version + 1, updated_at = now(), updated_by = $3
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(by)
    .fetch_one(&mut *conn)
    .await?;
    record_version(conn, tenant, &row, "deleted").await?;
    let members: Vec<(Uuid,)> = sqlx::query_as(
        "DELETE FROM memberships WHERE tenant_id = $1 AND segment_id = $2 RETURNING customer_id",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    bump_generation(conn, tenant).await?;
    Ok((current, members.into_iter().map(|(c,)| c).collect()))
}

/// Every version of a segment (deleted ones too), newest first.
pub async fn versions(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Vec<VersionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT version, change, name, description, rule, changed_by, changed_at FROM segment_versions
         WHERE tenant_id = $1 AND segment_id = $2 ORDER BY version DESC",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(conn)
    .await
}
