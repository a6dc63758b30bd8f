//! `Idempotency-Key` on writes, with the semantics of Stripe's API: the first request with a key
//! runs and its response is stored; a replay with the same parameters returns that response
//! byte for byte (with `Idempotent-Replayed: true`); the same key with other parameters gives
//! 422 `idempotency_key_reused`; concurrent requests with one key make one effect (the others
//! wait for the first and replay it, or get 409 `idempotency_key_in_progress` after 10 s).
//! A response the part could not give (unreachable, 5xx) is not stored, so the client can
//! retry with the same key. Keys are kept 24 hours.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use crm_service::Problem;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::proxy::{passthrough, Upstream};
use crate::AppState;

/// How long a key is remembered.
const RETENTION: &str = "24 hours";
/// How long a request waits for another in flight with its key.
const WAIT: Duration = Duration::from_secs(10);

/// The request's key, or 400 `idempotency_key_required`.
fn key_of(headers: &HeaderMap) -> Result<String, Problem> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_owned)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "idempotency_key_required",
                "every write takes an Idempotency-Key header (1 to 255 characters, unique per intended effect, e.g. a UUID)",
            )
        })
}

fn fingerprint(method: &reqwest::Method, path: &str, body: Option<&serde_json::Value>) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str());
    h.update(b" ");
    h.update(path);
    h.update(b"\n");
    if let Some(b) = body {
        h.update(serde_json::to_vec(b).unwrap_or_default());
    }
    hex::encode(h.finalize())
}

fn stored(status: u16, content_type: &str, body: Vec<u8>, replayed: bool) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(axum::http::header::CONTENT_TYPE, v);
    }
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

/// Relays a write to `part`'s internal `path` once per idempotency key (see the module).
pub(crate) async fn write_once(
    app: &AppState,
    part: &Upstream,
    caller: &Caller,
    headers: &HeaderMap,
    method: reqwest::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<Response, Problem> {
    let key = key_of(headers)?;
    let tenant = caller.tenant.as_str();
    let print = fingerprint(&method, path, body);
    if rand::random::<u8>() == 0 {
        sqlx::query(&format!(
            "DELETE FROM idempotency_keys WHERE created_at < now() - interval '{RETENTION}'"
        ))
        .execute(&app.pool)
        .await?;
    }
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, fingerprint) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(&key)
    .bind(&print)
    .execute(&app.pool)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        return replay(app, tenant, &key, &print).await;
    }
    let answer = part
        .client(app)
        .call_as(
            method,
            &caller.tenant,
            path,
            &[],
            body,
            &[
                ("x-crm-actor", caller.actor.as_str()),
                ("idempotency-key", key.as_str()),
            ],
        )
        .await;
    let (status, value) = match answer {
        Ok((status, value)) if !status.is_server_error() => (status, value),
        other => {
            // Not stored: the client may retry with the same key.
            sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2")
                .bind(tenant)
                .bind(&key)
                .execute(&app.pool)
                .await?;
            return match other {
                Ok((status, value)) => Ok(passthrough(status, value)),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), part = part.name, "part unreachable");
                    Err(Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "upstream_unavailable",
                        format!(
                            "{} is unreachable; retry with the same Idempotency-Key",
                            part.name
                        ),
                    ))
                }
            };
        }
    };
    let bytes = if value.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&value).unwrap_or_default()
    };
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    sqlx::query("UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5 WHERE tenant_id = $1 AND key = $2")
        .bind(tenant)
        .bind(&key)
        .bind(i16::try_from(status.as_u16()).unwrap_or(502))
        .bind(content_type)
        .bind(&bytes)
        .execute(&app.pool)
        .await?;
    Ok(stored(status.as_u16(), content_type, bytes, false))
}

/// A key as stored: fingerprint, status, content type, body.
type KeyRow = (String, Option<i16>, Option<String>, Option<Vec<u8>>);

/// The stored answer of `key`, once the first request has one.
async fn replay(app: &AppState, tenant: &str, key: &str, print: &str) -> Result<Response, Problem> {
    let started = Instant::now();
    loop {
        let row: Option<KeyRow> =
            sqlx::query_as("SELECT fingerprint, status, content_type, body FROM idempotency_keys WHERE tenant_id = $1 AND key = $2")
                .bind(tenant)
                .bind(key)
                .fetch_optional(&app.pool)
                .await?;
        match row {
            Some((f, _, _, _)) if f != print => {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with other parameters; use a new key for a new request",
                ))
            }
            Some((_, Some(status), content_type, body)) => {
                return Ok(stored(u16::try_from(status).unwrap_or(502), content_type.as_deref().unwrap_or("application/json"), body.unwrap_or_default(), true));
            }
            // The first request failed upstream and released the key: this one may not run
            // twice concurrently, so it asks the client to retry.
            None => {
                return Err(Problem::new(StatusCode::CONFLICT, "idempotency_key_in_progress", "the first request with this key did not complete; retry"));
            }
            Some(_) if started.elapsed() > WAIT => {
                return Err(Problem::new(StatusCode::CONFLICT, "idempotency_key_in_progress", "a request with this Idempotency-Key is still in progress; retry shortly"));
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
