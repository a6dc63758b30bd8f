//! Tasks (create, list by owner, lead, opportunity and state, read, change or complete) and
//! the notes of leads and opportunities.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use crm_envelope::TenantId;
use crm_service::{Code, Problem, TenantAnd, TenantPath};
use serde::Deserialize;
use uuid::Uuid;

use super::actor;
use super::bodies::{NoteList, TaskList};
use super::offers::at_path;
use super::offers::parsed;
use super::pipeline::page_size;
use crate::pipeline::tasks::{self, NoteRequest, TaskError, TaskPatch, TaskRequest};
use crate::store::tasks::{self as store, TaskFilter};

pub(crate) fn routes() -> Router<super::ApiState> {
    let t = "/internal/v1/tenants/{tenant}";
    Router::new()
        .route(&format!("{t}/tasks"), get(list).post(create))
        .route(&format!("{t}/tasks/{{id}}"), get(read).patch(change))
        .route(
            &format!("{t}/leads/{{id}}/notes"),
            get(lead_notes).post(add_lead_note),
        )
        .route(
            &format!("{t}/opportunities/{{id}}/notes"),
            get(opportunity_notes).post(add_opportunity_note),
        )
}

fn problem(e: TaskError) -> Problem {
    match e {
        TaskError::Invalid(path, m) => at_path(Code::InvalidTask, path, &m),
        TaskError::NoTarget => Problem::new(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            "no lead or opportunity with this id for this tenant",
        ),
        TaskError::NotFound => Problem::new(
            StatusCode::NOT_FOUND,
            Code::TaskNotFound,
            "no task with this id for this tenant",
        ),
        TaskError::Db(e) => e.into(),
    }
}

async fn create(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let request: TaskRequest = parsed(&body, Code::InvalidTask)?;
    let mut conn = s.pool.acquire().await?;
    let task = tasks::create(&mut conn, &tenant, &request, Utc::now())
        .await
        .map_err(problem)?;
    Ok((StatusCode::CREATED, Json(task)).into_response())
}

#[derive(Debug, Deserialize)]
struct TaskQuery {
    owner: Option<String>,
    lead_id: Option<Uuid>,
    opportunity_id: Option<Uuid>,
    state: Option<String>,
    after: Option<Uuid>,
    limit: Option<i64>,
}

async fn list(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    Query(q): Query<TaskQuery>,
) -> Result<Json<TaskList>, Problem> {
    let limit = page_size(q.limit)?;
    if q.state
        .as_deref()
        .is_some_and(|v| !["open", "done", "overdue"].contains(&v))
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidField,
            "state is one of open, done, overdue",
        ));
    }
    let filter = TaskFilter {
        owner: q.owner.as_deref(),
        lead: q.lead_id,
        opportunity: q.opportunity_id,
        state: q.state.as_deref(),
    };
    let mut conn = s.pool.acquire().await?;
    let mut items = store::list(&mut conn, &tenant, &filter, q.after, limit + 1).await?;
    let has_more = items.len() > usize::try_from(limit).unwrap_or(0);
    items.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(Json(TaskList { items, has_more }))
}

async fn read(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Response, Problem> {
    let mut conn = s.pool.acquire().await?;
    let task = store::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(|| problem(TaskError::NotFound))?;
    Ok(Json(task).into_response())
}

async fn change(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let patch: TaskPatch = parsed(&body, Code::InvalidTask)?;
    let mut conn = s.pool.acquire().await?;
    let task = tasks::change(&mut conn, &tenant, id, &patch, Utc::now())
        .await
        .map_err(problem)?;
    Ok(Json(task).into_response())
}

async fn notes_of(
    s: &super::ApiState,
    tenant: &TenantId,
    target: (Option<Uuid>, Option<Uuid>),
) -> Result<Json<NoteList>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let items = tasks::notes(&mut conn, tenant, target.0, target.1)
        .await
        .map_err(problem)?;
    Ok(Json(NoteList { items }))
}

async fn add(
    s: &super::ApiState,
    tenant: &TenantId,
    target: (Option<Uuid>, Option<Uuid>),
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Problem> {
    let request: NoteRequest = parsed(body, Code::InvalidTask)?;
    let mut conn = s.pool.acquire().await?;
    let note = tasks::add_note(
        &mut conn,
        tenant,
        target.0,
        target.1,
        &request,
        &actor(headers),
        Utc::now(),
    )
    .await
    .map_err(problem)?;
    Ok((StatusCode::CREATED, Json(note)).into_response())
}

async fn lead_notes(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<NoteList>, Problem> {
    notes_of(&s, &tenant, (Some(id), None)).await
}

async fn add_lead_note(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    add(&s, &tenant, (Some(id), None), &headers, &body).await
}

async fn opportunity_notes(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<NoteList>, Problem> {
    notes_of(&s, &tenant, (None, Some(id))).await
}

async fn add_opportunity_note(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    add(&s, &tenant, (None, Some(id)), &headers, &body).await
}
