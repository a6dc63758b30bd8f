//! Experiments: create and edit drafts (checked, errors with the JSON pointer), list, read,
//! start, stop, a customer's assignment (recorded as an exposure while running) and the
//! results. Starting or stopping an offers experiment drops this replica's cached catalogue.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use crm_service::{Code, Problem, TenantAnd, TenantPath};
use uuid::Uuid;

use super::actor;
use super::bodies::{AssignmentAnswer, AssignmentRequest, ExperimentList, ExperimentResults};
use super::offers::{at_path, json_of};
use crate::domain::experiments::definition::{self, ExperimentSpec, ExperimentStatus};
use crate::domain::experiments::results::{results as compute, Counts};
use crate::store::experiments::{self, ExperimentStoreError};
use crate::store::offers;

pub(crate) fn routes() -> Router<super::ApiState> {
    let base = "/internal/v1/tenants/{tenant}/experiments";
    Router::new()
        .route(base, get(list).post(create))
        .route(&format!("{base}/{{id}}"), get(read).put(update))
        .route(&format!("{base}/{{id}}/start"), post(start))
        .route(&format!("{base}/{{id}}/stop"), post(stop))
        .route(&format!("{base}/{{id}}/results"), get(results))
        .route(&format!("{base}/{{id}}/assignments"), post(assignment))
}

fn spec_of(body: &[u8]) -> Result<ExperimentSpec, Problem> {
    definition::parse(json_of(body)?)
        .map_err(|e| at_path(Code::InvalidExperiment, &e.path, &e.message))
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::ExperimentNotFound,
        "no experiment with this id for this tenant",
    )
}

fn store_problem(e: ExperimentStoreError) -> Problem {
    match e {
        ExperimentStoreError::NotFound => not_found(),
        ExperimentStoreError::NotAllowed(why) => {
            Problem::new(StatusCode::CONFLICT, Code::InvalidState, why)
        }
        ExperimentStoreError::PlacementBusy => Problem::new(
            StatusCode::CONFLICT,
            Code::InvalidState,
            "another experiment is running on this placement: stop it first",
        ),
        ExperimentStoreError::Db(e) => e.into(),
    }
}

async fn list(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<ExperimentList>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let items = experiments::list(&mut conn, &tenant).await?;
    Ok(Json(ExperimentList { items }))
}

async fn create(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let spec = spec_of(&body)?;
    let mut conn = s.pool.acquire().await?;
    let row = experiments::create(&mut conn, &tenant, Uuid::now_v7(), &spec, &actor(&headers))
        .await
        .map_err(store_problem)?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

async fn read(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Response, Problem> {
    let mut conn = s.pool.acquire().await?;
    let row = experiments::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(row).into_response())
}

async fn update(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let spec = spec_of(&body)?;
    let mut conn = s.pool.acquire().await?;
    let row = experiments::update(&mut conn, &tenant, id, &spec, &actor(&headers))
        .await
        .map_err(store_problem)?;
    Ok(Json(row).into_response())
}

async fn start(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    move_to(s, tenant, id, ExperimentStatus::Running, &actor(&headers)).await
}

async fn stop(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    move_to(s, tenant, id, ExperimentStatus::Stopped, &actor(&headers)).await
}

async fn move_to(
    s: super::ApiState,
    tenant: crm_envelope::TenantId,
    id: Uuid,
    to: ExperimentStatus,
    actor: &str,
) -> Result<Response, Problem> {
    let mut conn = s.pool.acquire().await?;
    let row = experiments::transition(&mut conn, &tenant, id, to, actor)
        .await
        .map_err(store_problem)?;
    s.catalogue.invalidate(&tenant);
    Ok(Json(row).into_response())
}

async fn results(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<ExperimentResults>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let row = experiments::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    let counted = experiments::counts(&mut conn, &tenant, id).await?;
    let arms: Vec<Counts> = (0..row.definition.arms.len())
        .map(|i| {
            counted
                .iter()
                .find(|(arm, _)| usize::try_from(*arm).ok() == Some(i))
                .map(|(_, c)| *c)
                .unwrap_or_default()
        })
        .collect();
    let holdout = counted
        .iter()
        .find(|(arm, _)| *arm < 0)
        .map(|(_, c)| *c)
        .unwrap_or_default();
    Ok(Json(ExperimentResults {
        experiment_id: id,
        status: row.status,
        results: compute(&row.definition, &arms, holdout),
    }))
}

async fn assignment(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let request: AssignmentRequest = serde_json::from_value(json_of(&body)?).map_err(|e| {
        at_path(
            Code::InvalidBody,
            "/customer",
            &format!("{{\"customer\": {{\"id\"|\"user_id\"|\"anonymous_id\"|\"email\": …}}}}: {e}"),
        )
    })?;
    if crate::domain::offers::catalogue::has_nul(&request) {
        return Err(at_path(Code::InvalidBody, "/customer", "no NUL characters"));
    }
    let mut tx = s.pool.begin().await?;
    let row = experiments::get(&mut tx, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    if row.status != ExperimentStatus::Running {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            Code::InvalidState,
            "customers are assigned only while the experiment runs",
        ));
    }
    let unknown = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            Code::CustomerNotFound,
            "campaign knows no customer of this tenant by that id or identifier",
        )
    };
    let (mut customer, _) = offers::profile(&mut tx, &tenant, &request.customer)
        .await?
        .ok_or_else(unknown)?;
    // Held against a merge committing meanwhile, which would leave the exposure under the
    // merged id; if it went since it was read, the survivor is read again.
    if !offers::hold_contact(&mut tx, &tenant, customer).await? {
        customer = offers::profile(&mut tx, &tenant, &request.customer)
            .await?
            .ok_or_else(unknown)?
            .0;
        if !offers::hold_contact(&mut tx, &tenant, customer).await? {
            return Err(unknown());
        }
    }
    let arm = definition::place(id, &row.definition, customer);
    let (first, on_record) =
        experiments::expose(&mut tx, &tenant, id, customer, arm, Utc::now()).await?;
    tx.commit().await?;
    let arm = on_record.and_then(|i| row.definition.arms.get(i));
    Ok((
        if first {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(AssignmentAnswer {
            experiment_id: id,
            customer_id: customer,
            holdout: arm.is_none(),
            arm: arm.map(|a| a.key.clone()),
            variant: arm.map(|a| a.variant.clone()).unwrap_or_default(),
            first_exposure: first,
        }),
    )
        .into_response())
}
