//! Journeys: create and edit drafts (checked, errors with a JSON pointer), list, read, the
//! published versions, the lifecycle (publish, pause, resume, archive), moving running
//! instances to the live version, and a test send of the draft's messages to one address.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_service::{Code, Problem, TenantAnd, TenantPath};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::actor;
use super::bodies::{
    JourneyList, JourneyTestSend, JourneyTestSent, JourneyVersion, JourneyVersions, Migrated,
    TestMessage,
};
use crate::domain::journeys::lifecycle::Action;
use crate::domain::journeys::{parse, Channel, JourneyError, Limits, Node};
use crate::domain::suppression::{channel_str, normalise};
use crate::store::instances;
use crate::store::journeys::{self, JourneyStoreError};
use crate::test_sends;

pub(crate) fn routes() -> Router<super::ApiState> {
    let base = "/internal/v1/tenants/{tenant}/journeys";
    Router::new()
        .route(base, get(list).post(create))
        .route(&format!("{base}/{{id}}"), get(read).put(update))
        .route(&format!("{base}/{{id}}/versions"), get(versions))
        .route(&format!("{base}/{{id}}/publish"), post(publish))
        .route(&format!("{base}/{{id}}/pause"), post(pause))
        .route(&format!("{base}/{{id}}/resume"), post(resume))
        .route(&format!("{base}/{{id}}/archive"), post(archive))
        .route(&format!("{base}/{{id}}/migrate"), post(migrate))
        .route(&format!("{base}/{{id}}/test-send"), post(test_send))
}

/// Sends every `send` node of the journey's draft on the address's channel (default email)
/// once to the address, in node-name order, through the delivery loop (no customer, no
/// consent needed, the suppression list applies): 202 with each node's message id.
async fn test_send(
    State(s): State<super::ApiState>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let b: JourneyTestSend = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidBody,
            format!("the body is {{\"address\": \"…\", \"channel\": \"email|sms|push\"}}: {e}"),
        )
    })?;
    let channel = b.channel.unwrap_or(Channel::Email);
    let address = normalise(channel, &b.address)
        .map_err(|m| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidBody, m))?;
    let mut tx = s.pool.begin().await?;
    let row = journeys::get(&mut tx, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    let journey = parse(row.draft, &Limits::default()).map_err(invalid)?;
    let mut sent = Vec::new();
    for (node, n) in &journey.nodes {
        if let Node::Send {
            template,
            channel: c,
            ..
        } = n
        {
            if *c == channel {
                let m = test_sends::queue(&mut tx, &tenant, template, channel, &address).await?;
                sent.push(TestMessage {
                    node: node.clone(),
                    template: template.clone(),
                    message_id: m,
                });
            }
        }
    }
    if sent.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidBody,
            format!(
                "the journey has no send node on channel {}",
                channel_str(channel)
            ),
        ));
    }
    tx.commit().await?;
    s.sends.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(JourneyTestSent {
            address,
            messages: sent,
        }),
    )
        .into_response())
}

/// A definition from the body, checked; 422 `invalid_journey` with the JSON pointer.
fn definition(body: &[u8]) -> Result<(String, Value), Problem> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidJson,
            format!("the body is not JSON: {e}"),
        )
    })?;
    let journey = parse(value.clone(), &Limits::default()).map_err(invalid)?;
    Ok((journey.name, value))
}

fn invalid(e: JourneyError) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        Code::InvalidJourney,
        format!(
            "{}: {}",
            if e.path.is_empty() { "/" } else { &e.path },
            e.message
        ),
    )
    .with("path", json!(e.path))
}

fn store_problem(e: JourneyStoreError) -> Problem {
    match e {
        JourneyStoreError::NotFound => not_found(),
        JourneyStoreError::NotAllowed(why) => {
            Problem::new(StatusCode::CONFLICT, Code::InvalidState, why)
        }
        JourneyStoreError::Db(e) => e.into(),
    }
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::JourneyNotFound,
        "no journey with this id for this tenant",
    )
}

async fn list(
    State(pool): State<PgPool>,
    TenantPath(tenant): TenantPath,
) -> Result<Json<JourneyList>, Problem> {
    let mut conn = pool.acquire().await?;
    let items = journeys::list(&mut conn, &tenant).await?;
    Ok(Json(JourneyList { items }))
}

async fn create(
    State(pool): State<PgPool>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let (name, value) = definition(&body)?;
    let mut conn = pool.acquire().await?;
    let row = journeys::create(&mut conn, &tenant, &name, &value, &actor(&headers))
        .await
        .map_err(store_problem)?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

async fn read(
    State(pool): State<PgPool>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Response, Problem> {
    let mut conn = pool.acquire().await?;
    let row = journeys::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(row).into_response())
}

async fn update(
    State(pool): State<PgPool>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let (name, value) = definition(&body)?;
    let mut tx = pool.begin().await?;
    let row = journeys::update_draft(&mut tx, &tenant, id, &name, &value, &actor(&headers))
        .await
        .map_err(store_problem)?;
    tx.commit().await?;
    Ok(Json(row).into_response())
}

async fn versions(
    State(pool): State<PgPool>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<JourneyVersions>, Problem> {
    let mut conn = pool.acquire().await?;
    journeys::get(&mut conn, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    let items = journeys::versions(&mut conn, &tenant, id)
        .await?
        .into_iter()
        .map(|(version, definition)| JourneyVersion {
            version,
            definition,
        })
        .collect();
    Ok(Json(JourneyVersions {
        journey_id: id,
        items,
    }))
}

async fn act(
    pool: &PgPool,
    tenant: &crm_envelope::TenantId,
    id: Uuid,
    action: Action,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let mut tx = pool.begin().await?;
    let row = journeys::act(&mut tx, tenant, id, action, &actor(headers))
        .await
        .map_err(store_problem)?;
    tx.commit().await?;
    Ok(Json(row).into_response())
}

async fn publish(
    State(pool): State<PgPool>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    act(&pool, &tenant, id, Action::Publish, &headers).await
}

async fn pause(
    State(pool): State<PgPool>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    act(&pool, &tenant, id, Action::Pause, &headers).await
}

async fn resume(
    State(pool): State<PgPool>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    act(&pool, &tenant, id, Action::Resume, &headers).await
}

async fn archive(
    State(pool): State<PgPool>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    act(&pool, &tenant, id, Action::Archive, &headers).await
}

/// Moves running instances to the live version, where their node exists in it (publishing
/// alone moves nobody): `{"version", "moved", "left"}`.
async fn migrate(
    State(pool): State<PgPool>,
    TenantAnd(tenant, id): TenantAnd<Uuid>,
) -> Result<Json<Migrated>, Problem> {
    let mut tx = pool.begin().await?;
    let row = journeys::get(&mut tx, &tenant, id)
        .await?
        .ok_or_else(not_found)?;
    let Some(version) = row.published_version else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            Code::InvalidStatus,
            "the journey was never published: there is no version to move instances to",
        ));
    };
    let definition = journeys::version(&mut tx, &tenant, id, version)
        .await?
        .ok_or_else(not_found)?;
    let nodes: Vec<String> = definition
        .get("nodes")
        .and_then(Value::as_object)
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    let (moved, left) = instances::migrate(&mut tx, &tenant, id, version, &nodes).await?;
    tx.commit().await?;
    Ok(Json(Migrated {
        journey_id: id,
        version,
        moved,
        left,
    }))
}
