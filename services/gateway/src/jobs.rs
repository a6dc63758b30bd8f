//! `GET /v1/jobs/{job_id}`: long-running jobs of any part (a scoring run, a clean-up, a lead import). A job id
//! names its part (`segmentation-42`, `identity-7`, `campaign-3`); the call is relayed to that part, which
//! answers for the caller's tenant only.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use crm_service::Code;
use crm_service::Problem;

use crate::auth::{needs, Caller, Scope};
use crate::proxy::{passthrough, Upstream, CAMPAIGN, IDENTITY, SEGMENTATION};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/jobs/{job_id}", needs(Scope::Read, get(read_job)))
}

/// A part's 202 for a job it queued, with the job's URL (`url` in the body) in `Location`.
pub(crate) fn accepted(status: reqwest::StatusCode, body: serde_json::Value) -> Response {
    let location = body["url"]
        .as_str()
        .and_then(|u| HeaderValue::from_str(u).ok());
    let mut response = passthrough(status, body);
    if let Some(url) = location.filter(|_| status == reqwest::StatusCode::ACCEPTED) {
        response.headers_mut().insert(header::LOCATION, url);
    }
    response
}

/// A stored 202 answer (a replayed write) with its job's URL put back in `Location`.
pub(crate) async fn with_location(answer: Response) -> Response {
    if answer.status() != StatusCode::ACCEPTED {
        return answer;
    }
    let (mut parts, body) = answer.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    let url = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v["url"]
                .as_str()
                .and_then(|u| HeaderValue::from_str(u).ok())
        });
    if let Some(url) = url {
        parts.headers.insert(header::LOCATION, url);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The parts that run jobs, by the prefix of their job ids.
const PARTS: [(&str, &Upstream); 3] = [
    ("segmentation-", &SEGMENTATION),
    ("identity-", &IDENTITY),
    ("campaign-", &CAMPAIGN),
];

/// A long-running job (a scoring run, a clean-up, a lead import): `status` is `queued`, `running`,
/// `succeeded` or `failed`, with `progress`, `result` or `error`, and the times it was asked
/// for, started and ended. Job ids name their part (`segmentation-42`, `identity-7`, `campaign-3`).
#[utoipa::path(
    get, path = "/v1/jobs/{job_id}", tag = "reports",
    params(("job_id" = String, Path, description = "As returned when the job was started, e.g. segmentation-42, identity-7 or campaign-3")),
    responses(
        (status = 200, description = "The job", body = crm_service::jobs::JobView),
        (status = 404, description = "No such job for this tenant (job_not_found)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn read_job(
    State(app): State<AppState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Response, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            Code::JobNotFound,
            "no such job for this tenant; job ids look like segmentation-42, identity-7 or campaign-3",
        )
    };
    let (part, id) = PARTS
        .iter()
        .find_map(|(prefix, part)| {
            let id: i64 = job_id.strip_prefix(prefix)?.parse().ok()?;
            Some((*part, id))
        })
        .ok_or_else(not_found)?;
    part.relay(
        &app,
        &caller,
        reqwest::Method::GET,
        &format!("jobs/{id}"),
        &[],
        None,
    )
    .await
}
