//! The sales pipeline: leads (open, list, read with the priority explained and the history,
//! change, convert), an owner's work queue, the tenant's lead settings, pipelines and
//! opportunities (open, list, read with the stage history, change). Every change is one
//! transaction with what it announces on `crm.interactions.v1`; a won or lost opportunity
//! runs the journeys that start on it in the same transaction.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use crm_kafka::outbox;
use crm_service::{jobs, Code, Problem, TenantAnd, TenantPath};
use serde::Deserialize;
use uuid::Uuid;

use super::actor;
use super::bodies::{LeadDetail, LeadList, OpportunityDetail, OpportunityList, PipelineList};
use super::offers::{at_path, parsed};
use crate::domain::journeys::signal::Signal;
use crate::domain::pipeline::leads::{LeadSource, LeadStatus};
use crate::domain::pipeline::pipelines::PipelineSpec;
use crate::domain::pipeline::settings::LeadSettings;
use crate::pipeline::imports::{self, LeadImport};
use crate::pipeline::leads::{self, ConvertRequest, LeadError, LeadPatch, LeadRequest};
use crate::pipeline::opportunities::{
    self, OpportunityError, OpportunityPatch, OpportunityRequest,
};
use crate::store::leads::{self as lead_store, LeadFilter};
use crate::store::opportunities::{self as opportunity_store, OpportunityFilter};
use crate::store::pipelines::{self, PipelineStoreError};

pub(crate) fn routes() -> Router<super::ApiState> {
    let t = "/internal/v1/tenants/{tenant}";
    Router::new()
        .route(&format!("{t}/leads"), get(list_leads).post(open_lead))
        .route(
            &format!("{t}/leads/{{id}}"),
            get(read_lead).patch(change_lead),
        )
        .route(&format!("{t}/leads/{{id}}/convert"), post(convert_lead))
        .route(&format!("{t}/lead-imports"), post(import_leads))
        .route(&format!("{t}/jobs/{{id}}"), get(job))
        .route(&format!("{t}/lead-queue"), get(queue))
        .route(
            &format!("{t}/lead-settings"),
            get(read_settings).put(save_settings),
        )
        .route(
            &format!("{t}/pipelines"),
            get(list_pipelines).post(create_pipeline),
        )
        .route(
            &format!("{t}/pipelines/{{id}}"),
            get(read_pipeline).put(replace_pipeline),
        )
        .route(
            &format!("{t}/opportunities"),
            get(list_opportunities).post(open_opportunity),
        )
        .route(
            &format!("{t}/opportunities/{{id}}"),
            get(read_opportunity).patch(change_opportunity),
        )
}

const MAX_PAGE: i64 = 200;

pub(crate) fn page_size(limit: Option<i64>) -> Result<i64, Problem> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidLimit,
            format!("limit is 1 to {MAX_PAGE}"),
        )),
    }
}

fn lead_problem(e: LeadError) -> Problem {
    match e {
        LeadError::Invalid(path, m) => at_path(Code::InvalidLead, &path, &m),
        LeadError::NotFound => Problem::new(
            StatusCode::NOT_FOUND,
            Code::LeadNotFound,
            "no lead with this id for this tenant",
        ),
        LeadError::UnknownCustomer => unknown_customer(),
        LeadError::Move(m) => Problem::new(StatusCode::CONFLICT, Code::InvalidState, m.to_string()),
        LeadError::Convert(e) => opportunity_problem(e),
        LeadError::Db(e) => e.into(),
    }
}

fn unknown_customer() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::CustomerNotFound,
        "campaign knows no customer of this tenant by that id (profiles reach it from \
         crm.profiles.v1 within moments of their first event)",
    )
}

