//! Templates: create or replace, read, list, delete, and preview (render a stored or a draft
//! template with a sample customer). A template is checked when saved: errors name the part,
//! the line and the column.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use crm_service::{Code, Problem, TenantAnd, TenantPath};
use serde_json::json;

use super::bodies::{Draft, Sample, TemplateBody, TemplateList, TemplateView, TestSend, TestSent};
use super::{actor, ApiState};
use crate::domain::channels::valid_key;
use crate::domain::journeys::Channel;
use crate::domain::suppression::{channel_of, normalise};
use crate::domain::templates::{self, Limits, Parts, Rendered, TemplateError};
use crate::store::templates::{self as store, Template};
use crate::test_sends;

pub(crate) fn routes() -> Router<ApiState> {
    let base = "/internal/v1/tenants/{tenant}/templates";
    Router::new()
        .route(base, get(list))
        .route(&format!("{base}/preview"), post(preview_draft))
        .route(
            &format!("{base}/{{key}}"),
            get(read).put(put).delete(delete),
        )
        .route(&format!("{base}/{{key}}/preview"), post(preview))
        .route(&format!("{base}/{{key}}/test-send"), post(test_send))
}

/// Sends the template once to one address (sample data empty, no consent needed, the
/// suppression list still applies), through the delivery loop like any message: 202 with the
/// message id to follow.
async fn test_send(
    State(s): State<ApiState>,
    TenantAnd(tenant, key): TenantAnd<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<TestSent>), Problem> {
    let b: TestSend = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidBody,
            format!("the body is {{\"address\": \"…\"}}: {e}"),
        )
    })?;
    let mut conn = s.pool.acquire().await?;
    let t = store::get(&mut conn, &tenant, &key)
        .await?
        .ok_or_else(not_found)?;
    let channel = channel_of(&t.channel).unwrap_or(Channel::Email);
    let address = normalise(channel, &b.address)
        .map_err(|m| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidBody, m))?;
    let id = test_sends::queue(&mut conn, &tenant, &key, channel, &address).await?;
    s.sends.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(TestSent {
            message_id: id,
            address,
        }),
    ))
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        Code::InvalidTemplate,
        detail,
    )
}

fn template_error(e: &TemplateError) -> Problem {
    invalid(format!(
        "{} line {} column {}: {} ({})",
        e.part, e.line, e.column, e.message, e.code
    ))
    .with("errors", json!([e]))
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::TemplateNotFound,
        "no template with this key",
    )
}

fn parse(body: &[u8]) -> Result<TemplateBody, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidBody,
            format!(
                "the body is {{\"channel\": \"email|sms|push\", \"subject\": \"…\", \"html\": \
                 \"…\", \"text\": \"…\", \"message_type\": \"marketing\", \"purpose\": \
                 \"marketing|transactional\"}}: {e}"
            ),
        )
    })
}

async fn put(
    State(s): State<ApiState>,
    TenantAnd(tenant, key): TenantAnd<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<TemplateView>, Problem> {
    if !valid_key(&key) {
        return Err(invalid(
            "a template key is 1 to 64 of a-z, 0-9, '_' and '-'",
        ));
    }
    let b = parse(&body)?;
    if !matches!(b.channel.as_str(), "email" | "sms" | "push") {
        return Err(invalid("channel must be email, sms or push"));
    }
    for (field, v) in [("message_type", &b.message_type), ("purpose", &b.purpose)] {
        if !valid_key(v) {
            return Err(invalid(format!(
                "{field} is 1 to 64 of a-z, 0-9, '_' and '-'"
            )));
        }
    }
    let parts = Parts {
        subject: b.subject,
        html: b.html,
        text: b.text,
    };
    templates::check(&parts, &Limits::default()).map_err(|e| template_error(&e))?;
    let t = Template {
        key,
        channel: b.channel,
        message_type: b.message_type,
        purpose: b.purpose,
        parts,
        version: 1,
        updated_at: Utc::now(),
    };
    let mut conn = s.pool.acquire().await?;
    Ok(Json(
        store::put(&mut conn, &tenant, &t, &actor(&headers))
            .await?
            .into(),
    ))
}

async fn read(
    State(s): State<ApiState>,
    TenantAnd(tenant, key): TenantAnd<String>,
) -> Result<Json<TemplateView>, Problem> {
    let mut conn = s.pool.acquire().await?;
    store::get(&mut conn, &tenant, &key)
        .await?
        .map(|t| Json(t.into()))
        .ok_or_else(not_found)
}

async fn list(
    State(s): State<ApiState>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<TemplateList>, Problem> {
    let mut conn = s.pool.acquire().await?;
    Ok(Json(TemplateList {
        items: store::list(&mut conn, &tenant)
            .await?
            .into_iter()
            .map(TemplateView::from)
            .collect(),
    }))
}

async fn delete(
    State(s): State<ApiState>,
    TenantAnd(tenant, key): TenantAnd<String>,
) -> Result<StatusCode, Problem> {
    let mut conn = s.pool.acquire().await?;
    if store::delete(&mut conn, &tenant, &key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

fn render(parts: &Parts, sample: &Sample) -> Result<Json<Rendered>, Problem> {
    let context = json!({"customer": sample.traits, "traits": sample.traits,
                         "stage": sample.stage, "tier": sample.tier, "segments": sample.segments});
    let rendered =
        templates::render(parts, &context, &Limits::default()).map_err(|e| template_error(&e))?;
    Ok(Json(rendered))
}

fn sample_of(body: &[u8]) -> Result<Sample, Problem> {
    if body.is_empty() {
        return Ok(Sample::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidBody,
            format!("the body is a sample customer {{\"traits\": {{…}}, \"stage\", \"tier\", \"segments\"}}: {e}"),
        )
    })
}

async fn preview(
    State(s): State<ApiState>,
    TenantAnd(tenant, key): TenantAnd<String>,
    body: axum::body::Bytes,
) -> Result<Json<Rendered>, Problem> {
    let sample = sample_of(&body)?;
    let mut conn = s.pool.acquire().await?;
    let t = store::get(&mut conn, &tenant, &key)
        .await?
        .ok_or_else(not_found)?;
    render(&t.parts, &sample)
}

async fn preview_draft(
    TenantPath(_tenant): TenantPath,
    body: axum::body::Bytes,
) -> Result<Json<Rendered>, Problem> {
    let draft: Draft = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidBody,
            format!("the body is {{\"template\": {{\"subject\", \"html\", \"text\"}}, \"sample\": {{…}}}}: {e}"),
        )
    })?;
    let sample = draft.sample.unwrap_or_default();
    templates::check(&draft.template, &Limits::default()).map_err(|e| template_error(&e))?;
    render(&draft.template, &sample)
}
