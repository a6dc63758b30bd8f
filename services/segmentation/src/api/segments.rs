//! Segments: create, read, update, delete, versions, preview, members, recompute.

use crm_service::Code;
use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use crm_kafka::outbox::enqueue_all;
use crm_service::jobs::JobQueued;
use crm_service::Problem;
use crm_service::{TenantAnd, TenantPath};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::bodies::{
    Member, Members, NewSegment, PreviewRequest, SegmentList, SegmentPatch, SegmentSaved,
    SegmentSized, SegmentVersions,
};
use super::{actor, json_body, page_size, ApiState};
use crate::engine::apply::membership_message;
use crate::recompute::{self, preview as run_preview};
use crate::store::segments::{self, SaveError};

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/internal/v1/tenants/{tenant}/segments",
            get(list).post(create),
        )
        .route(
            "/internal/v1/tenants/{tenant}/segments/preview",
            post(preview),
        )
        .route(
            "/internal/v1/tenants/{tenant}/segments/{id}",
            get(read).put(update).delete(delete),
        )
        .route(
            "/internal/v1/tenants/{tenant}/segments/{id}/versions",
            get(versions),
        )
        .route(
            "/internal/v1/tenants/{tenant}/segments/{id}/members",
            get(members),
        )
        .route(
            "/internal/v1/tenants/{tenant}/segments/{id}/recompute",
            post(recompute_one),
        )
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::SegmentNotFound,
        "no segment with this id for this tenant",
    )
}

fn save_problem(e: SaveError) -> Problem {
    match e {
        SaveError::Invalid(r) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidRule,
            format!("rule{}: {}", r.path, r.message),
        )
        .with("path", json!(r.path)),
        SaveError::Cycle(path) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::SegmentCycle,
            "segments would refer to each other in a loop",
        )
        .with("cycle", json!(path)),
        SaveError::UnknownReference(ids) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::UnknownSegment,
            "the rule refers to segments that do not exist",
        )
        .with("segments", json!(ids)),
        SaveError::NameTaken(name) => Problem::new(
            StatusCode::CONFLICT,
            Code::SegmentNameTaken,
            format!("a segment named {name:?} exists; choose another name"),
        ),
        SaveError::NotFound => not_found(),
        SaveError::InUse(ids) => Problem::new(
            StatusCode::CONFLICT,
            Code::SegmentInUse,
            "other segments refer to this one; change them first",
        )
        .with("segments", json!(ids)),
        SaveError::BadField(m) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidSegment, m)
        }
        SaveError::Db(e) => e.into(),
    }
}

async fn create(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<SegmentSaved>), Problem> {
    let new: NewSegment = json_body(&body)?;
    let mut tx = state.pool.begin().await?;
    let row = segments::create(
        &mut tx,
        &tenant,
        &new.name,
        &new.description,
        new.rule,
        &actor(&headers),
    )
    .await
    .map_err(save_problem)?;
    let job = recompute::enqueue(&mut tx, &tenant, Some(BTreeSet::from([row.id]))).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(SegmentSaved {
            segment: row,
            computing: true,
            job: Some(JobQueued::new("segmentation", job)),
        }),
    ))
}

