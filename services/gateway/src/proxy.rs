//! Answers relayed from the parts' internal APIs: their status and JSON as they are
//! (problem+json on errors), and one problem per part being unreachable.

use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crm_service::Code;
use crm_service::Problem;

use crate::auth::Caller;
use crate::part_client::PartClient;
use crate::AppState;

/// An internal part the gateway relays to, and the problem it answers when that part cannot
/// be reached.
pub(crate) struct Upstream {
    /// The part's name (in logs).
    pub name: &'static str,
    /// The stable code of the 503.
    code: Code,
    /// The 503's detail.
    detail: &'static str,
    /// Its client.
    client: fn(&AppState) -> &PartClient,
}

/// Identity.
pub(crate) const IDENTITY: Upstream = Upstream {
    name: "identity",
    code: Code::IdentityUnavailable,
    detail: "the profile store is unreachable; retry shortly",
    client: |app| &app.identity,
};

/// Segmentation.
pub(crate) const SEGMENTATION: Upstream = Upstream {
    name: "segmentation",
    code: Code::SegmentationUnavailable,
    detail: "segmentation is unreachable; retry shortly",
    client: |app| &app.segmentation,
};

/// Loyalty.
pub(crate) const LOYALTY: Upstream = Upstream {
    name: "loyalty",
    code: Code::UpstreamUnavailable,
    detail: "loyalty is unreachable; retry shortly",
    client: |app| &app.loyalty,
};

/// Campaign.
pub(crate) const CAMPAIGN: Upstream = Upstream {
    name: "campaign",
    code: Code::UpstreamUnavailable,
    detail: "campaign is unreachable; retry shortly",
    client: |app| &app.campaign,
};

impl Upstream {
    /// The part's client.
    pub(crate) fn client<'a>(&self, app: &'a AppState) -> &'a PartClient {
        (self.client)(app)
    }

    /// The 503 when the part cannot be reached (the cause goes to the log, not to the client).
    pub(crate) fn unavailable(&self, e: &anyhow::Error) -> Problem {
        tracing::error!(error = %format!("{e:#}"), part = self.name, "part unreachable");
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, self.code, self.detail)
    }

    /// Relays a call (with an optional JSON body) to the part's internal API for the caller's
    /// tenant, naming the caller in `x-crm-actor`.
    pub(crate) async fn relay(
        &self,
        app: &AppState,
        caller: &Caller,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Response, Problem> {
        let (status, body) = self
            .client(app)
            .call_raw(
                method,
                &caller.tenant,
                path,
                query,
                body,
                &[("x-crm-actor", caller.actor.as_str())],
            )
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(relayed(status, body))
    }
}

/// A part's answer relayed byte for byte (the parts answer JSON, and problem+json on errors):
/// parsing it only to write it again cost a decision a tenth of its time.
pub(crate) fn relayed(status: reqwest::StatusCode, body: axum::body::Bytes) -> Response {
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let kind = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    if body.is_empty() {
        return (status, Json(serde_json::Value::Null)).into_response();
    }
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(kind),
    );
    response
}

/// A part's answer, relayed: success as JSON, errors as the problem+json the part wrote.
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

/// Relays a call to identity's internal API for the caller's tenant.
pub(crate) async fn relay(
    app: &AppState,
    caller: &Caller,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Result<Response, Problem> {
    IDENTITY.relay(app, caller, method, path, query, body).await
}

/// A JSON request body, or 400 `invalid_body` saying what is wrong with it.
pub(crate) fn json_body(
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<serde_json::Value, Problem> {
    body.map(|Json(v)| v)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, Code::InvalidBody, e.body_text()))
}

/// The pairs of a query string whose values are given.
pub(crate) fn query_of<'a>(pairs: &'a [(&'a str, Option<String>)]) -> Vec<(&'a str, &'a str)> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .collect()
}
