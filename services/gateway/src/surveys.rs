//! Surveys and forms through the gateway: definitions (`admin` writes, `read` looks), signed
//! links (personal for one customer, or public), answers and reports; and the public
//! `/s/{token}` route respondents use with no account: `GET` shows the survey, `POST` answers
//! it. The token is the authority (campaign checks it); the gateway limits answers per client
//! address and minute across its replicas (a Redis counter), so a robot cannot flood a public
//! form.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_service::{Code, Problem};
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::idempotency::write_once;
use crate::pipeline::{read, write, KEY};
use crate::proxy::CAMPAIGN;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/surveys",
            needs(Scope::Read, get(list_surveys)).merge(needs(Scope::Admin, post(create_survey))),
        )
        .route(
            "/v1/surveys/{id}",
            needs(Scope::Read, get(read_survey)).merge(needs(
                Scope::Admin,
                axum::routing::patch(change_survey).delete(delete_survey),
            )),
        )
        .route(
            "/v1/surveys/{id}/links",
            needs(Scope::Admin, post(create_link)),
        )
        .route(
            "/v1/surveys/{id}/answers",
            needs(Scope::Read, get(list_answers)),
        )
        .route("/v1/surveys/{id}/report", needs(Scope::Read, get(report)))
        .route("/s/{token}", get(respond).post(respond))
}

