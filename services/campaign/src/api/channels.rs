//! Channels (sender settings, providers, webhook endpoints) and the tenant's contact policy
//! (frequency caps, quiet hours, global control group). Secrets are write-only: a webhook
//! channel gets a generated `whsec_` secret shown once; `rotate` adds a new one while the old
//! stays valid, so receivers can switch without missing a call.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_service::{Code, Problem, TenantAnd, TenantPath};

use super::bodies::{ChannelBody, ChannelList, ChannelView};
use super::{actor, ApiState};
use crate::domain::channels::{valid_key, Settings};
use crate::domain::gate::policy::ContactPolicy;
use crate::domain::webhooks::Secret;
use crate::store::{channels, policies};

pub(crate) fn routes() -> Router<ApiState> {
    let base = "/internal/v1/tenants/{tenant}/channels";
    Router::new()
        .route(base, get(list))
        .route(&format!("{base}/{{key}}"), get(read).put(put))
        .route(&format!("{base}/{{key}}/rotate"), post(rotate))
        .route(
            "/internal/v1/tenants/{tenant}/contact-policy",
            get(policy).put(put_policy),
        )
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        Code::InvalidChannel,
        detail,
    )
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::ChannelNotFound,
        "no channel with this key",
    )
}

async fn put(
    State(s): State<ApiState>,
    TenantAnd(tenant, key): TenantAnd<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ChannelView>, Problem> {
    if !valid_key(&key) {
        return Err(invalid("a channel key is 1 to 64 of a-z, 0-9, '_' and '-'"));
    }
    let b: ChannelBody = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidBody,
            format!(
                "the body is {{\"settings\": {{\"kind\": \"email\", \"from\": \"…\"}}}} (or sms, \
                 push with \"token\", webhook with \"url\"): {e}"
            ),
        )
    })?;
    b.settings.check().map_err(invalid)?;
    let mut conn = s.pool.acquire().await?;
    let existing = channels::get(&mut conn, &tenant, &key).await?;
    let (secrets, shown) = match (&b.settings, b.token, &existing) {
        (Settings::Webhook { .. }, _, Some((_, old))) if !old.is_empty() => (None, None),
        (Settings::Webhook { .. }, _, _) => {
            let secret = Secret::generate().expose();
            (Some(vec![secret.clone()]), Some(secret))
        }
        (_, Some(token), _) => (Some(vec![token]), None),
        (_, None, _) => (None, None),
    };
    let row = channels::put(
        &mut conn,
        &tenant,
        &key,
        &b.settings,
        secrets.as_deref(),
        &actor(&headers),
    )
    .await?;
    Ok(Json(ChannelView {
        channel: row,
        secret: shown,
    }))
}

async fn rotate(
    State(s): State<ApiState>,
    TenantAnd(tenant, key): TenantAnd<String>,
    headers: HeaderMap,
) -> Result<Json<ChannelView>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let (row, old) = channels::get(&mut conn, &tenant, &key)
        .await?
        .ok_or_else(not_found)?;
    if !matches!(row.settings, Settings::Webhook { .. }) {
        return Err(invalid(
            "only webhook channels have signing secrets to rotate",
        ));
    }
    let secret = Secret::generate().expose();
    // The new secret first; the newest old one stays valid until the next rotation.
    let secrets: Vec<String> = std::iter::once(secret.clone())
        .chain(old.into_iter().take(1))
        .collect();
    let row = channels::put(
        &mut conn,
        &tenant,
        &key,
        &row.settings,
        Some(&secrets),
        &actor(&headers),
    )
    .await?;
    Ok(Json(ChannelView {
        channel: row,
        secret: Some(secret),
    }))
}

async fn read(
    State(s): State<ApiState>,
    TenantAnd(tenant, key): TenantAnd<String>,
) -> Result<Json<crate::store::channels::ChannelRow>, Problem> {
    let mut conn = s.pool.acquire().await?;
    let (row, _) = channels::get(&mut conn, &tenant, &key)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(row))
}

async fn list(
    State(s): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<ChannelList>, Problem> {
    let mut conn = s.pool.acquire().await?;
    Ok(Json(ChannelList {
        items: channels::list(&mut conn, &tenant).await?,
    }))
}

async fn policy(
    State(s): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<ContactPolicy>, Problem> {
    let mut conn = s.pool.acquire().await?;
    Ok(Json(policies::get(&mut conn, &tenant).await?))
}

async fn put_policy(
    State(s): State<ApiState>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ContactPolicy>, Problem> {
    let p: ContactPolicy = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidBody,
            format!(
                "the body is {{\"caps\": [{{\"channel\": \"email\", \"max\": 2, \"window\": \
                 {{\"rolling_hours\": 24}}}}], \"quiet_hours\": {{\"start\": \"21:00\", \"end\": \
                 \"08:00\", \"policy\": \"defer\"}}, \"global_holdout_percent\": 5}}: {e}"
            ),
        )
    })?;
    p.check()
        .map_err(|m| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidPolicy, m))?;
    let mut conn = s.pool.acquire().await?;
    policies::put(&mut conn, &tenant, &p, &actor(&headers)).await?;
    Ok(Json(p))
}