fn opportunity_problem(e: OpportunityError) -> Problem {
    match e {
        OpportunityError::Invalid(path, m) => at_path(Code::InvalidOpportunity, &path, &m),
        OpportunityError::LostReason(_) => {
            at_path(Code::LostReasonRequired, "/lost_reason", &e.to_string())
        }
        OpportunityError::NotFound => Problem::new(
            StatusCode::NOT_FOUND,
            Code::OpportunityNotFound,
            "no opportunity with this id for this tenant",
        ),
        OpportunityError::NoPipeline => Problem::new(
            StatusCode::NOT_FOUND,
            Code::PipelineNotFound,
            "no such pipeline for this tenant (create one under /v1/pipelines first)",
        ),
        OpportunityError::UnknownCustomer => unknown_customer(),
        OpportunityError::Db(e) => e.into(),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("key:{k}"))
}

async fn open_lead(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let request: LeadRequest = parsed(&body, Code::InvalidLead)?;
    let origin = idempotency_key(&headers);
    let mut tx = s.pool.begin().await?;
    let opened = leads::open(
        &mut tx,
        &tenant,
        &request,
        origin.as_deref(),
        &actor(&headers),
        Utc::now(),
    )
    .await
    .map_err(lead_problem)?;
    let Some(opened) = opened else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            Code::InvalidState,
            "the tenant's lead settings turn leads from the lead score off",
        ));
    };
    outbox::enqueue_all(&mut tx, &opened.out).await?;
    tx.commit().await?;
    s.delivery.relay.notify_one();
    let status = if opened.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(opened.lead)).into_response())
}

/// Queues an import of leads (checked as a whole here, row by row when it runs): 202 with the
/// job to follow.
async fn import_leads(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let import: LeadImport = parsed(&body, Code::InvalidLead)?;
    import
        .check()
        .map_err(|(path, m)| at_path(Code::InvalidLead, &path, &m))?;
    let id = imports::enqueue(&s.pool, &tenant, import, idempotency_key(&headers)).await?;
    let queued = jobs::JobQueued::new("campaign", id);
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, queued.url.clone())],
        Json(queued),
    )
        .into_response())
}

/// A job of the tenant's (a lead import): status, progress, result or error.
async fn job(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    Ok(Json(jobs::answer(&s.pool, &tenant, "campaign", &id).await?))
}

#[derive(Debug, Deserialize)]
struct LeadQuery {
    owner: Option<String>,
    status: Option<String>,
    source: Option<String>,
    customer_id: Option<Uuid>,
    min_priority: Option<f64>,
    after: Option<Uuid>,
    limit: Option<i64>,
}

fn bad_filter(name: &str, allowed: &str) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        Code::InvalidField,
        format!("{name} is one of {allowed}"),
    )
}

async fn list_leads(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    Query(q): Query<LeadQuery>,
) -> Result<Json<LeadList>, Problem> {
    let limit = page_size(q.limit)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(v) => Some(LeadStatus::parse(v).ok_or_else(|| {
            bad_filter("status", "new, assigned, working, converted, disqualified")
        })?),
    };
    let source = match q.source.as_deref() {
        None => None,
        Some(v) => Some(LeadSource::parse(v).ok_or_else(|| {
            bad_filter(
                "source",
                "score, form, survey, social, journey, import, api",
            )
        })?),
    };
    let filter = LeadFilter {
        owner: q.owner.as_deref(),
        status,
        source,
        customer: q.customer_id,
        min_priority: q.min_priority.filter(|p| p.is_finite()),
    };
    let mut conn = s.pool.acquire().await?;
    let items = lead_store::list(&mut conn, &tenant, &filter, q.after, limit + 1).await?;
    Ok(Json(LeadList::page(items, limit)))
}

async fn read_lead(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<LeadDetail>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let lead = lead_store::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(|| lead_problem(LeadError::NotFound))?;
    let priority_now = leads::explain(&mut conn, &tenant, &lead, Utc::now()).await?;
    let history = lead_store::history(&mut conn, &tenant, id).await?;
    Ok(Json(LeadDetail {
        lead,
        priority_now,
        history,
    }))
}

