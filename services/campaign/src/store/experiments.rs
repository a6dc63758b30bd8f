//! `experiments` and `experiment_exposures`: definitions (checked by
//! `domain::experiments::definition` before they reach this module) with their lifecycle, each
//! exposed customer's arm, and the conversions and revenue of goal events inside the window.

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::experiments::definition::{ExperimentSpec, ExperimentStatus, Subject};
use crate::domain::experiments::results::Counts;

/// An experiment as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExperimentRow {
    /// Its id (also the salt of its assignment).
    pub id: Uuid,
    /// Where it is in its life.
    pub status: ExperimentStatus,
    /// Its definition.
    pub definition: ExperimentSpec,
    /// One more on every change.
    pub version: i32,
    /// When it started running.
    pub started_at: Option<DateTime<Utc>>,
    /// When it stopped.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Who made it.
    pub updated_by: String,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentStoreError {
    /// No such experiment for this tenant.
    #[error("no such experiment")]
    NotFound,
    /// The lifecycle does not allow it.
    #[error("{0}")]
    NotAllowed(&'static str),
    /// Another experiment runs on the placement.
    #[error("another experiment is running on this placement")]
    PlacementBusy,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

type Row = (
    Uuid,
    String,
    Json<ExperimentSpec>,
    i32,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    String,
);

const COLUMNS: &str =
    "id, status, definition, version, started_at, stopped_at, updated_at, updated_by";

fn row(r: Row) -> ExperimentRow {
    let (id, status, Json(definition), version, started_at, stopped_at, updated_at, updated_by) = r;
    ExperimentRow {
        id,
        status: ExperimentStatus::parse(&status).unwrap_or(ExperimentStatus::Draft),
        definition,
        version,
        started_at,
        stopped_at,
        updated_at,
        updated_by,
    }
}

fn placement(spec: &ExperimentSpec) -> Option<&str> {
    match &spec.subject {
        Subject::Offers { placement } => Some(placement),
        Subject::Message | Subject::Journey => None,
    }
}

/// Adds a draft.
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    spec: &ExperimentSpec,
    actor: &str,
) -> Result<ExperimentRow, ExperimentStoreError> {
    let r: Row = sqlx::query_as(&format!(
        "INSERT INTO experiments (tenant_id, id, name, definition, placement, goal_event, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(spec.name.trim())
    .bind(Json(spec))
    .bind(placement(spec))
    .bind(&spec.goal.event)
    .bind(actor)
    .fetch_one(conn)
    .await?;
    Ok(row(r))
}

/// Replaces a draft's definition.
pub async fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    spec: &ExperimentSpec,
    actor: &str,
) -> Result<ExperimentRow, ExperimentStoreError> {
    let current = get(&mut *conn, tenant, id)
        .await?
        .ok_or(ExperimentStoreError::NotFound)?;
    if current.status != ExperimentStatus::Draft {
        return Err(ExperimentStoreError::NotAllowed(
            "only a draft can be edited: a running or stopped experiment keeps the plan its results are read against",
        ));
    }
    let r: Row = sqlx::query_as(&format!(
        "UPDATE experiments SET name = $3, definition = $4, placement = $5, goal_event = $6,
             updated_by = $7, version = version + 1, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND status = 'draft' RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(spec.name.trim())
    .bind(Json(spec))
    .bind(placement(spec))
    .bind(&spec.goal.event)
    .bind(actor)
    .fetch_optional(conn)
    .await?
    .ok_or(ExperimentStoreError::NotAllowed(
        "only a draft can be edited",
    ))?;
    Ok(row(r))
}

/// Starts a draft, or stops a running experiment.
pub async fn transition(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    to: ExperimentStatus,
    actor: &str,
) -> Result<ExperimentRow, ExperimentStoreError> {
    let (from, stamp, refusal) = match to {
        ExperimentStatus::Running => (
            "draft",
            "started_at",
            "only a draft can be started (a stopped experiment stays stopped: start a copy)",
        ),
        ExperimentStatus::Stopped => (
            "running",
            "stopped_at",
            "only a running experiment can be stopped",
        ),
        ExperimentStatus::Draft => {
            return Err(ExperimentStoreError::NotAllowed(
                "an experiment never returns to draft",
            ))
        }
    };
    if get(&mut *conn, tenant, id).await?.is_none() {
        return Err(ExperimentStoreError::NotFound);
    }
    let r: Option<Row> = sqlx::query_as(&format!(
        "UPDATE experiments SET status = $3, {stamp} = now(), updated_by = $5,
             version = version + 1, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND status = $4 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(to.as_str())
    .bind(from)
    .bind(actor)
    .fetch_optional(conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("experiments_running_placement") => {
            ExperimentStoreError::PlacementBusy
        }
        _ => ExperimentStoreError::Db(e),
    })?;
    r.map(row).ok_or(ExperimentStoreError::NotAllowed(refusal))
}

/// One experiment.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<ExperimentRow>, sqlx::Error> {
    let r: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM experiments WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(r.map(row))
}

/// The tenant's experiments, newest first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<ExperimentRow>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM experiments WHERE tenant_id = $1 ORDER BY created_at DESC, id"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(row).collect())
}

/// The tenant's running offers experiments, by placement.
pub async fn running_on_placements(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<(Uuid, ExperimentSpec)>, sqlx::Error> {
    let rows: Vec<(Uuid, Json<ExperimentSpec>)> = sqlx::query_as(
        "SELECT id, definition FROM experiments
         WHERE tenant_id = $1 AND status = 'running' AND placement IS NOT NULL",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id, d)| (id, d.0)).collect())
}

/// Records the customer's exposure in `arm` (`None`: the holdout), once: the first exposure
/// stays. Returns the arm on record (the first one).
pub async fn expose(
    conn: &mut PgConnection,
    tenant: &TenantId,
    experiment: Uuid,
    customer: Uuid,
    arm: Option<usize>,
    at: DateTime<Utc>,
) -> Result<(bool, Option<usize>), sqlx::Error> {
    let index = arm.map_or(-1, |a| i32::try_from(a).unwrap_or(i32::MAX));
    let inserted = sqlx::query(
        "INSERT INTO experiment_exposures (tenant_id, experiment_id, customer_id, arm, exposed_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(experiment)
    .bind(customer)
    .bind(index)
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    let (on_record,): (i32,) = sqlx::query_as(
        "SELECT arm FROM experiment_exposures
         WHERE tenant_id = $1 AND experiment_id = $2 AND customer_id = $3",
    )
    .bind(tenant)
    .bind(experiment)
    .bind(customer)
    .fetch_one(conn)
    .await?;
    Ok((inserted, usize::try_from(on_record).ok()))
}

/// Counts a goal event of `customer` named `name` at `at` toward every experiment the customer
/// was exposed to whose goal it is, inside its window; the revenue is the event's numeric
/// property the goal names. The consumer applies each event once.
pub async fn record_goal(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    name: &str,
    properties: &Map<String, Value>,
    at: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE experiment_exposures x
         SET converted_at = coalesce(x.converted_at, $4),
             revenue = x.revenue + coalesce(
                 CASE WHEN jsonb_typeof($5::jsonb -> (e.definition -> 'goal' ->> 'revenue_property')) = 'number'
                      THEN ($5::jsonb ->> (e.definition -> 'goal' ->> 'revenue_property'))::float8 END, 0)
         FROM experiments e
         WHERE x.tenant_id = $1 AND x.customer_id = $2
           AND e.tenant_id = $1 AND e.id = x.experiment_id AND e.goal_event = $3
           AND $4 >= x.exposed_at
           AND $4 < x.exposed_at + make_interval(days => (e.definition -> 'goal' ->> 'window_days')::int)",
    )
    .bind(tenant)
    .bind(customer)
    .bind(name)
    .bind(at)
    .bind(Json(properties))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Counts per arm index (`-1`: the holdout).
pub async fn counts(
    conn: &mut PgConnection,
    tenant: &TenantId,
    experiment: Uuid,
) -> Result<Vec<(i32, Counts)>, sqlx::Error> {
    let rows: Vec<(i32, i64, i64, f64, f64)> = sqlx::query_as(
        "SELECT arm, count(*), count(converted_at), coalesce(sum(revenue), 0),
             coalesce(sum(revenue * revenue), 0)
         FROM experiment_exposures WHERE tenant_id = $1 AND experiment_id = $2 GROUP BY arm",
    )
    .bind(tenant)
    .bind(experiment)
    .fetch_all(conn)
    .await?;
    let n = |x: i64| u64::try_from(x).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|(arm, customers, converted, revenue, squares)| {
            (
                arm,
                Counts {
                    customers: n(customers),
                    converted: n(converted),
                    revenue,
                    revenue_squares: squares,
                },
            )
        })
        .collect())
}

/// Follows a merge: the person counts once, in the survivor's exposure; the merged id's
/// exposures go (the survivor's id decides its arm, so a later exposure of the survivor lands
/// in the survivor's arm, never the merged id's).
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    merged: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM experiment_exposures WHERE tenant_id = $1 AND customer_id = $2")
        .bind(tenant)
        .bind(merged)
        .execute(conn)
        .await?;
    Ok(())
}

/// Follows an erasure.
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM experiment_exposures WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}
