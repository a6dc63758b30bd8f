//! Social listening through the gateway: the tenant's connectors to social networks (`admin`
//! writes, `read` looks; each with its health and the URL to register with the network), and
//! the public `/hooks/social/{tenant}/{id}` route the networks call, with no API key: the
//! call's signature, checked by campaign with the connector's secret, is its authentication.
//! The body is passed on byte for byte (the signature covers it).

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use crm_service::{Code, Problem};
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::pipeline::{read, write, KEY};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/connectors",
            needs(Scope::Read, get(list_connectors))
                .merge(needs(Scope::Admin, axum::routing::post(create_connector))),
        )
        .route(
            "/v1/connectors/{id}",
            needs(Scope::Read, get(read_connector))
                .merge(needs(Scope::Admin, axum::routing::patch(change_connector))),
        )
        .route(
            "/v1/conversations",
            needs(Scope::Read, get(list_conversations)),
        )
        .route(
            "/v1/conversations/{id}",
            needs(Scope::Read, get(read_conversation)).merge(needs(
                Scope::Sales,
                axum::routing::patch(change_conversation),
            )),
        )
        .route(
            "/v1/conversations/{id}/replies",
            needs(Scope::Sales, axum::routing::post(reply_conversation)),
        )
        .route(
            "/hooks/social/{tenant}/{id}",
            get(social_call).post(social_call),
        )
}

/// Create a connector to a social network (`mastodon`: a server webhook for
/// `status.created`; `x`: the Account Activity webhook) with the terms it listens for. The
/// answer holds `webhook_url`, to register with the network. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/connectors", tag = "conversations",
    params(("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::ConnectorRequest, example = json!({"name": "Mastodon", "network": "mastodon", "account": "acme", "secret": "a-webhook-secret-from-mastodon", "tracked": {"keywords": ["acme boots"], "hashtags": ["acme"], "handles": ["acme"]}})),
    responses((status = 201, description = "The connector, its health and its webhook URL", body = crm_campaign::bodies::ConnectorView),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "connector_name_taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_connector: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn create_connector(
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
        "connectors",
        body,
    )
    .await
}

/// The tenant's connectors with their health (`green`, `amber`: no call yet or none for a
/// day, `red`: the last call was refused, with why; `off`).
#[utoipa::path(get, path = "/v1/connectors", tag = "conversations",
    responses((status = 200, description = "The connectors", body = crm_campaign::bodies::ConnectorList)),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_connectors(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "connectors", &[]).await
}