async fn change_lead(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let patch: LeadPatch = parsed(&body, Code::InvalidLead)?;
    let mut tx = s.pool.begin().await?;
    let changed = leads::change(&mut tx, &tenant, id, &patch, &actor(&headers), Utc::now())
        .await
        .map_err(lead_problem)?;
    outbox::enqueue_all(&mut tx, &changed.out).await?;
    tx.commit().await?;
    s.delivery.relay.notify_one();
    Ok(Json(changed.lead).into_response())
}

async fn convert_lead(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let request: ConvertRequest = parsed(&body, Code::InvalidOpportunity)?;
    let mut tx = s.pool.begin().await?;
    let converted = leads::convert(&mut tx, &tenant, id, &request, &actor(&headers), Utc::now())
        .await
        .map_err(lead_problem)?;
    outbox::enqueue_all(&mut tx, &converted.out).await?;
    tx.commit().await?;
    s.delivery.relay.notify_one();
    Ok(Json(super::bodies::Conversion {
        lead: converted.lead,
        opportunity: converted.opportunity,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
struct QueueQuery {
    owner: String,
    after_priority: Option<f64>,
    after: Option<Uuid>,
    limit: Option<i64>,
}

async fn queue(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    Query(q): Query<QueueQuery>,
) -> Result<Json<LeadList>, Problem> {
    let limit = page_size(q.limit)?;
    let after =
        match (q.after_priority, q.after) {
            (Some(p), Some(id)) if p.is_finite() => Some((p, id)),
            (None, None) => None,
            _ => return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidCursor,
                "after_priority and after go together (from the last lead of the previous page)",
            )),
        };
    let mut conn = s.pool.acquire().await?;
    let items = lead_store::queue(&mut conn, &tenant, &q.owner, after, limit + 1).await?;
    Ok(Json(LeadList::page(items, limit)))
}

async fn read_settings(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<LeadSettings>, Problem> {
    let mut conn = s.pool.acquire().await?;
    Ok(Json(lead_store::settings(&mut conn, &tenant).await?))
}

async fn save_settings(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<LeadSettings>, Problem> {
    let settings: LeadSettings = parsed(&body, Code::InvalidLeadSettings)?;
    settings
        .check()
        .map_err(|(path, m)| at_path(Code::InvalidLeadSettings, &path, &m))?;
    let mut conn = s.pool.acquire().await?;
    lead_store::save_settings(&mut conn, &tenant, &settings, &actor(&headers)).await?;
    Ok(Json(settings))
}

fn pipeline_of(body: &[u8]) -> Result<PipelineSpec, Problem> {
    let spec: PipelineSpec = parsed(body, Code::InvalidPipeline)?;
    spec.check()
        .map_err(|e| at_path(Code::InvalidPipeline, &e.path, &e.message))?;
    Ok(spec)
}

fn pipeline_problem(e: PipelineStoreError) -> Problem {
    match e {
        PipelineStoreError::NotFound => opportunity_problem(OpportunityError::NoPipeline),
        PipelineStoreError::NameTaken => Problem::new(
            StatusCode::CONFLICT,
            Code::PipelineNameTaken,
            "another pipeline of this tenant has this name",
        ),
        PipelineStoreError::StageInUse(stage) => Problem::new(
            StatusCode::CONFLICT,
            Code::PipelineStageInUse,
            format!("open opportunities stand in stage `{stage}`, which the new definition drops; move them first"),
        ),
        PipelineStoreError::Db(e) => e.into(),
    }
}

async fn create_pipeline(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let spec = pipeline_of(&body)?;
    let mut conn = s.pool.acquire().await?;
    let row = pipelines::create(&mut conn, &tenant, Uuid::now_v7(), &spec, &actor(&headers))
        .await
        .map_err(pipeline_problem)?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

async fn list_pipelines(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<PipelineList>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let items = pipelines::list(&mut conn, &tenant).await?;
    Ok(Json(PipelineList { items }))
}

async fn read_pipeline(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Response, Problem> {
    let mut conn = s.pool.acquire().await?;
    let row = pipelines::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(|| pipeline_problem(PipelineStoreError::NotFound))?;
    Ok(Json(row).into_response())
}

async fn replace_pipeline(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let spec = pipeline_of(&body)?;
    let mut tx = s.pool.begin().await?;
    let row = pipelines::update(&mut tx, &tenant, id, &spec, &actor(&headers))
        .await
        .map_err(pipeline_problem)?;
    tx.commit().await?;
    Ok(Json(row).into_response())
}

async fn open_opportunity(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let request: OpportunityRequest = parsed(&body, Code::InvalidOpportunity)?;
    let origin = idempotency_key(&headers);
    let mut tx = s.pool.begin().await?;
    let opened = opportunities::open(
        &mut tx,
        &tenant,
        &request,
        None,
        origin.as_deref(),
        &actor(&headers),
        Utc::now(),
    )
    .await
    .map_err(opportunity_problem)?;
    outbox::enqueue_all(&mut tx, &opened.out).await?;
    tx.commit().await?;
    s.delivery.relay.notify_one();
    let status = if opened.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(opened.opportunity)).into_response())
}

#[derive(Debug, Deserialize)]
struct OpportunityQuery {
    pipeline_id: Option<Uuid>,
    stage: Option<String>,
    status: Option<String>,
    owner: Option<String>,
    customer_id: Option<Uuid>,
    after: Option<Uuid>,
    limit: Option<i64>,
}

async fn list_opportunities(
    State(s): State<super::ApiState>,
    TenantPath(tenant): TenantPath,
    Query(q): Query<OpportunityQuery>,
) -> Result<Json<OpportunityList>, Problem> {
    let limit = page_size(q.limit)?;
    if q.status
        .as_deref()
        .is_some_and(|v| !["open", "won", "lost"].contains(&v))
    {
        return Err(bad_filter("status", "open, won, lost"));
    }
    let filter = OpportunityFilter {
        pipeline: q.pipeline_id,
        stage: q.stage.as_deref(),
        status: q.status.as_deref(),
        owner: q.owner.as_deref(),
        customer: q.customer_id,
    };
    let mut conn = s.pool.acquire().await?;
    let items = opportunity_store::list(&mut conn, &tenant, &filter, q.after, limit + 1).await?;
    Ok(Json(OpportunityList::page(items, limit)))
}

async fn read_opportunity(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<OpportunityDetail>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let opportunity = opportunity_store::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(|| opportunity_problem(OpportunityError::NotFound))?;
    let stages = opportunity_store::history(&mut conn, &tenant, id).await?;
    Ok(Json(OpportunityDetail {
        opportunity,
        stages,
    }))
}

async fn change_opportunity(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let patch: OpportunityPatch = parsed(&body, Code::InvalidOpportunity)?;
    let now = Utc::now();
    let mut tx = s.pool.begin().await?;
    let changed = opportunities::change(&mut tx, &tenant, id, &patch, &actor(&headers), now)
        .await
        .map_err(opportunity_problem)?;
    outbox::enqueue_all(&mut tx, &changed.out).await?;
    let mut queued = false;
    if let Some((name, properties)) = &changed.trigger {
        let signal = Signal::Event { name, properties };
        let customer = changed.opportunity.customer_id;
        let produced = s
            .runner
            .on_signal(&mut tx, &tenant, customer, &signal, now, now)
            .await?;
        outbox::enqueue_all(&mut tx, &produced.out).await?;
        queued = produced.queued;
    }
    tx.commit().await?;
    s.delivery.relay.notify_one();
    if queued {
        s.sends.notify_one();
    }
    Ok(Json(changed.opportunity).into_response())
}
