//! `/v1/webhooks`: an admin subscribes endpoints to event types, reads the delivery log with
//! every attempt, replays a delivery or every failed one since a time, and rotates the signing
//! secret (the old one keeps signing beside the new one for an overlap).

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use crm_service::{Code, Problem};
use crm_webhooks::guard::GuardError;
use crm_webhooks::signing::Secret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::domain;
use super::store::{self, Attempt, Delivery, Endpoint, EndpointChange, NewEndpoint};
use crate::auth::{needs, Caller, Scope};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/webhooks",
            needs(Scope::Admin, get(list_webhooks))
                .merge(needs(Scope::Admin, post(create_webhook))),
        )
        .route(
            "/v1/webhooks/{id}",
            needs(Scope::Admin, get(read_webhook))
                .merge(needs(Scope::Admin, axum::routing::patch(update_webhook)))
                .merge(needs(Scope::Admin, axum::routing::delete(delete_webhook))),
        )
        .route(
            "/v1/webhooks/{id}/rotate-secret",
            needs(Scope::Admin, post(rotate_webhook_secret)),
        )
        .route(
            "/v1/webhooks/{id}/deliveries",
            needs(Scope::Admin, get(list_webhook_deliveries)),
        )
        .route(
            "/v1/webhooks/{id}/deliveries/{delivery_id}",
            needs(Scope::Admin, get(read_webhook_delivery)),
        )
        .route(
            "/v1/webhooks/{id}/deliveries/{delivery_id}/replay",
            needs(Scope::Admin, post(replay_webhook_delivery)),
        )
        .route(
            "/v1/webhooks/{id}/recover",
            needs(Scope::Admin, post(recover_webhook)),
        )
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        Code::InvalidWebhook,
        detail,
    )
}

fn not_found(id: Uuid) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::WebhookNotFound,
        format!("this tenant has no webhook endpoint {id}"),
    )
}

/// An endpoint to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWebhook {
    /// Where to post deliveries (http or https; a public address unless the deployment allows
    /// private ones).
    #[schema(example = "https://hooks.example.com/crm")]
    url: String,
    /// The event types to receive: `family.kind` (`segment.entered`), `family.*`
    /// (`message.*`) or `*`. Families: profile, consent, segment, lifecycle, lead, rfm,
    /// points, tier, reward, journey, message, offer, decision, survey, conversation,
    /// opportunity, task.
    #[schema(example = json!(["segment.*", "tier.changed"]))]
    event_types: Vec<String>,
    /// What it is for.
    #[serde(default)]
    description: String,
    /// The signing secret (`whsec_` + base64 of 24 to 64 bytes); one is generated when absent.
    secret: Option<String>,
}

/// An endpoint with its signing secret, shown on creation and rotation only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WebhookWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    endpoint: Endpoint,
    /// The signing secret: keep it; it is not shown again.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    secret: String,
}

/// Checks the URL's form and, through the SSRF guard, where it resolves now (each delivery
/// checks again).
async fn check_target(app: &AppState, url: &str) -> Result<(), Problem> {
    domain::check_url(url).map_err(invalid)?;
    match app.webhooks.guard().client(url).await {
        Ok(_) => Ok(()),
        Err(GuardError::Private) => Err(invalid(
            "url: the host resolves to a private, loopback or internal address, which webhooks may not reach",
        )),
        Err(GuardError::Unresolved) => Err(invalid("url: the host does not resolve")),
        Err(GuardError::BadUrl) => Err(invalid("url: not an http or https URL with a host")),
    }
}

fn parse_secret(secret: Option<&str>) -> Result<Secret, Problem> {
    match secret {
        None => Ok(Secret::generate()),
        Some(s) => Secret::parse(s).map_err(|e| invalid(format!("secret: {e}"))),
    }
}

/// Subscribe an endpoint to event types. The answer holds its signing secret, once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", operation_id = "create_webhook",
    request_body = NewWebhook,
    responses((status = 201, description = "Created; store the secret now", body = WebhookWithSecret),
        (status = 400, description = "Not JSON, or unknown fields", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad URL, target, event type or secret (`invalid_webhook`)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub(crate) async fn create_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<NewWebhook>,
) -> Result<(StatusCode, Json<WebhookWithSecret>), Problem> {
    domain::check_patterns(&body.event_types).map_err(invalid)?;
    check_target(&app, &body.url).await?;
    if body.description.len() > 500 {
        return Err(invalid("description: at most 500 characters"));
    }
    let secret = parse_secret(body.secret.as_deref())?.expose();
    let endpoint = store::insert_endpoint(
        &app.pool,
        &caller.tenant,
        &NewEndpoint {
            url: &body.url,
            description: &body.description,
            event_types: &body.event_types,
            secret: &secret,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret { endpoint, secret }),
    ))
}

