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

/// 200 when PostgreSQL and Kafka answer, 503 naming the one that does not. Redis is a cache,
/// not a dependency: when it does not answer the part still serves (reads go to the owner), so
/// readiness stays 200 with `"status": "degraded"` and `"redis": "degraded"`.
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
    let ready = postgres && kafka;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let summary = match (ready, redis) {
        (false, _) => "not_ready",
        (true, false) => "degraded",
        (true, true) => "ready",
    };
    let body = json!({
        "status": summary,
        "checks": {
            "postgres": word(postgres),
            "redis": if redis { "ok" } else { "degraded" },
            "kafka": word(kafka),
        },
    });
    (status, Json(body))
}

async fn metrics(State(c): State<Checks>) -> impl IntoResponse {
    c.metrics
        .redis_circuit_open
        .set(i64::from(c.cache.is_down()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        c.metrics.render(),
    )
}
