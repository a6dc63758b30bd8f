//! Surveys: create, list, read, change (name, questions, open or closed), delete; signed links
//! (personal for one customer, or public); answers page by page; the report (NPS and per
//! question). And the public routes the gateway's `/s/{token}` forwards: the survey as a
//! respondent sees it, and the answer.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use crm_service::{actor, Code, Problem, TenantAnd, TenantPath};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::offers::{at_path, parsed};
use super::pipeline::page_size;
use super::ApiState;
use crate::domain::surveys::definition::{Definition, Hidden, Question};
use crate::domain::surveys::links;
use crate::domain::surveys::report::{fold, Report};
use crate::store::surveys::{self, AnswerRow, Change, ChangeError, SurveyRow};
use crate::surveys::answering::{self, AnswerError, PublicSurvey, Submission, Taken};

pub(crate) fn routes() -> Router<ApiState> {
    let t = "/internal/v1/tenants/{tenant}";
    Router::new()
        .route(&format!("{t}/surveys"), get(list).post(create))
        .route(
            &format!("{t}/surveys/{{id}}"),
            get(read).patch(change).delete(remove),
        )
        .route(&format!("{t}/surveys/{{id}}/links"), post(link))
        .route(&format!("{t}/surveys/{{id}}/answers"), get(answers))
        .route(&format!("{t}/surveys/{{id}}/report"), get(report))
        .route(
            "/internal/v1/surveys/answer/{token}",
            get(show).post(answer),
        )
}

/// A new survey.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyRequest {
    /// Its name, unique in the tenant (1 to 200 characters).
    pub name: String,
    /// The questions, in order (1 to 50).
    pub questions: Vec<Question>,
    /// Hidden fields.
    #[serde(default)]
    pub hidden: Vec<Hidden>,
    /// What the respondent sees once they have answered.
    pub thank_you: Option<String>,
}

/// A change to a survey (absent: kept). New questions apply to answers from now on.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyPatch {
    /// A new name.
    pub name: Option<String>,
    /// New questions, hidden fields and thank-you text, all three together.
    pub definition: Option<Definition>,
    /// `open` (takes answers) or `closed`.
    pub status: Option<String>,
}

/// The tenant's surveys.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SurveyList {
    /// By name.
    pub items: Vec<SurveyRow>,
}

/// A link to make.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The customer of a personal link (answered once, as them); absent: a public link, each
    /// response an anonymous answer.
    pub customer_id: Option<Uuid>,
    /// How many days the link is taken (1 to 365; default 30).
    pub days: Option<i64>,
}

/// A survey link.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinkView {
    /// The link's id.
    pub id: Uuid,
    /// The address to send or publish.
    pub url: String,
    /// The token in it.
    pub token: String,
    /// Until when it is taken.
    pub expires_at: DateTime<Utc>,
    /// Whether it is personal.
    pub personal: bool,
}

/// A page of answers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnswerList {
    /// Newest first.
    pub items: Vec<AnswerRow>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<Uuid>,
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::SurveyNotFound,
        "no survey with this id for this tenant",
    )
}

fn name_taken() -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        Code::SurveyNameTaken,
        "the tenant has a survey of this name",
    )
}

fn check_name(name: &str) -> Result<&str, Problem> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 || n.contains('\0') {
        return Err(at_path(
            Code::InvalidSurvey,
            "/name",
            "1 to 200 characters, not blank",
        ));
    }
    Ok(n)
}

fn check_definition(d: &Definition, prefix: &str) -> Result<(), Problem> {
    d.check()
        .map_err(|(path, why)| at_path(Code::InvalidSurvey, &format!("{prefix}{path}"), &why))
}

