//! `POST /v1/events`: one event, an array, or `{"batch": [...]}` of up to 500.
//!
//! A batch is all or nothing: if any event breaks the contract, none is produced and the answer
//! (400) reports every event, so the sender fixes and resends the whole batch. The answer 202
//! comes only after the broker acknowledged every event. Events keep their client `id`, so a
//! resend after a timeout or 503 is harmless (identity applies each id once).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use crm_envelope::{
    parse_ingest_event, Envelope, EventError, IngestLimits, Topic, MAX_BATCH_EVENTS,
};
use crm_service::Code;
use crm_service::Problem;
use serde::Serialize;
use serde_json::Value;

use crate::auth::{needs, Caller, Scope};
use crate::AppState;

/// Largest request body: 500 KiB.
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", needs(Scope::Ingest, post(post_events)))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
}

/// The outcome of one event of a request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventResult {
    /// Position in the request.
    pub index: usize,
    /// The event's message id (client-supplied or assigned); resend with it to retry safely.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `accepted`, `rejected` (breaks the contract), `not_sent` (valid, but its batch was
    /// rejected) or `failed` (the broker did not acknowledge it).
    pub status: &'static str,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<EventError>,
}

/// The 202 answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestAccepted {
    /// How many events the broker acknowledged.
    pub accepted: usize,
    /// One result per event, in request order.
    pub results: Vec<EventResult>,
}

/// Post events.
#[utoipa::path(
    post, path = "/v1/events", tag = "events",
    request_body(content = Vec<Envelope>, description = "One event object, an array of events, or {\"batch\": [...]}; at most 500 events, 32 KiB each, 500 KiB in all. tenant_id, received_at and customer_id are set by the suite."),
    responses(
        (status = 202, description = "Every event acknowledged by the broker", body = IngestAccepted),
        (status = 400, description = "Invalid JSON or events; nothing was accepted", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 500 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker did not acknowledge some events; resend them with the same ids", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["ingest"]))
)]
pub(crate) async fn post_events(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IngestAccepted>), Problem> {
    let body = body.map_err(body_problem)?;
    let (items, single) = split(&body)?;
    let received_at = Utc::now();
    let parsed: Vec<Result<Envelope, EventError>> = items
        .into_iter()
        .map(|raw| parse_ingest_event(raw, &caller.tenant, received_at, IngestLimits::default()))
        .collect();
    accept(&app, parsed, single).await
}

/// Produces a request's events once every one meets the contract (else the 400 with one
/// result per event): the 202 once the broker acknowledged them all, 503 otherwise. Shared by
/// every way in that answers like `/v1/events` (the CloudEvents binding too).
pub(crate) async fn accept(
    app: &AppState,
    parsed: Vec<Result<Envelope, EventError>>,
    single: bool,
) -> Result<(StatusCode, Json<IngestAccepted>), Problem> {
    let rejected = parsed.iter().filter(|p| p.is_err()).count();
    if rejected > 0 {
        return Err(rejection(parsed, rejected, single));
    }
    let events: Vec<Envelope> = parsed.into_iter().filter_map(Result::ok).collect();
    let sends = events
        .iter()
        .map(|e| app.producer.send_envelope(Topic::Ingest, e));
    let outcomes = futures::future::join_all(sends).await;
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    let results: Vec<EventResult> = events
        .iter()
        .zip(&outcomes)
        .enumerate()
        .map(|(index, (e, outcome))| EventResult {
            index,
            id: Some(e.id.clone()),
            status: if outcome.is_ok() {
                "accepted"
            } else {
                "failed"
            },
            error: None,
        })
        .collect();
    if failed > 0 {
        if let Some(Err(e)) = outcomes.iter().find(|o| o.is_err()) {
            tracing::error!(error = %e, failed, "broker did not acknowledge events");
        }
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::BrokerUnavailable,
            format!("{failed} of {} events were not acknowledged by the broker; resend those marked failed with the same ids", events.len()),
        )
        .with("results", serde_json::to_value(results).unwrap_or_default()));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(IngestAccepted {
            accepted: events.len(),
            results,
        }),
    ))
}

/// The problem of a body that could not be read: 413 over the limit, 400 otherwise.
pub(crate) fn body_problem(e: BytesRejection) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::PayloadTooLarge,
            format!("a request carries at most {MAX_REQUEST_BYTES} bytes; split the batch"),
        )
    } else {
        Problem::new(StatusCode::BAD_REQUEST, Code::UnreadableBody, e.body_text())
    }
}

/// The events of a body, and whether it was a single event.
fn split(body: &[u8]) -> Result<(Vec<Value>, bool), Problem> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidJson,
            format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let (items, single) = match value {
        Value::Array(items) => (items, false),
        Value::Object(mut obj) if obj.contains_key("batch") => match obj.remove("batch") {
            Some(Value::Array(items)) => (items, false),
            _ => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    Code::InvalidBatch,
                    "'batch' must be an array of events",
                ))
            }
        },
        other => (vec![other], true),
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
    Ok((items, single))
}

/// The 400 for a request with invalid events: the first error's code for a single event,
/// `invalid_events` for a batch, and one result per event either way.
fn rejection(parsed: Vec<Result<Envelope, EventError>>, rejected: usize, single: bool) -> Problem {
    let total = parsed.len();
    let results: Vec<EventResult> = parsed
        .into_iter()
        .enumerate()
        .map(|(index, p)| match p {
            Ok(e) => EventResult {
                index,
                id: Some(e.id),
                status: "not_sent",
                error: None,
            },
            Err(err) => EventResult {
                index,
                id: None,
                status: "rejected",
                error: Some(err),
            },
        })
        .collect();
    let (code, detail) = match (single, results.first().and_then(|r| r.error.as_ref())) {
        (true, Some(err)) => (
            Code::from_name(err.code).unwrap_or(Code::InvalidEvents),
            err.detail.clone(),
        ),
        _ => (
            Code::InvalidEvents,
            format!("{rejected} of {total} events break the contract; nothing was accepted. Fix the events marked rejected and resend the batch"),
        ),
    };
    Problem::new(StatusCode::BAD_REQUEST, code, detail)
        .with("results", serde_json::to_value(results).unwrap_or_default())
}
