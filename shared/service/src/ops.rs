//! `/healthz`, `/readyz` and `/metrics`, the same on every part.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use crm_cache::ProfileCache;
use crm_kafka::Producer;
use crm_telemetry::Metrics;
use serde_json::json;
use sqlx::PgPool;

/// What readiness checks.
#[derive(Clone)]
pub(crate) struct Checks {
    pub pool: PgPool,
    pub cache: Arc<ProfileCache>,
    pub producer: Producer,
    pub metrics: Metrics,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn routes(checks: Checks) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(checks)
}

/// 200 when PostgreSQL, Redis and Kafka all answer; 503 naming the ones that do not.
async fn readyz(State(c): State<Checks>) -> impl IntoResponse {
    let postgres = async {
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&c.pool))
            .await
            .is_ok_and(|r| r.is_ok())
    };
    let (postgres, redis, kafka) = tokio::join!(
        postgres,
        c.cache.ping(),
        c.producer.broker_reachable(CHECK_TIMEOUT)
    );
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let ready = postgres && redis && kafka;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {"postgres": word(postgres), "redis": word(redis), "kafka": word(kafka)},
    });
    (status, Json(body))
}

async fn metrics(State(c): State<Checks>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        c.metrics.render(),
    )
}