async fn create(
    State(s): State<ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let r: SurveyRequest = parsed(&body, Code::InvalidSurvey)?;
    let name = check_name(&r.name)?;
    let definition = Definition {
        questions: r.questions,
        hidden: r.hidden,
        thank_you: r.thank_you,
    };
    check_definition(&definition, "")?;
    let mut conn = s.pool.acquire().await?;
    let row = surveys::create(
        &mut conn,
        &tenant,
        Uuid::now_v7(),
        name,
        &definition,
        &actor(&headers),
    )
    .await?
    .ok_or_else(name_taken)?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

async fn list(
    State(s): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<SurveyList>, Problem> {
    let mut conn = s.pool.acquire().await?;
    Ok(Json(SurveyList {
        items: surveys::list(&mut conn, &tenant).await?,
    }))
}

async fn read(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<SurveyRow>, Problem> {
    let mut conn = s.pool.acquire().await?;
    surveys::get(&mut conn, &tenant, id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}

async fn change(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<SurveyRow>, Problem> {
    let p: SurveyPatch = parsed(&body, Code::InvalidSurvey)?;
    let name = p.name.as_deref().map(check_name).transpose()?;
    if let Some(d) = &p.definition {
        check_definition(d, "/definition")?;
    }
    if p.status
        .as_deref()
        .is_some_and(|st| st != "open" && st != "closed")
    {
        return Err(at_path(Code::InvalidSurvey, "/status", "open or closed"));
    }
    let c = Change {
        name,
        definition: p.definition.as_ref(),
        status: p.status.as_deref(),
    };
    let mut conn = s.pool.acquire().await?;
    match surveys::change(&mut conn, &tenant, id, &c, &actor(&headers)).await {
        Ok(row) => Ok(Json(row)),
        Err(ChangeError::NotFound) => Err(not_found()),
        Err(ChangeError::NameTaken) => Err(name_taken()),
        Err(ChangeError::Db(e)) => Err(e.into()),
    }
}

async fn remove(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<StatusCode, Problem> {
    let mut conn = s.pool.acquire().await?;
    if surveys::delete(&mut conn, &tenant, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

async fn link(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let r: LinkRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LinkRequest::default()
    } else {
        parsed(&body, Code::InvalidSurvey)?
    };
    let days = r.days.unwrap_or(30);
    if !(1..=links::MAX_DAYS).contains(&days) {
        return Err(at_path(Code::InvalidSurvey, "/days", "1 to 365"));
    }
    let mut conn = s.pool.acquire().await?;
    surveys::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    let tracking = &s.delivery.tracking;
    let l = links::issue(
        &tracking.key,
        &tracking.base_url,
        &tenant,
        id,
        r.customer_id,
        days,
        Utc::now(),
    );
    let view = LinkView {
        id: l.id,
        url: l.url,
        token: l.token,
        expires_at: l.expires_at,
        personal: r.customer_id.is_some(),
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    after: Option<Uuid>,
    limit: Option<i64>,
}

async fn answers(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<Json<AnswerList>, Problem> {
    let limit = page_size(q.limit)?;
    let mut conn = s.pool.acquire().await?;
    surveys::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    let items = surveys::answers(&mut conn, &tenant, id, q.after, limit).await?;
    let next_after = (items.len() as i64 == limit)
        .then(|| items.last().map(|a| a.id))
        .flatten();
    Ok(Json(AnswerList { items, next_after }))
}

async fn report(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<Report>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let survey = surveys::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    let (total, counted) = surveys::counted(&mut conn, &tenant, id).await?;
    Ok(Json(fold(&survey.definition, total, &counted)))
}

fn answer_problem(e: AnswerError) -> Problem {
    match e {
        AnswerError::Link | AnswerError::Gone => Problem::new(
            StatusCode::NOT_FOUND,
            Code::InvalidToken,
            "this survey link is not valid or has expired",
        ),
        AnswerError::Closed => Problem::new(
            StatusCode::GONE,
            Code::SurveyClosed,
            "this survey is closed and takes no more answers",
        ),
        AnswerError::Invalid(path, why) => at_path(Code::InvalidAnswer, &path, &why),
        AnswerError::Db(e) => e.into(),
    }
}

async fn show(
    State(s): State<ApiState>,
    Path(token): Path<String>,
) -> Result<Json<PublicSurvey>, Problem> {
    answering::show(&s.pool, &s.delivery.tracking, &token, Utc::now())
        .await
        .map(Json)
        .map_err(answer_problem)
}

async fn answer(
    State(s): State<ApiState>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let sub: Submission = parsed(&body, Code::InvalidAnswer)?;
    let taken: Taken = answering::take(&s.pool, &s.delivery.tracking, &token, &sub, Utc::now())
        .await
        .map_err(answer_problem)?;
    if taken.status == "recorded" {
        s.delivery.relay.notify_one();
    }
    let status = if taken.status == "recorded" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(taken)).into_response())
}
