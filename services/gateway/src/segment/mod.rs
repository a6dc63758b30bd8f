//! Segment's HTTP Tracking API: `POST /v1/identify`, `/v1/track`, `/v1/page`, `/v1/screen`,
//! `/v1/group`, `/v1/alias` and `/v1/batch`, so that Segment's and RudderStack's libraries
//! deliver here unmodified with only their host and write key set (the write key is an API key
//! with the `ingest` scope, sent as the HTTP Basic user name).
//!
//! Each event is mapped to the envelope (`crm_envelope::segment`) and then checked by the same ingest
//! contract as `POST /v1/events`. Answers follow Segment's: `200 {"success": true}` once the
//! broker acknowledged the events, a problem+json 400 naming the Segment field otherwise, 503
//! when the broker did not acknowledge (the libraries retry; `messageId` makes the retry apply
//! once). A batch is not all-or-nothing, because the libraries drop a whole batch on a 400:
//! its valid events are taken, and each invalid one is written to the ingest dead-letter topic
//! with its reason (nothing is lost) and listed in the 200 answer's `rejected`.

mod body;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use crm_envelope::{parse_ingest_event, Envelope, EventError, IngestLimits, Topic};
use crm_service::{Code, Problem};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::{needs, Caller, Scope};
use crate::AppState;
use crm_envelope::segment::{self as mapping, Received};

/// Segment's limit of one call's body, and of each event of a batch: 32 KB.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Segment's limit of a batch's body, decompressed: 500 KB.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// The consumer group named on dead letters the gateway writes (no part replays them: they
/// are Segment events that broke the contract, kept for the sender to look at).
const DLQ_GROUP: &str = "crm-gateway-segment";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/identify", needs(Scope::Ingest, post(identify)))
        .route("/v1/track", needs(Scope::Ingest, post(track)))
        .route("/v1/page", needs(Scope::Ingest, post(page)))
        .route("/v1/screen", needs(Scope::Ingest, post(screen)))
        .route("/v1/group", needs(Scope::Ingest, post(group)))
        .route("/v1/alias", needs(Scope::Ingest, post(alias)))
        .route("/v1/batch", needs(Scope::Ingest, post(batch)))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))
}

/// One Segment call, as the libraries send it (the schema of the request bodies; the handlers
/// read the JSON as it comes, so unknown fields are ignored as Segment ignores them).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentCall {
    /// `identify`, `track`, `page`, `screen`, `group` or `alias`; required inside a batch.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The dedupe id: a retry with the same id applies once.
    pub message_id: Option<String>,
    /// The customer's id in the sending system (a string or a number).
    pub user_id: Option<String>,
    /// A device or browser id; `userId` or `anonymousId` is required.
    pub anonymous_id: Option<String>,
    /// The event's name (track).
    pub event: Option<String>,
    /// The page or screen name (page, screen).
    pub name: Option<String>,
    /// The page's category (page).
    pub category: Option<String>,
    /// The person's traits (identify) or the account's traits (group).
    #[schema(value_type = Option<Object>)]
    pub traits: Option<Map<String, Value>>,
    /// The event's properties.
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Value>>,
    /// The account's id (group).
    pub group_id: Option<String>,
    /// The id that `userId` now stands for (alias).
    pub previous_id: Option<String>,
    /// When the event happened on the client's clock (ISO 8601).
    pub timestamp: Option<String>,
    /// When the client sent it (ISO 8601), for the clock-skew correction.
    pub sent_at: Option<String>,
    /// Context: ip, library, user agent, page, ...; `context.traits.email` and `phone`
    /// identify the customer too.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// Destinations the sender meant the event for (kept in `context.integrations`).
    #[schema(value_type = Option<Object>)]
    pub integrations: Option<Map<String, Value>>,
}

/// `POST /v1/batch`'s body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentBatch {
    /// The events, each with its `type`; 32 KB each, 500 KB in all (decompressed).
    pub batch: Vec<SegmentCall>,
    /// When the client sent the batch, for the events that carry no `sentAt` of their own.
    pub sent_at: Option<String>,
    /// Context shared by every event (an event's own keys win).
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

/// One event of a batch that was not taken.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rejected {
    /// Position in the batch.
    pub index: usize,
    /// Its `messageId`, when it had one.
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Why.
    pub error: EventError,
}

/// The 200 answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentAccepted {
    /// Always `true` (what Segment's libraries look for).
    pub success: bool,
    /// Events of a batch that broke the contract: dead-lettered with their reason, not
    /// applied. Absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejected>,
}

