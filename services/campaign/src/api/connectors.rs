//! Social connectors: create, list, read (with health and the webhook URL to register with
//! the network), change (terms, account, enabled, a new secret for a rotation), and the
//! network's calls the gateway's public `/hooks/social/...` route forwards (X's CRC
//! challenge, signed payloads).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use crm_envelope::TenantId;
use crm_service::{Code, Problem, TenantAnd, TenantPath};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::offers::{at_path, parsed};
use super::ApiState;
use crate::conversations::listening::{self, CallError};
use crate::domain::conversations::health::{health, Calls, Health};
use crate::domain::conversations::mention::Tracked;
use crate::domain::conversations::{by_name, NETWORKS};
use crate::store::connectors::{self, ConnectorRow, NewConnector};

pub(crate) fn routes() -> Router<ApiState> {
    let t = "/internal/v1/tenants/{tenant}";
    Router::new()
        .route(&format!("{t}/connectors"), get(list).post(create))
        .route(&format!("{t}/connectors/{{id}}"), get(read).patch(change))
        .route(
            "/internal/v1/social/{tenant}/{id}",
            get(challenge).post(receive),
        )
}

/// A new connector.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorRequest {
    /// Its name, unique in the tenant (1 to 100 characters).
    pub name: String,
    /// `mastodon`, `x`, `email` (an inbound email webhook) or `sms` (the SMS provider's
    /// inbound webhook, Twilio's format).
    pub network: String,
    /// The brand's handle on the network (its own posts are not mentions); email: the inbound
    /// address; SMS: the brand's number, E.164 (`+34910000000`).
    pub account: String,
    /// The network's signing secret (Mastodon: the webhook's secret; X: the app's consumer
    /// secret; SMS: the provider account's auth token). Write-only.
    pub secret: String,
    /// The terms to listen for.
    #[serde(default)]
    pub tracked: Tracked,
    /// The network's API address replies are posted to (Mastodon: the server,
    /// `https://mastodon.social`; X: `https://api.x.com`).
    pub api_url: Option<String>,
    /// The brand account's access token for posting replies (Mastodon: an application token
    /// with `write:statuses`; X: an OAuth 2.0 user token with `tweet.write` and `dm.write`).
    /// Write-only. SMS replies go out through the tenant's SMS channel instead.
    pub api_token: Option<String>,
}

/// A change to a connector.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorPatch {
    /// New terms.
    pub tracked: Option<Tracked>,
    /// A new brand handle.
    pub account: Option<String>,
    /// Take calls or not.
    pub enabled: Option<bool>,
    /// A new secret; the previous one stays valid until the next rotation.
    pub secret: Option<String>,
    /// A new API address for replies.
    pub api_url: Option<String>,
    /// A new access token for replies (write-only).
    pub api_token: Option<String>,
}

/// A connector with its health and the URL the network calls.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConnectorView {
    /// The connector.
    #[serde(flatten)]
    pub connector: ConnectorRow,
    /// Its health now.
    pub health: Health,
    /// The URL to register with the network.
    pub webhook_url: String,
}

/// The tenant's connectors.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConnectorList {
    /// By name.
    pub items: Vec<ConnectorView>,
}

fn view(s: &ApiState, tenant: &TenantId, c: ConnectorRow) -> ConnectorView {
    let calls = Calls {
        enabled: c.enabled,
        last_received_at: c.last_received_at,
        failures_in_row: c.failures_in_row,
        last_failure: c.last_failure.as_deref(),
    };
    ConnectorView {
        health: health(calls, Utc::now()),
        webhook_url: webhook_url(s, tenant, c.id),
        connector: c,
    }
}

/// The public address the network calls for connector `id` (the gateway's
/// `/hooks/social/...`, forwarded here); SMS providers sign it.
fn webhook_url(s: &ApiState, tenant: &TenantId, id: Uuid) -> String {
    format!(
        "{}/hooks/social/{tenant}/{id}",
        s.delivery.tracking.base_url.trim_end_matches('/')
    )
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::ConnectorNotFound,
        "no connector with this id for this tenant",
    )
}

fn text_ok(t: &str, max: usize) -> bool {
    !t.trim().is_empty() && t.chars().count() <= max && !t.contains('\0')
}

fn check_secret(secret: &str) -> Result<(), Problem> {
    if secret.len() < 16 || secret.len() > 512 || secret.contains('\0') {
        return Err(at_path(
            Code::InvalidConnector,
            "/secret",
            "16 to 512 characters, as the network issued it",
        ));
    }
    Ok(())
}

fn check_api(url: Option<&str>, token: Option<&str>) -> Result<(), Problem> {
    if let Some(u) = url {
        let ok = reqwest::Url::parse(u)
            .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host_str().is_some());
        if !ok || u.len() > 500 {
            return Err(at_path(
                Code::InvalidConnector,
                "/api_url",
                "the network's API address, http or https",
            ));
        }
    }
    if token
        .is_some_and(|t| t.trim().is_empty() || t.len() > 4000 || t.contains(['\0', '\r', '\n']))
    {
        return Err(at_path(
            Code::InvalidConnector,
            "/api_token",
            "the access token, as the network issued it",
        ));
    }
    Ok(())
}

fn check_terms(tracked: &Tracked) -> Result<(), Problem> {
    tracked
        .check()
        .map_err(|(path, m)| at_path(Code::InvalidConnector, &format!("/tracked{path}"), &m))
}