/// Create a survey or form: questions (`single`, `multiple`, `scale`, `nps`, `text`), hidden
/// fields, and the traits answers are written to with their rule (`overwrite`, `if_empty`,
/// `append`). Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/surveys", tag = "surveys",
    params(("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::SurveyRequest, example = json!({"name": "After delivery", "questions": [{"id": "nps", "kind": "nps", "label": "How likely are you to recommend us?", "required": true}, {"id": "size", "kind": "single", "label": "Your size", "options": ["s", "m", "l"], "maps_to": {"trait": "size", "rule": "if_empty"}}], "hidden": [{"id": "campaign"}], "thank_you": "Thank you!"})),
    responses((status = 201, description = "The survey", body = crm_campaign::bodies::SurveyRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "survey_name_taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_survey: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn create_survey(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        "surveys",
        body,
    )
    .await
}

/// The tenant's surveys.
#[utoipa::path(get, path = "/v1/surveys", tag = "surveys",
    responses((status = 200, description = "The surveys", body = crm_campaign::bodies::SurveyList)),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_surveys(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "surveys", &[]).await
}

/// One survey.
#[utoipa::path(get, path = "/v1/surveys/{id}", tag = "surveys",
    params(("id" = Uuid, Path, description = "Survey id")),
    responses((status = 200, description = "The survey", body = crm_campaign::bodies::SurveyRow),
        (status = 404, description = "survey_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_survey(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("surveys/{id}"), &[]).await
}

/// Rename a survey, give it new questions (answers from now on), or close it (`closed`
/// refuses new answers and keeps the old). Needs `Idempotency-Key`.
#[utoipa::path(patch, path = "/v1/surveys/{id}", tag = "surveys",
    params(("id" = Uuid, Path, description = "Survey id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::SurveyPatch, example = json!({"status": "closed"})),
    responses((status = 200, description = "The survey", body = crm_campaign::bodies::SurveyRow),
        (status = 404, description = "survey_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "survey_name_taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_survey: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn change_survey(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("surveys/{id}");
    write(&app, &caller, &headers, reqwest::Method::PATCH, &path, body).await
}

/// Delete a survey and its answers (the `Survey Answered` events stay on the timelines).
/// Needs `Idempotency-Key`.
#[utoipa::path(delete, path = "/v1/surveys/{id}", tag = "surveys",
    params(("id" = Uuid, Path, description = "Survey id"), ("Idempotency-Key" = String, Header, description = KEY)),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "survey_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn delete_survey(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let path = format!("surveys/{id}");
    write_once(
        &app,
        &CAMPAIGN,
        &caller,
        &headers,
        reqwest::Method::DELETE,
        &path,
        None,
    )
    .await
}

/// A signed link to the survey: personal (`customer_id`: answered once, as that customer,
/// verified) or public (each response an anonymous answer). Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/surveys/{id}/links", tag = "surveys",
    params(("id" = Uuid, Path, description = "Survey id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::LinkRequest, example = json!({"customer_id": "0193d2a4-7b5e-7c3a-9f00-1a2b3c4d5e6f", "days": 14})),
    responses((status = 201, description = "The link", body = crm_campaign::bodies::LinkView),
        (status = 404, description = "survey_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_survey: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn create_link(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("surveys/{id}/links");
    write(&app, &caller, &headers, reqwest::Method::POST, &path, body).await
}

/// Keyset paging of answers.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub(crate) struct AnswerQuery {
    /// `next_after` of the previous page.
    after: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
}

/// A survey's answers, newest first.
#[utoipa::path(get, path = "/v1/surveys/{id}/answers", tag = "surveys",
    params(("id" = Uuid, Path, description = "Survey id"), AnswerQuery),
    responses((status = 200, description = "A page of answers", body = crm_campaign::bodies::AnswerList),
        (status = 400, description = "Bad limit", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "survey_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_answers(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    axum::extract::Query(q): axum::extract::Query<AnswerQuery>,
) -> Result<Response, Problem> {
    let pairs = [
        ("after", q.after.map(|a| a.to_string())),
        ("limit", q.limit.map(|l| l.to_string())),
    ];
    read(
        &app,
        &caller,
        &format!("surveys/{id}/answers"),
        &crate::proxy::query_of(&pairs),
    )
    .await
}

/// A survey's report: the Net Promoter Score and, per question, how many answered and how
/// often each option or value was chosen (the mean of a scale).
#[utoipa::path(get, path = "/v1/surveys/{id}/report", tag = "surveys",
    params(("id" = Uuid, Path, description = "Survey id")),
    responses((status = 200, description = "The report", body = crm_campaign::bodies::SurveyReport),
        (status = 404, description = "survey_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn report(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("surveys/{id}/report"), &[]).await
}

/// The client's address as the ingress reports it: the last `X-Forwarded-For` hop (the one
/// the deployment's own proxy added, which a client cannot forge), else `X-Real-IP`.
fn client_address(headers: &HeaderMap) -> String {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty());
    forwarded
        .or_else(|| headers.get("x-real-ip").and_then(|v| v.to_str().ok()))
        .filter(|a| a.len() <= 64)
        .unwrap_or("direct")
        .to_owned()
}

/// The public survey route: `GET` shows the survey (questions without their trait mappings),
/// `POST` answers it (JSON: `answers`, `hidden`, `response_id`, `anonymous_id`).
async fn respond(
    State(app): State<AppState>,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    if !crate::tracking::plausible(&token) {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            Code::InvalidToken,
            "this survey link is not valid or has expired",
        ));
    }
    let method = if method == Method::POST {
        let bucket = format!("survey:{}", client_address(&headers));
        match app
            .cache
            .hit(&bucket, std::time::Duration::from_secs(60))
            .await
        {
            Ok(n) if n > i64::from(app.survey_answers_per_minute) => {
                return Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    Code::RateLimited,
                    format!(
                        "at most {} answers a minute from one address: try again in a minute",
                        app.survey_answers_per_minute
                    ),
                ));
            }
            Ok(_) => {}
            // Redis down: the honeypot and one answer per link still hold; answers go on.
            Err(e) => tracing::warn!(error = %e, "the survey rate limit is not counted"),
        }
        reqwest::Method::POST
    } else {
        reqwest::Method::GET
    };
    crate::tracking::forward(
        &app,
        method,
        format!("surveys/answer/{token}"),
        &headers,
        &["content-type"],
        body,
    )
    .await
}
