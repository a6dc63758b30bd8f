//! `pipelines`: each tenant's pipelines as data (definitions checked by
//! `domain::pipeline::pipelines` before they reach this module).

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::pipeline::pipelines::PipelineSpec;

/// A pipeline as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineRow {
    /// Its id.
    pub id: Uuid,
    /// Its definition.
    pub definition: PipelineSpec,
    /// 1 when created, one more on every change.
    pub version: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

type Row = (Uuid, Json<PipelineSpec>, i32, DateTime<Utc>, DateTime<Utc>);

fn row((id, Json(definition), version, created_at, updated_at): Row) -> PipelineRow {
    PipelineRow {
        id,
        definition,
        version,
        created_at,
        updated_at,
    }
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PipelineStoreError {
    /// No such pipeline.
    #[error("no such pipeline")]
    NotFound,
    /// Another pipeline has the name.
    #[error("name taken")]
    NameTaken,
    /// A stage that open opportunities stand in would disappear.
    #[error("stage {0} still has open opportunities")]
    StageInUse(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn taken(e: sqlx::Error) -> PipelineStoreError {
    match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("pipelines_name") => {
            PipelineStoreError::NameTaken
        }
        _ => PipelineStoreError::Db(e),
    }
}

/// Creates a pipeline.
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    spec: &PipelineSpec,
    actor: &str,
) -> Result<PipelineRow, PipelineStoreError> {
    let r: Row = sqlx::query_as(
        "INSERT INTO pipelines (tenant_id, id, name, definition, updated_by)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, definition, version, created_at, updated_at",
    )
    .bind(tenant)
    .bind(id)
    .bind(&spec.name)
    .bind(Json(spec))
    .bind(actor)
    .fetch_one(conn)
    .await
    .map_err(taken)?;
    Ok(row(r))
}

/// Replaces a pipeline's definition; refused while open opportunities stand in a stage the
/// new definition drops.
pub async fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    spec: &PipelineSpec,
    actor: &str,
) -> Result<PipelineRow, PipelineStoreError> {
    let keys: Vec<&str> = spec.stages.iter().map(|s| s.key.as_str()).collect();
    let orphan: Option<(String,)> = sqlx::query_as(
        "SELECT stage FROM opportunities WHERE tenant_id = $1 AND pipeline_id = $2
         AND status = 'open' AND NOT (stage = ANY($3)) LIMIT 1",
    )
    .bind(tenant)
    .bind(id)
    .bind(&keys)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((stage,)) = orphan {
        return Err(PipelineStoreError::StageInUse(stage));
    }
    let r: Option<Row> = sqlx::query_as(
        "UPDATE pipelines SET name = $3, definition = $4, version = version + 1,
             updated_at = now(), updated_by = $5
         WHERE tenant_id = $1 AND id = $2 AND NOT archived
         RETURNING id, definition, version, created_at, updated_at",
    )
    .bind(tenant)
    .bind(id)
    .bind(&spec.name)
    .bind(Json(spec))
    .bind(actor)
    .fetch_optional(conn)
    .await
    .map_err(taken)?;
    r.map(row).ok_or(PipelineStoreError::NotFound)
}

/// The pipeline, unless archived.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<PipelineRow>, sqlx::Error> {
    let r: Option<Row> = sqlx::query_as(
        "SELECT id, definition, version, created_at, updated_at FROM pipelines
         WHERE tenant_id = $1 AND id = $2 AND NOT archived",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(r.map(row))
}

/// The tenant's pipelines, oldest first (the first is where converted leads go by default).
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<PipelineRow>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, definition, version, created_at, updated_at FROM pipelines
         WHERE tenant_id = $1 AND NOT archived ORDER BY created_at, id",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(row).collect())
}