async fn create(
    State(s): State<ApiState>,
    TenantPath(tenant): TenantPath,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let r: ConnectorRequest = parsed(&body, Code::InvalidConnector)?;
    if !text_ok(&r.name, 100) {
        return Err(at_path(
            Code::InvalidConnector,
            "/name",
            "1 to 100 characters, not blank",
        ));
    }
    if by_name(&r.network).is_none() {
        return Err(at_path(
            Code::InvalidConnector,
            "/network",
            &format!("one of {}", NETWORKS.join(", ")),
        ));
    }
    if !text_ok(&r.account, 200) {
        return Err(at_path(
            Code::InvalidConnector,
            "/account",
            "the brand's handle on the network",
        ));
    }
    check_secret(&r.secret)?;
    check_terms(&r.tracked)?;
    check_api(r.api_url.as_deref(), r.api_token.as_deref())?;
    let account = r.account.trim().trim_start_matches('@').to_lowercase();
    let new = NewConnector {
        id: Uuid::now_v7(),
        name: r.name.trim(),
        network: &r.network,
        account: &account,
        tracked: &r.tracked,
        secret: &r.secret,
        api_url: r.api_url.as_deref(),
        api_token: r.api_token.as_deref(),
    };
    let mut conn = s.pool.acquire().await?;
    let Some(row) = connectors::create(&mut conn, &tenant, &new).await? else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            Code::ConnectorNameTaken,
            "the tenant has a connector of this name",
        ));
    };
    Ok((StatusCode::CREATED, Json(view(&s, &tenant, row))).into_response())
}

async fn list(
    State(s): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<ConnectorList>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let rows = connectors::list(&mut conn, &tenant).await?;
    Ok(Json(ConnectorList {
        items: rows.into_iter().map(|c| view(&s, &tenant, c)).collect(),
    }))
}

async fn read(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<ConnectorView>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let row = connectors::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(view(&s, &tenant, row)))
}

async fn change(
    State(s): State<ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    body: axum::body::Bytes,
) -> Result<Json<ConnectorView>, Problem> {
    let p: ConnectorPatch = parsed(&body, Code::InvalidConnector)?;
    if let Some(t) = &p.tracked {
        check_terms(t)?;
    }
    if let Some(secret) = &p.secret {
        check_secret(secret)?;
    }
    check_api(p.api_url.as_deref(), p.api_token.as_deref())?;
    let account = match &p.account {
        Some(a) if !text_ok(a, 200) => {
            return Err(at_path(
                Code::InvalidConnector,
                "/account",
                "the brand's handle on the network",
            ))
        }
        Some(a) => Some(a.trim().trim_start_matches('@').to_lowercase()),
        None => None,
    };
    let mut conn = s.pool.acquire().await?;
    let change = connectors::Change {
        tracked: p.tracked.as_ref(),
        account: account.as_deref(),
        enabled: p.enabled,
        secret: p.secret.as_deref(),
        api_url: p.api_url.as_deref(),
        api_token: p.api_token.as_deref(),
    };
    let row = connectors::change(&mut conn, &tenant, id, &change)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(view(&s, &tenant, row)))
}

fn call_problem(e: CallError) -> Problem {
    match e {
        CallError::NotFound => not_found(),
        CallError::Disabled => Problem::new(
            StatusCode::FORBIDDEN,
            Code::ConnectorDisabled,
            "the connector is disabled",
        ),
        CallError::Signature => Problem::new(
            StatusCode::UNAUTHORIZED,
            Code::InvalidSignature,
            "the signature does not verify with the connector's secret",
        ),
        CallError::Payload(m) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidPayload, m)
        }
        CallError::Db(e) => e.into(),
    }
}

fn ids(tenant: &str, id: &str) -> Result<(TenantId, Uuid), Problem> {
    match (TenantId::parse(tenant), id.parse::<Uuid>()) {
        (Ok(t), Ok(i)) => Ok((t, i)),
        _ => Err(not_found()),
    }
}

#[derive(Debug, Deserialize)]
struct Crc {
    crc_token: Option<String>,
}

/// X's CRC challenge of the webhook URL.
async fn challenge(
    State(s): State<ApiState>,
    Path((tenant, id)): Path<(String, String)>,
    Query(q): Query<Crc>,
) -> Result<Json<serde_json::Value>, Problem> {
    let (tenant, id) = ids(&tenant, &id)?;
    let Some(token) = q.crc_token.filter(|t| !t.is_empty() && t.len() <= 1024) else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidPayload,
            "a challenge carries crc_token",
        ));
    };
    listening::challenge(&s.pool, &tenant, id, &token)
        .await
        .map_err(call_problem)?
        .map(Json)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidPayload,
                "this connector's network has no URL challenge",
            )
        })
}

/// What a call did.
#[derive(Debug, Serialize)]
struct Received {
    read: usize,
    published: usize,
}

/// A signed call of the network.
async fn receive(
    State(s): State<ApiState>,
    Path((tenant, id)): Path<(String, String)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let (tenant, id) = ids(&tenant, &id)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut url = webhook_url(&s, &tenant, id);
    if let Some(q) = query {
        url = format!("{url}?{q}");
    }
    let taken = listening::receive(&s.pool, &tenant, id, header, &url, &body)
        .await
        .map_err(call_problem)?;
    if taken.published > 0 {
        s.delivery.relay.notify_one();
    }
    if let Some((content_type, body)) = taken.acknowledgement {
        return Ok(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response());
    }
    Ok(Json(serde_json::json!(Received {
        read: taken.read,
        published: taken.published
    }))
    .into_response())
}