/// Which page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// Page size, 1 to 500 (default 100).
    limit: Option<u32>,
    /// Entries to skip (default 0).
    offset: Option<u32>,
}

impl Page {
    fn bounds(&self) -> Result<(i64, i64), Problem> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidLimit,
                "limit: 1 to 500",
            ));
        }
        Ok((i64::from(limit), i64::from(self.offset.unwrap_or(0))))
    }
}

/// A page of endpoints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WebhookList {
    /// Oldest first.
    items: Vec<Endpoint>,
    /// The page size asked for.
    limit: i64,
    /// Entries skipped.
    offset: i64,
}

/// The tenant's webhook endpoints (never their secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", operation_id = "list_webhooks",
    params(Page),
    responses((status = 200, description = "A page of endpoints", body = WebhookList),
        (status = 400, description = "Bad limit or offset", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub(crate) async fn list_webhooks(
    State(app): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<WebhookList>, Problem> {
    let (limit, offset) = page.bounds()?;
    let items = store::list_endpoints(&app.pool, &caller.tenant, limit, offset).await?;
    Ok(Json(WebhookList {
        items,
        limit,
        offset,
    }))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "read_webhook",
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses((status = 200, description = "The endpoint", body = Endpoint),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub(crate) async fn read_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<Endpoint>, Problem> {
    store::get_endpoint(&app.pool, &caller.tenant, id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(id))
}

/// A change to an endpoint; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookChange {
    /// A new URL.
    url: Option<String>,
    /// New event types (replacing the old).
    event_types: Option<Vec<String>>,
    /// A new description.
    description: Option<String>,
    /// `true` enables a disabled endpoint (its pending deliveries go out again); `false`
    /// disables it (`manual`).
    enabled: Option<bool>,
}

/// Change an endpoint's URL, event types or description, or enable or disable it.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "update_webhook",
    params(("id" = Uuid, Path, description = "The endpoint")), request_body = WebhookChange,
    responses((status = 200, description = "The endpoint as changed", body = Endpoint),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad URL, target or event type (`invalid_webhook`)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub(crate) async fn update_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<WebhookChange>,
) -> Result<Json<Endpoint>, Problem> {
    if let Some(types) = &body.event_types {
        domain::check_patterns(types).map_err(invalid)?;
    }
    if let Some(url) = &body.url {
        check_target(&app, url).await?;
    }
    if body.description.as_ref().is_some_and(|d| d.len() > 500) {
        return Err(invalid("description: at most 500 characters"));
    }
    let change = EndpointChange {
        url: body.url.as_deref(),
        description: body.description.as_deref(),
        event_types: body.event_types.as_deref(),
        enabled: body.enabled,
    };
    store::update_endpoint(&app.pool, &caller.tenant, id, &change)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(id))
}

/// Delete an endpoint with its delivery log.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook",
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub(crate) async fn delete_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Problem> {
    if store::delete_endpoint(&app.pool, &caller.tenant, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(id))
    }
}

/// A secret rotation.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rotation {
    /// The new secret (`whsec_…`); one is generated when absent.
    secret: Option<String>,
    /// Hours the old secret keeps signing beside the new one, 0 to 168 (default 24).
    overlap_hours: Option<u32>,
}

/// Rotate the signing secret: deliveries carry a signature by each of the two secrets until
/// the overlap ends, so receivers can switch without losing one.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    operation_id = "rotate_webhook_secret",
    params(("id" = Uuid, Path, description = "The endpoint")), request_body = Rotation,
    responses((status = 200, description = "The endpoint and its new secret", body = WebhookWithSecret),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad secret or overlap (`invalid_webhook`)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub(crate) async fn rotate_webhook_secret(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: Option<Json<Rotation>>,
) -> Result<Json<WebhookWithSecret>, Problem> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let hours = body.overlap_hours.unwrap_or(24);
    if hours > 168 {
        return Err(invalid("overlap_hours: 0 to 168"));
    }
    let secret = parse_secret(body.secret.as_deref())?.expose();
    let overlap = Duration::from_secs(u64::from(hours) * 3600);
    let endpoint = store::rotate_secret(&app.pool, &caller.tenant, id, &secret, overlap)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(WebhookWithSecret { endpoint, secret }))
}

/// Which deliveries.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveryQuery {
    /// Only those in this state: `pending`, `delivered` or `failed`.
    status: Option<String>,
    /// Page size, 1 to 500 (default 100).
    limit: Option<u32>,
    /// Entries to skip (default 0).
    offset: Option<u32>,
}

/// A page of deliveries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DeliveryList {
    /// Newest first.
    items: Vec<Delivery>,
    /// The page size asked for.
    limit: i64,
    /// Entries skipped.
    offset: i64,
}

