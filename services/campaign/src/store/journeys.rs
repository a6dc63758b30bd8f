//! `journeys` and `journey_versions`: each journey's draft, its status, and every published
//! version frozen. Definitions are checked by the caller (`domain::journeys::parse`) before
//! they reach this module; status moves are checked by `domain::journeys::lifecycle`.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::journeys::lifecycle::{transition, Action, Status};

/// A journey as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct JourneyRow {
    /// Its id.
    pub id: Uuid,
    /// Its name (from the draft).
    pub name: String,
    /// Its status.
    pub status: Status,
    /// The definition being edited.
    #[schema(value_type = Object)]
    pub draft: Value,
    /// The version the draft becomes when published.
    pub draft_version: i32,
    /// The live version, if it was ever published.
    pub published_version: Option<i32>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Who made it.
    pub updated_by: String,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum JourneyStoreError {
    /// No such journey for this tenant.
    #[error("no such journey")]
    NotFound,
    /// The lifecycle does not allow it.
    #[error("{0}")]
    NotAllowed(&'static str),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

type Row = (
    Uuid,
    String,
    String,
    sqlx::types::Json<Value>,
    i32,
    Option<i32>,
    DateTime<Utc>,
    String,
);

fn row(
    (id, name, status, draft, draft_version, published_version, updated_at, updated_by): Row,
) -> JourneyRow {
    JourneyRow {
        id,
        name,
        status: Status::parse(&status).unwrap_or(Status::Draft),
        draft: draft.0,
        draft_version,
        published_version,
        updated_at,
        updated_by,
    }
}

const COLUMNS: &str =
    "id, name, status, draft, draft_version, published_version, updated_at, updated_by";

/// Creates a journey with `definition` as its draft (version 1).
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    name: &str,
    definition: &Value,
    by: &str,
) -> Result<JourneyRow, JourneyStoreError> {
    let r: Row = sqlx::query_as(&format!(
        "INSERT INTO journeys (tenant_id, id, name, draft, updated_by) VALUES ($1, $2, $3, $4, $5)
         RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(sqlx::types::Json(definition))
    .bind(by)
    .fetch_one(conn)
    .await?;
    Ok(row(r))
}

/// The journey, if the tenant has it.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<JourneyRow>, sqlx::Error> {
    let r: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM journeys WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(r.map(row))
}

/// The tenant's journeys, newest first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<JourneyRow>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM journeys WHERE tenant_id = $1 ORDER BY id DESC LIMIT 500"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(row).collect())
}

/// Replaces the draft (an archived journey cannot change).
pub async fn update_draft(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    name: &str,
    definition: &Value,
    by: &str,
) -> Result<JourneyRow, JourneyStoreError> {
    let current = lock(conn, tenant, id).await?;
    if current == Status::Archived {
        return Err(JourneyStoreError::NotAllowed(
            "the journey is archived; copy it to change it",
        ));
    }
    let r: Row = sqlx::query_as(&format!(
        "UPDATE journeys SET name = $3, draft = $4, updated_at = now(), updated_by = $5
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(name)
    .bind(sqlx::types::Json(definition))
    .bind(by)
    .fetch_one(conn)
    .await?;
    Ok(row(r))
}

/// Applies a lifecycle action; publishing freezes the draft as version `draft_version`.
pub async fn act(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    action: Action,
    by: &str,
) -> Result<JourneyRow, JourneyStoreError> {
    let current = lock(conn, tenant, id).await?;
    let next = transition(current, action).map_err(JourneyStoreError::NotAllowed)?;
    if action == Action::Publish {
        sqlx::query(
            "INSERT INTO journey_versions (tenant_id, journey_id, version, definition, published_by)
             SELECT tenant_id, id, draft_version, draft, $3 FROM journeys WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(by)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE journeys SET published_version = draft_version, draft_version = draft_version + 1
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    let r: Row = sqlx::query_as(&format!(
        "UPDATE journeys SET status = $3, updated_at = now(), updated_by = $4
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(next.as_str())
    .bind(by)
    .fetch_one(conn)
    .await?;
    Ok(row(r))
}

/// A published version's definition.
pub async fn version(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    version: i32,
) -> Result<Option<Value>, sqlx::Error> {
    let r: Option<(sqlx::types::Json<Value>,)> = sqlx::query_as(
        "SELECT definition FROM journey_versions WHERE tenant_id = $1 AND journey_id = $2 AND version = $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    Ok(r.map(|(d,)| d.0))
}

/// Every published version of the journey, oldest first.
pub async fn versions(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Vec<(i32, Value)>, sqlx::Error> {
    let rows: Vec<(i32, sqlx::types::Json<Value>)> = sqlx::query_as(
        "SELECT version, definition FROM journey_versions
         WHERE tenant_id = $1 AND journey_id = $2 ORDER BY version",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(v, d)| (v, d.0)).collect())
}

/// The journey's status, its row locked for this transaction.
async fn lock(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Status, JourneyStoreError> {
    let r: Option<(String,)> =
        sqlx::query_as("SELECT status FROM journeys WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
            .bind(tenant)
            .bind(id)
            .fetch_optional(conn)
            .await?;
    let (status,) = r.ok_or(JourneyStoreError::NotFound)?;
    Ok(Status::parse(&status).unwrap_or(Status::Draft))
}

/// The tenant's published journeys: (id, live version). Definitions are read by version
/// (`version`), which callers cache: a published version never changes.
pub async fn published(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<(Uuid, i32)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, published_version FROM journeys
         WHERE tenant_id = $1 AND status = 'published' AND published_version IS NOT NULL
         ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await
}

/// The journey's status (`published`, `paused`, …), if it exists.
pub async fn status(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<Status>, sqlx::Error> {
    let r: Option<(String,)> =
        sqlx::query_as("SELECT status FROM journeys WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(r.and_then(|(s,)| Status::parse(&s)))
}

/// A timed journey: (tenant, id, live version, definition, when the scheduler last looked at
/// that version).
pub type Timed = (TenantId, Uuid, i32, Value, Option<DateTime<Utc>>);

type TimedRow = (
    TenantId,
    Uuid,
    i32,
    sqlx::types::Json<Value>,
    Option<DateTime<Utc>>,
);

/// Published journeys, over every tenant, whose trigger is a schedule or a date trait.
pub async fn timed(conn: &mut PgConnection) -> Result<Vec<Timed>, sqlx::Error> {
    let rows: Vec<TimedRow> =
        sqlx::query_as(
            "SELECT j.tenant_id, j.id, v.version, v.definition, r.last_run_at FROM journeys j
             JOIN journey_versions v ON v.tenant_id = j.tenant_id AND v.journey_id = j.id
                 AND v.version = j.published_version
             LEFT JOIN journey_schedule_runs r ON r.tenant_id = j.tenant_id
                 AND r.journey_id = j.id AND r.version = v.version
             WHERE j.status = 'published'
               AND (v.definition -> 'trigger' ? 'schedule' OR v.definition -> 'trigger' ? 'date_trait')
             ORDER BY j.tenant_id, j.id",
        )
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(t, id, v, d, at)| (t, id, v, d.0, at))
        .collect())
}

/// Records that the scheduler looked at version `version` of the journey up to `at`.
pub async fn ran(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    version: i32,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO journey_schedule_runs (tenant_id, journey_id, version, last_run_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, journey_id) DO UPDATE SET version = EXCLUDED.version,
             last_run_at = EXCLUDED.last_run_at",
    )
    .bind(tenant)
    .bind(id)
    .bind(version)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}
