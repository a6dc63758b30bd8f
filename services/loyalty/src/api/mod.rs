//! Loyalty's internal HTTP API, reached only through the gateway, which authenticates the
//! caller, enforces `Idempotency-Key` on writes and passes the key on. Loyalty applies each
//! write once per key itself ([`keyed`]): the answer is stored in the write's transaction, and
//! a retried forward gets it back instead of a second effect.

mod accounts;
pub mod bodies;
mod keyed;
mod programme;
mod rewards;

use crm_envelope::TenantId;
use crm_service::Code;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use crm_service::Problem;
use serde::de::DeserializeOwned;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;

use crate::domain::programme::Programme;
use crate::store::ledger::PostError;
use crate::store::programmes;
use crate::store::rewards::OpError;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) pool: PgPool,
    /// Wakes the outbox relay after a commit that enqueued messages.
    pub(crate) relay: Arc<Notify>,
}

pub(crate) fn routes(state: ApiState) -> Router {
    programme::routes()
        .merge(accounts::routes())
        .merge(rewards::routes())
        .with_state(state)
}

/// A JSON body, or 400 `invalid_body`.
pub(crate) fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidBody,
            format!("the body is not what this call takes: {e}"),
        )
    })
}

/// The request's idempotency key (passed on by the gateway), or 400.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_owned)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                Code::IdempotencyKeyRequired,
                "send an Idempotency-Key header (1 to 255 characters) with every write",
            )
        })
}

pub(crate) use crm_service::actor;

/// The tenant's programme, or 409 `no_programme`.
pub(crate) async fn programme_of(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Programme, Problem> {
    programmes::load(conn, tenant).await?.ok_or_else(|| {
        Problem::new(
            StatusCode::CONFLICT,
            Code::NoProgramme,
            "configure the programme first: PUT /v1/loyalty/programme",
        )
    })
}

/// An operation's refusal as problem+json with a stable code.
pub(crate) fn op_problem(e: OpError) -> Problem {
    match e {
        OpError::Insufficient { balance, needed } => Problem::new(
            StatusCode::CONFLICT,
            Code::InsufficientPoints,
            format!("the customer has {balance} points; {needed} are needed"),
        )
        .with("balance", balance.into())
        .with("needed", needed.into()),
        OpError::NotFound(what) => Problem::new(StatusCode::NOT_FOUND, Code::NotFound, what),
        OpError::Unavailable(m) => Problem::new(StatusCode::CONFLICT, Code::RewardUnavailable, m),
        OpError::State(m) => Problem::new(StatusCode::CONFLICT, Code::InvalidState, m),
        OpError::Duplicate => Problem::new(
            StatusCode::CONFLICT,
            Code::AlreadyApplied,
            "a request with this idempotency key was already applied",
        ),
        OpError::Invalid(m) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidRequest, m)
        }
        OpError::Post(PostError::Insufficient { balance, .. }) => Problem::new(
            StatusCode::CONFLICT,
            Code::InsufficientPoints,
            format!("the posting would leave {balance} points"),
        ),
        OpError::Post(PostError::Db(e)) => e.into(),
        OpError::Post(e @ PostError::Unbalanced(..)) => {
            Problem::internal(&anyhow::anyhow!(e.to_string()))
        }
    }
}
