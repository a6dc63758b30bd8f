//! Answers relayed from the parts' internal APIs: their status and JSON as they are
//! (problem+json on errors), and one problem per part being unreachable.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crm_service::Problem;

use crate::auth::Caller;
use crate::AppState;

/// The 503 when identity cannot be reached (the cause goes to the log, not to the client).
pub(crate) fn upstream(e: &anyhow::Error) -> Problem {
    tracing::error!(error = %format!("{e:#}"), "identity unreachable");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "identity_unavailable",
        "the profile store is unreachable; retry shortly",
    )
}

/// Identity's answer, relayed: success as JSON, errors as the problem+json identity wrote.
pub(crate) fn passthrough(status: reqwest::StatusCode, body: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = (status, Json(body)).into_response();
    if !status.is_success() {
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
    }
    response
}

/// Relays a call (with an optional JSON body) to identity's internal API for the caller's
/// tenant.
pub(crate) async fn relay(
    app: &AppState,
    caller: &Caller,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Result<Response, Problem> {
    let (status, body) = app
        .identity
        .call(method, &caller.tenant, path, query, body)
        .await
        .map_err(|e| upstream(&e))?;
    Ok(passthrough(status, body))
}

/// The 503 when segmentation cannot be reached.
fn segmentation_down(e: &anyhow::Error) -> Problem {
    tracing::error!(error = %format!("{e:#}"), "segmentation unreachable");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "segmentation_unavailable",
        "segmentation is unreachable; retry shortly",
    )
}

/// Relays a call to segmentation's internal API for the caller's tenant, naming the caller.
pub(crate) async fn relay_segmentation(
    app: &AppState,
    caller: &Caller,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Result<Response, Problem> {
    let (status, body) = app
        .segmentation
        .call_as(
            method,
            &caller.tenant,
            path,
            query,
            body,
            &[("x-crm-actor", caller.actor.as_str())],
        )
        .await
        .map_err(|e| segmentation_down(&e))?;
    Ok(passthrough(status, body))
}
