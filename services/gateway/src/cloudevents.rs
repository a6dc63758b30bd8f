//! `POST /v1/cloudevents`: the CloudEvents 1.0 HTTP binding in its three modes, told apart as
//! the spec says: binary when the request has a `ce-specversion` header (attributes in `ce-*`
//! headers, the body is the data), structured for `application/cloudevents+json` (one event),
//! batch for `application/cloudevents-batch+json` (a JSON array of events). The mapping to the
//! envelope is `crm_envelope::cloudevents`; the answers are `POST /v1/events`' (202 with one
//! result per event; a batch is all or nothing; 400 names each broken attribute).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use crm_envelope::cloudevents::{CloudEvent, StructuredCloudEvent, BATCH, STRUCTURED};
use crm_envelope::{EventError, MAX_BATCH_EVENTS};
use crm_service::{Code, Problem};
use serde_json::Value;

use crate::auth::{needs, Caller, Scope};
use crate::events::{accept, body_problem, IngestAccepted, MAX_REQUEST_BYTES};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/cloudevents",
            needs(Scope::Ingest, post(post_cloudevents)),
        )
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
}

/// Post CloudEvents (HTTP binding: structured, batch or binary mode).
#[utoipa::path(
    post, path = "/v1/cloudevents", tag = "events", operation_id = "post_cloudevents",
    request_body(content((StructuredCloudEvent = "application/cloudevents+json"), (Vec<StructuredCloudEvent> = "application/cloudevents-batch+json")), description = "application/cloudevents+json: one CloudEvent; application/cloudevents-batch+json: an array of up to 500; binary mode: ce-specversion, ce-id, ce-source, ce-type (and ce-subject, ce-time) headers with the JSON data as the body. type identify/track/page/screen/group/alias gives that kind, any other type is a track named by it; subject is the user id; data carries traits or properties."),
    responses(
        (status = 202, description = "Every event acknowledged by the broker", body = IngestAccepted),
        (status = 400, description = "Invalid JSON or events (each result's pointer names the attribute); nothing was accepted", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 500 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither a CloudEvents content type nor binary-mode headers", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker did not acknowledge some events; resend them", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["ingest"]), ("basic" = ["ingest"]))
)]
pub(crate) async fn post_cloudevents(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IngestAccepted>), Problem> {
    let body = body.map_err(body_problem)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let essence = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let (events, single) = if headers.contains_key("ce-specversion") {
        let pairs = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        (
            vec![CloudEvent::binary(pairs, "ce-", content_type, &body)],
            true,
        )
    } else if essence == STRUCTURED {
        (vec![CloudEvent::structured(json_of(&body)?)], true)
    } else if essence == BATCH {
        let Value::Array(items) = json_of(&body)? else {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidBatch,
                "a batch (application/cloudevents-batch+json) is a JSON array of CloudEvents",
            ));
        };
        if items.is_empty() {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Code::EmptyBatch,
                "send at least one event",
            ));
        }
        if items.len() > MAX_BATCH_EVENTS {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Code::BatchTooLarge,
                format!(
                    "a batch carries at most {MAX_BATCH_EVENTS} events; this one has {}",
                    items.len()
                ),
            ));
        }
        (
            items.into_iter().map(CloudEvent::structured).collect(),
            false,
        )
    } else {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            format!("send Content-Type {STRUCTURED} (one event) or {BATCH} (an array), or binary mode with ce-specversion, ce-id, ce-source and ce-type headers"),
        ));
    };
    let received_at = Utc::now();
    let parsed: Vec<Result<_, EventError>> = events
        .into_iter()
        .map(|event| event.and_then(|e| e.to_envelope(&caller.tenant, received_at)))
        .collect();
    accept(&app, parsed, single).await
}

fn json_of(bytes: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidJson,
            format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}