macro_rules! call_route {
    ($fn:ident, $call:literal, $path:literal, $what:literal) => {
        #[doc = $what]
        #[utoipa::path(
            post, path = $path, tag = "segment", operation_id = $call,
            request_body(content = SegmentCall, description = "A Segment call (JSON, or gzip with Content-Encoding: gzip; 32 KB decompressed)"),
            responses(
                (status = 200, description = "Taken: the broker acknowledged the event", body = SegmentAccepted),
                (status = 400, description = "Not JSON, over 32 KB, or the call breaks the contract (the pointer names the Segment field)", body = Problem, content_type = "application/problem+json"),
                (status = 401, description = "Missing or invalid write key", body = Problem, content_type = "application/problem+json"),
                (status = 415, description = "A Content-Encoding other than gzip", body = Problem, content_type = "application/problem+json"),
                (status = 503, description = "The broker did not acknowledge; retry with the same messageId", body = Problem, content_type = "application/problem+json"),
            ),
            security(("api_key" = ["ingest"]), ("basic" = ["ingest"]))
        )]
        pub(crate) async fn $fn(
            State(app): State<AppState>,
            caller: Caller,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Json<SegmentAccepted>, Problem> {
            single(&app, &caller, &headers, body, $call).await
        }
    };
}

call_route!(
    identify,
    "identify",
    "/v1/identify",
    "Segment `identify`: who the customer is, with traits."
);
call_route!(
    track,
    "track",
    "/v1/track",
    "Segment `track`: something the customer did."
);
call_route!(page, "page", "/v1/page", "Segment `page`: a page view.");
call_route!(
    screen,
    "screen",
    "/v1/screen",
    "Segment `screen`: a mobile screen view."
);
call_route!(
    group,
    "group",
    "/v1/group",
    "Segment `group`: the customer belongs to an account (`groupId`), whose traits it sets."
);
call_route!(
    alias,
    "alias",
    "/v1/alias",
    "Segment `alias`: `previousId` (an anonymous id) is now `userId`."
);

/// Segment `batch`: many calls in one request.
#[utoipa::path(
    post, path = "/v1/batch", tag = "segment", operation_id = "batch",
    request_body(content = SegmentBatch, description = "A Segment batch (JSON, or gzip with Content-Encoding: gzip; 500 KB decompressed, 32 KB an event)"),
    responses(
        (status = 200, description = "The valid events were acknowledged by the broker; invalid ones are listed in `rejected` and dead-lettered", body = SegmentAccepted),
        (status = 400, description = "Not JSON, no `batch` array, or over 500 KB", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid write key", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A Content-Encoding other than gzip", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker did not acknowledge; retry the batch as it was (messageIds make it apply once)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["ingest"]), ("basic" = ["ingest"]))
)]
pub(crate) async fn batch(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SegmentAccepted>, Problem> {
    let bytes = body.map_err(unreadable)?;
    let decoded = body::decode(&headers, &bytes, MAX_BATCH_BYTES, Code::BatchTooLarge)?;
    let Value::Object(mut request) = json_of(&decoded)? else {
        return Err(invalid_batch(
            "the body must be an object with a 'batch' array",
        ));
    };
    let Some(Value::Array(items)) = request.remove("batch") else {
        return Err(invalid_batch("'batch' must be an array of Segment calls"));
    };
    if items.is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::EmptyBatch,
            "send at least one call in 'batch'",
        ));
    }
    let received = Received {
        at: Utc::now(),
        batch_sent_at: mapping::time_field(&request, "sentAt").map_err(|e| event_problem(&e))?,
    };
    let shared_context = match request.remove("context") {
        Some(Value::Object(c)) => c,
        _ => Map::new(),
    };
    let mut accepted = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, mut item) in items.into_iter().enumerate() {
        with_shared_context(&mut item, &shared_context);
        match envelope_of(&item, None, received, &caller) {
            Ok(envelope) => accepted.push(envelope),
            Err(error) => rejected.push((index, item, error)),
        }
    }
    produce(&app, &accepted).await?;
    dead_letter(&app, &caller, &rejected).await?;
    if !rejected.is_empty() {
        tracing::info!(
            accepted = accepted.len(),
            rejected = rejected.len(),
            "segment batch: invalid events dead-lettered"
        );
    }
    Ok(Json(SegmentAccepted {
        success: true,
        rejected: rejected
            .into_iter()
            .map(|(index, item, error)| Rejected {
                index,
                message_id: item
                    .get("messageId")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                error,
            })
            .collect(),
    }))
}

/// One call of `/v1/{call}`: taken whole, or refused with a 400 naming the field.
async fn single(
    app: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    call: &str,
) -> Result<Json<SegmentAccepted>, Problem> {
    let bytes = body.map_err(unreadable)?;
    let decoded = body::decode(headers, &bytes, MAX_EVENT_BYTES, Code::EventTooLarge)?;
    let raw = json_of(&decoded)?;
    let received = Received {
        at: Utc::now(),
        batch_sent_at: None,
    };
    let envelope =
        envelope_of(&raw, Some(call), received, caller).map_err(|e| event_problem(&e))?;
    produce(app, std::slice::from_ref(&envelope)).await?;
    Ok(Json(SegmentAccepted {
        success: true,
        rejected: Vec::new(),
    }))
}

