//! `Idempotency-Key` on writes, with the semantics of Stripe's API: the first request with a key
//! runs and its response is stored; a replay with the same parameters returns that response
//! byte for byte (with `Idempotent-Replayed: true`); the same key with other parameters gives
//! 422 `idempotency_key_reused`; concurrent requests with one key make one effect (the others
//! wait for the first and replay it, or get 409 `idempotency_key_in_progress` after 10 s).
//! Keys are kept 24 hours.
//!
//! A request holds its key under a lease (three upstream timeouts, at least 10 s). When the
//! part gives no answer to keep (unreachable, a timeout, a 5xx), the key stays bound to its
//! fingerprint, since the effect may have happened, and its lease ends: a retry with the same
//! parameters runs again and the part, which applies each key once itself, answers it without
//! a second effect. A key whose holder died (the gateway replica was killed mid-request) is
//! taken over once its lease has run out.

use crm_envelope::TenantId;
use crm_service::Code;
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
/// The shortest lease a request holds on its key.
const LEASE_FLOOR: Duration = Duration::from_secs(10);

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
                Code::IdempotencyKeyRequired,
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
    let tenant = &caller.tenant;
    let print = fingerprint(&method, path, body);
    if rand::random::<u8>() == 0 {
        sqlx::query(&format!(
            "DELETE FROM idempotency_keys WHERE created_at < now() - interval '{RETENTION}'"
        ))
        .execute(&app.pool)
        .await?;
    }
    let lease = lease_for(app);
    let started = Instant::now();
    loop {
        if claim(app, tenant, &key, &print, lease).await? {
            break;
        }
        match stored_answer(app, tenant, &key, &print).await? {
            Waiting::Answer(r) => return Ok(r),
            Waiting::InFlight if started.elapsed() > WAIT => {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    Code::IdempotencyKeyInProgress,
                    "a request with this Idempotency-Key is still in progress; retry shortly",
                ))
            }
            Waiting::InFlight => tokio::time::sleep(Duration::from_millis(20)).await,
        }
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
            // No answer to keep. The key stays with its fingerprint (the effect may have
            // happened: a timeout, a 5xx after a commit) and its lease ends now, so a retry
            // with the same parameters runs again, and the part, which applies each key once,
            // answers it without a second effect.
            release(app, tenant, &key).await?;
            return match other {
                Ok((status, value)) => Ok(passthrough(status, value)),
                Err(e) => Err(upstream_failed(part, &e)),
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
    sqlx::query("UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5, lease_until = NULL WHERE tenant_id = $1 AND key = $2")
        .bind(tenant)
        .bind(&key)
        .bind(i16::try_from(status.as_u16()).unwrap_or(502))
        .bind(content_type)
        .bind(&bytes)
        .execute(&app.pool)
        .await?;
    Ok(stored(status.as_u16(), content_type, bytes, false))
}

/// How long a request holds its key: past the upstream timeout with a margin, so that a live
/// holder always answers (or releases) before another may take over.
fn lease_for(app: &AppState) -> Duration {
    (app.upstream_timeout * 3).max(LEASE_FLOOR)
}

/// Takes `key` for this request: a new key, or one whose earlier holder left it unanswered
/// with the same fingerprint and a lease that ran out (that replica died, or the part's answer
/// never came). `false` when another request holds it or it has an answer.
async fn claim(
    app: &AppState,
    tenant: &TenantId,
    key: &str,
    print: &str,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, lease_until)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))
         ON CONFLICT (tenant_id, key) DO UPDATE
             SET lease_until = EXCLUDED.lease_until, attempts = idempotency_keys.attempts + 1
             WHERE idempotency_keys.status IS NULL
               AND idempotency_keys.fingerprint = EXCLUDED.fingerprint
               AND coalesce(idempotency_keys.lease_until, '-infinity') <= now()",
    )
    .bind(tenant)
    .bind(key)
    .bind(print)
    .bind(lease.as_secs_f64())
    .execute(&app.pool)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Ends this request's lease on `key` without an answer.
async fn release(app: &AppState, tenant: &TenantId, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET lease_until = now() WHERE tenant_id = $1 AND key = $2 AND status IS NULL",
    )
    .bind(tenant)
    .bind(key)
    .execute(&app.pool)
    .await?;
    Ok(())
}

/// The client's answer when the part gave none: 504 when the call timed out (its effect is
/// unknown), 503 when the part could not be reached.
fn upstream_failed(part: &Upstream, e: &anyhow::Error) -> Problem {
    let timed_out = e
        .downcast_ref::<reqwest::Error>()
        .is_some_and(reqwest::Error::is_timeout);
    // The part client's errors carry no URL (it holds ids).
    tracing::error!(error = %format!("{e:#}"), part = part.name, timed_out, "part gave no answer");
    if timed_out {
        Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            Code::UpstreamTimeout,
            format!(
                "{} did not answer in time; the write may have been applied: retry with the same Idempotency-Key to get its outcome",
                part.name
            ),
        )
    } else {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::UpstreamUnavailable,
            format!(
                "{} is unreachable; retry with the same Idempotency-Key",
                part.name
            ),
        )
    }
}

/// A key as stored: fingerprint, status, content type, body.
type KeyRow = (String, Option<i16>, Option<String>, Option<Vec<u8>>);

/// What a request that could not claim its key finds.
enum Waiting {
    /// The key's stored answer, or the refusal of a key used with other parameters.
    Answer(Response),
    /// Another request holds it under a live lease.
    InFlight,
}

/// The stored answer of `key`, if the request that holds it has one.
async fn stored_answer(
    app: &AppState,
    tenant: &TenantId,
    key: &str,
    print: &str,
) -> Result<Waiting, Problem> {
    let row: Option<KeyRow> =
        sqlx::query_as("SELECT fingerprint, status, content_type, body FROM idempotency_keys WHERE tenant_id = $1 AND key = $2")
            .bind(tenant)
            .bind(key)
            .fetch_optional(&app.pool)
            .await?;
    match row {
        Some((f, _, _, _)) if f != print => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::IdempotencyKeyReused,
            "this Idempotency-Key was used with other parameters; use a new key for a new request",
        )),
        Some((_, Some(status), content_type, body)) => Ok(Waiting::Answer(stored(
            u16::try_from(status).unwrap_or(502),
            content_type.as_deref().unwrap_or("application/json"),
            body.unwrap_or_default(),
            true,
        ))),
        // Held by a live request, or purged between the claim and this read (the next claim
        // takes it).
        _ => Ok(Waiting::InFlight),
    }
}