async fn list(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<SegmentList>, Problem> {
    let mut conn = state.pool.acquire().await?;
    let rows = segments::list(&mut conn, &tenant).await?;
    let counts: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT segment_id, count(*) FROM memberships WHERE tenant_id = $1 GROUP BY segment_id",
    )
    .bind(tenant.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(|segment| {
            let size = counts
                .iter()
                .find(|(id, _)| *id == segment.id)
                .map_or(0, |(_, n)| *n);
            SegmentSized { segment, size }
        })
        .collect();
    Ok(Json(SegmentList { items }))
}

async fn read(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<SegmentSized>, Problem> {
    let mut conn = state.pool.acquire().await?;
    let row = segments::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    let (size,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM memberships WHERE tenant_id = $1 AND segment_id = $2")
            .bind(tenant.as_str())
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(Json(SegmentSized { segment: row, size }))
}

async fn update(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SegmentSaved>, Problem> {
    let patch: SegmentPatch = json_body(&body)?;
    let rule_changed = patch.rule.is_some();
    let mut tx = state.pool.begin().await?;
    let row = segments::update(
        &mut tx,
        &tenant,
        id,
        patch.name.as_deref(),
        patch.description.as_deref(),
        patch.rule,
        &actor(&headers),
    )
    .await
    .map_err(save_problem)?;
    let job = if rule_changed {
        let id = recompute::enqueue(&mut tx, &tenant, Some(BTreeSet::from([id]))).await?;
        Some(JobQueued::new("segmentation", id))
    } else {
        None
    };
    tx.commit().await?;
    Ok(Json(SegmentSaved {
        segment: row,
        computing: rule_changed,
        job,
    }))
}

async fn delete(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let mut tx = state.pool.begin().await?;
    let model = state.catalog.get(&mut tx, &tenant).await?;
    let (_, members) = segments::delete(&mut tx, &tenant, id, &actor(&headers))
        .await
        .map_err(save_problem)?;
    let exits = members
        .iter()
        .map(|c| membership_message(&tenant, &model, *c, id, false, "segment_deleted"))
        .collect::<Result<Vec<_>, _>>()?;
    enqueue_all(&mut tx, &exits).await?;
    tx.commit().await?;
    state.relay.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

async fn versions(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<SegmentVersions>, Problem> {
    let mut conn = state.pool.acquire().await?;
    let rows = segments::versions(&mut conn, &tenant, id).await?;
    if rows.is_empty() {
        return Err(not_found());
    }
    Ok(Json(SegmentVersions {
        segment_id: id,
        versions: rows,
    }))
}

async fn preview(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
    body: Bytes,
) -> Result<Json<crate::recompute::Preview>, Problem> {
    let req: PreviewRequest = json_body(&body)?;
    let sample = req.sample.unwrap_or(10).min(100);
    let mut conn = state.pool.acquire().await?;
    // Checked as when saving (references included), under a fresh id.
    let rule = segments::check_rule(&mut conn, &tenant, Uuid::now_v7(), req.rule)
        .await
        .map_err(save_problem)?;
    drop(conn);
    let p = run_preview(
        &state.pool,
        &state.catalog,
        &tenant,
        &rule,
        sample,
        Utc::now(),
    )
    .await?;
    Ok(Json(p))
}

#[derive(Deserialize)]
struct MembersQuery {
    limit: Option<u32>,
    /// The last customer id of the previous page.
    after: Option<Uuid>,
}

async fn members(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    Query(q): Query<MembersQuery>,
) -> Result<Json<Members>, Problem> {
    let limit = page_size(q.limit)?;
    let mut conn = state.pool.acquire().await?;
    segments::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT customer_id, entered_at FROM memberships WHERE tenant_id = $1 AND segment_id = $2 AND customer_id > $3
         ORDER BY customer_id LIMIT $4",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(q.after.unwrap_or_else(Uuid::nil))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|(c, _)| *c))
        .flatten();
    let items = rows
        .into_iter()
        .map(|(customer_id, entered_at)| Member {
            customer_id,
            entered_at,
        })
        .collect();
    Ok(Json(Members {
        segment_id: id,
        items,
        next,
    }))
}

/// Queues a recompute of the segment: 202 with the job to follow (its progress: customers done,
/// rate, time left; its result: what changed).
async fn recompute_one(
    State(state): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<
    (
        StatusCode,
        [(header::HeaderName, String); 1],
        Json<JobQueued>,
    ),
    Problem,
> {
    let mut tx = state.pool.begin().await?;
    segments::get(&mut tx, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    let job = recompute::enqueue(&mut tx, &tenant, Some(BTreeSet::from([id]))).await?;
    tx.commit().await?;
    let queued = JobQueued::new("segmentation", job);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, queued.url.clone())],
        Json(queued),
    ))
}