/// A Segment event as an envelope that meets the ingest contract.
fn envelope_of(
    raw: &Value,
    call: Option<&str>,
    received: Received,
    caller: &Caller,
) -> Result<Envelope, EventError> {
    let size = serde_json::to_vec(raw).map_or(usize::MAX, |v| v.len());
    if size > MAX_EVENT_BYTES {
        return Err(EventError {
            code: "event_too_large",
            pointer: None,
            detail: format!("the event is {size} bytes; Segment's limit is {MAX_EVENT_BYTES}"),
        });
    }
    let ingest = mapping::to_ingest(raw, call, received)?;
    parse_ingest_event(ingest, &caller.tenant, received.at, IngestLimits::default())
}

/// The batch's shared `context` under each event's own (the event's keys win).
fn with_shared_context(item: &mut Value, shared: &Map<String, Value>) {
    if shared.is_empty() {
        return;
    }
    let Some(event) = item.as_object_mut() else {
        return;
    };
    let context = event
        .entry("context")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(own) = context.as_object_mut() {
        for (k, v) in shared {
            own.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Produces `events` to `crm.ingest.v1`; 503 unless the broker acknowledged every one.
async fn produce(app: &AppState, events: &[Envelope]) -> Result<(), Problem> {
    let sends = events
        .iter()
        .map(|e| app.producer.send_envelope(Topic::Ingest, e));
    let outcomes = futures::future::join_all(sends).await;
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    if let Some(Err(e)) = outcomes.iter().find(|o| o.is_err()) {
        tracing::error!(error = %e, failed, "broker did not acknowledge segment events");
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::BrokerUnavailable,
            format!("{failed} of {} events were not acknowledged by the broker; retry the request as it was (messageIds make it apply once)", events.len()),
        ));
    }
    Ok(())
}

/// Writes each rejected event of a batch to `crm.ingest.v1.dlq` with its reason (the same
/// headers as a consumer's dead letters); 503 unless the broker acknowledged them all, so
/// that the library retries and nothing is lost.
async fn dead_letter(
    app: &AppState,
    caller: &Caller,
    rejected: &[(usize, Value, EventError)],
) -> Result<(), Problem> {
    let topics = app.producer.topics();
    let dlq = topics.dlq(Topic::Ingest);
    let source = topics.name(Topic::Ingest);
    let now = Utc::now().to_rfc3339();
    let mut sends = Vec::with_capacity(rejected.len());
    for (index, item, error) in rejected {
        let mut headers: HashMap<String, String> =
            crm_telemetry::propagation::current_context_headers();
        headers.insert("crm-dlq-source-topic".into(), source.clone());
        headers.insert("crm-dlq-consumer-group".into(), DLQ_GROUP.into());
        headers.insert("crm-dlq-error-code".into(), error.code.into());
        headers.insert("crm-dlq-error".into(), error.detail.clone());
        headers.insert("crm-dlq-failed-at".into(), now.clone());
        headers.insert("crm-dlq-tenant".into(), caller.tenant.to_string());
        headers.insert("crm-dlq-batch-index".into(), index.to_string());
        let payload = serde_json::to_vec(item).unwrap_or_default();
        let key = format!("{}:segment", caller.tenant);
        let dlq = &dlq;
        sends.push(async move { app.producer.send_raw(dlq, &key, &payload, &headers).await });
    }
    let outcomes = futures::future::join_all(sends).await;
    if let Some(Err(e)) = outcomes.iter().find(|o| o.is_err()) {
        tracing::error!(error = %e, "broker did not acknowledge segment dead letters");
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::BrokerUnavailable,
            "the invalid events of the batch could not be dead-lettered; retry the request as it was",
        ));
    }
    Ok(())
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

fn unreadable(e: BytesRejection) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::BatchTooLarge,
            format!("a request carries at most {MAX_BATCH_BYTES} bytes (Segment's limit); split the batch"),
        )
    } else {
        Problem::new(StatusCode::BAD_REQUEST, Code::UnreadableBody, e.body_text())
    }
}

fn invalid_batch(detail: &str) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, Code::InvalidBatch, detail)
}

/// The 400 of one call that breaks the contract: its code, the Segment field as `pointer`.
fn event_problem(e: &EventError) -> Problem {
    let problem = Problem::new(
        StatusCode::BAD_REQUEST,
        Code::from_name(e.code).unwrap_or(Code::InvalidField),
        e.detail.clone(),
    );
    match &e.pointer {
        Some(p) => problem.with("pointer", Value::String(p.clone())),
        None => problem,
    }
}