/// One connector with its health.
#[utoipa::path(get, path = "/v1/connectors/{id}", tag = "conversations",
    params(("id" = Uuid, Path, description = "Connector id")),
    responses((status = 200, description = "The connector", body = crm_campaign::bodies::ConnectorView),
        (status = 404, description = "connector_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_connector(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("connectors/{id}"), &[]).await
}

/// Change a connector's terms, brand account or enabled flag, or give it a new secret (the
/// previous one stays valid until the next, so the network can be switched over). Needs
/// `Idempotency-Key`.
#[utoipa::path(patch, path = "/v1/connectors/{id}", tag = "conversations",
    params(("id" = Uuid, Path, description = "Connector id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::ConnectorPatch, example = json!({"tracked": {"hashtags": ["acme", "botas"]}})),
    responses((status = 200, description = "The connector", body = crm_campaign::bodies::ConnectorView),
        (status = 404, description = "connector_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_connector: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn change_connector(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("connectors/{id}");
    write(&app, &caller, &headers, reqwest::Method::PATCH, &path, body).await
}

/// Tenant ids and connector ids are short and plain: anything else is refused here.
fn plausible(tenant: &str, id: &str) -> bool {
    tenant.len() <= 63
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        && id.parse::<Uuid>().is_ok()
}

/// A network's call for a connector: X's CRC challenge (`GET ?crc_token=`) or a signed
/// payload (`POST`). No API key; 401 `invalid_signature` when the connector's secret does not
/// sign it. Like the tracking routes, it is left out of `/openapi.json`, which documents the
/// API keys' routes (docs/conversations.md documents it).
pub(crate) async fn social_call(
    State(app): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    if !plausible(&tenant, &id) {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            Code::ConnectorNotFound,
            "no such connector",
        ));
    }
    let mut path = format!("social/{tenant}/{id}");
    if let Some(q) = query.filter(|q| q.len() <= 2048) {
        path = format!("{path}?{q}");
    }
    let method = if method == axum::http::Method::POST {
        reqwest::Method::POST
    } else {
        reqwest::Method::GET
    };
    let pass = [
        "content-type",
        "x-hub-signature",
        "x-twitter-webhooks-signature",
        "x-inbound-signature",
        "x-twilio-signature",
    ];
    crate::tracking::forward(&app, method, path, &headers, &pass, body).await
}

/// Filters and keyset paging of `/v1/conversations`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub(crate) struct ConversationQuery {
    /// `open`, `pending`, `snoozed` or `resolved`.
    status: Option<String>,
    /// `low`, `normal`, `high` or `urgent`.
    priority: Option<String>,
    /// Who works them.
    assignee: Option<String>,
    /// `next_after` of the previous page.
    after: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
}

/// Conversation threads, newest first: direct messages and negative mentions from the social
/// connectors (a negative public mention at high priority, urgent at -0.6 or below), with
/// their status, priority, assignee, `waiting_since` and first-reply SLA.
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", params(ConversationQuery),
    responses((status = 200, description = "A page of conversations", body = crm_campaign::bodies::ConversationList),
        (status = 400, description = "Bad filter or limit", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_conversations(
    State(app): State<AppState>,
    caller: Caller,
    axum::extract::Query(q): axum::extract::Query<ConversationQuery>,
) -> Result<Response, Problem> {
    let pairs = [
        ("status", q.status),
        ("priority", q.priority),
        ("assignee", q.assignee),
        ("after", q.after.map(|a| a.to_string())),
        ("limit", q.limit.map(|l| l.to_string())),
    ];
    read(
        &app,
        &caller,
        "conversations",
        &crate::proxy::query_of(&pairs),
    )
    .await
}

/// One conversation with its messages.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses((status = 200, description = "The conversation", body = crm_campaign::bodies::ConversationDetail),
        (status = 404, description = "conversation_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_conversation(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("conversations/{id}"), &[]).await
}

/// Work a conversation: assign it, change its priority, mark it pending (waiting for the
/// contact), snooze it until a time, or resolve it. Needs `Idempotency-Key`.
#[utoipa::path(patch, path = "/v1/conversations/{id}", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::ConversationPatch, example = json!({"status": "snoozed", "snoozed_until": "2026-12-05T09:00:00Z", "assignee": "ana"})),
    responses((status = 200, description = "The conversation", body = crm_campaign::bodies::ConversationDetail),
        (status = 404, description = "conversation_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: a resolved conversation stays resolved", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_conversation: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn change_conversation(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("conversations/{id}");
    write(&app, &caller, &headers, reqwest::Method::PATCH, &path, body).await
}

/// Reply to a conversation: typed `text`, or a canned reply (`template`: a stored template,
/// rendered for the thread). The reply is queued and sent through the thread's channel (email:
/// the tenant's SMTP sender, threaded with `In-Reply-To` and `References`); the thread's detail
/// shows it `sent`, or `failed` with why. The first reply stops the first-reply SLA and an open
/// thread becomes pending. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/conversations/{id}/replies", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id"), ("Idempotency-Key" = String, Header, description = KEY)),
    request_body(content = crm_campaign::bodies::ReplyRequest, example = json!({"template": "sorry-for-the-delay", "author": "ana"})),
    responses((status = 202, description = "The reply, queued", body = crm_campaign::bodies::ReplyQueued),
        (status = 404, description = "conversation_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: the conversation is resolved", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_conversation: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["sales"])))]
pub(crate) async fn reply_conversation(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let path = format!("conversations/{id}/replies");
    write(&app, &caller, &headers, reqwest::Method::POST, &path, body).await
}