async fn endpoint_exists(app: &AppState, caller: &Caller, id: Uuid) -> Result<(), Problem> {
    store::get_endpoint(&app.pool, &caller.tenant, id)
        .await?
        .map(|_| ())
        .ok_or_else(|| not_found(id))
}

/// An endpoint's delivery log, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    operation_id = "list_webhook_deliveries",
    params(("id" = Uuid, Path, description = "The endpoint"), DeliveryQuery),
    responses((status = 200, description = "A page of deliveries", body = DeliveryList),
        (status = 400, description = "Bad status, limit or offset", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub(crate) async fn list_webhook_deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<DeliveryList>, Problem> {
    let (limit, offset) = Page {
        limit: q.limit,
        offset: q.offset,
    }
    .bounds()?;
    if q.status
        .as_deref()
        .is_some_and(|s| !matches!(s, "pending" | "delivered" | "failed"))
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidQuery,
            "status: pending, delivered or failed",
        ));
    }
    endpoint_exists(&app, &caller, id).await?;
    let items = store::list_deliveries(
        &app.pool,
        &caller.tenant,
        id,
        q.status.as_deref(),
        limit,
        offset,
    )
    .await?;
    Ok(Json(DeliveryList {
        items,
        limit,
        offset,
    }))
}

/// A delivery with its body and every attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DeliveryDetail {
    /// The delivery.
    #[serde(flatten)]
    delivery: Delivery,
    /// The body posted (`type`, `timestamp`, `data`: the event's envelope).
    payload: serde_json::Value,
    /// Every attempt, first first.
    attempt_log: Vec<Attempt>,
}

fn delivery_not_found(id: Uuid) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::WebhookDeliveryNotFound,
        format!("this endpoint has no delivery {id}"),
    )
}

/// One delivery with its body and every attempt.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries/{delivery_id}", tag = "webhooks",
    operation_id = "read_webhook_delivery",
    params(("id" = Uuid, Path, description = "The endpoint"),
        ("delivery_id" = Uuid, Path, description = "The delivery")),
    responses((status = 200, description = "The delivery", body = DeliveryDetail),
        (status = 404, description = "No such endpoint or delivery", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub(crate) async fn read_webhook_delivery(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<DeliveryDetail>, Problem> {
    endpoint_exists(&app, &caller, id).await?;
    let (delivery, payload) = store::get_delivery(&app.pool, &caller.tenant, id, delivery_id)
        .await?
        .ok_or_else(|| delivery_not_found(delivery_id))?;
    let attempt_log = store::attempts(&app.pool, &caller.tenant, delivery_id).await?;
    Ok(Json(DeliveryDetail {
        delivery,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        attempt_log,
    }))
}

/// Send a delivery again, now, at the start of the retry schedule (same `webhook-id`, so a
/// receiver that has it already can drop it). Its earlier attempts stay in the log.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    operation_id = "replay_webhook_delivery",
    params(("id" = Uuid, Path, description = "The endpoint"),
        ("delivery_id" = Uuid, Path, description = "The delivery")),
    responses((status = 202, description = "Queued again", body = Delivery),
        (status = 404, description = "No such endpoint or delivery", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub(crate) async fn replay_webhook_delivery(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(Uuid, Uuid)>,
) -> Result<(StatusCode, Json<Delivery>), Problem> {
    endpoint_exists(&app, &caller, id).await?;
    let delivery = store::replay(&app.pool, &caller.tenant, id, delivery_id)
        .await?
        .ok_or_else(|| delivery_not_found(delivery_id))?;
    app.webhook_queued.notify_one();
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

/// Which failed deliveries to send again.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recovery {
    /// Every failed delivery queued since this time.
    since: DateTime<Utc>,
}

/// How many deliveries were queued again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Recovered {
    /// Failed deliveries queued again.
    requeued: u64,
}

/// Send again every failed delivery of the endpoint queued since a time (after an outage of
/// the receiver).
#[utoipa::path(post, path = "/v1/webhooks/{id}/recover", tag = "webhooks",
    operation_id = "recover_webhook",
    params(("id" = Uuid, Path, description = "The endpoint")), request_body = Recovery,
    responses((status = 202, description = "Queued again", body = Recovered),
        (status = 404, description = "No such endpoint (`webhook_not_found`)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub(crate) async fn recover_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<Recovery>,
) -> Result<(StatusCode, Json<Recovered>), Problem> {
    endpoint_exists(&app, &caller, id).await?;
    let requeued = store::recover(&app.pool, &caller.tenant, id, body.since).await?;
    app.webhook_queued.notify_one();
    Ok((StatusCode::ACCEPTED, Json(Recovered { requeued })))
}
