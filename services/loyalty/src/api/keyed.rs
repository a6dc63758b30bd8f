//! Writes applied once per idempotency key, in loyalty itself: whatever the gateway does (its
//! lease on a key ran out and a retry came through, an upstream timeout left the first call's
//! outcome unknown), a second request with a key that loyalty already applied gets the stored
//! answer and changes nothing.
//!
//! A write handler calls [`Keyed::start`] first in its transaction: it takes a transaction
//! lock on the key (a concurrent request with the same key waits for the first to commit or
//! roll back) and returns the stored answer when there is one. The handler then makes its
//! change and ends with [`Keyed::answer`], which records the answer in the same transaction.
//! A refusal (a 4xx problem) rolls back and records nothing, so a corrected retry may run.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crm_envelope::TenantId;
use crm_service::Code;
use crm_service::Problem;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::idempotency_key;
use crate::store::api_writes;

/// A write in progress under its idempotency key.
pub(crate) struct Keyed {
    key: String,
    request: String,
}

impl Keyed {
    /// Locks the request's key for this transaction. `Err(response)` carries the stored answer
    /// of a write already applied with the key; 422 `idempotency_key_reused` when that write
    /// was another request (another operation, path or body).
    pub(crate) async fn start(
        tx: &mut PgConnection,
        tenant: &TenantId,
        headers: &HeaderMap,
        operation: &str,
        body: &[u8],
    ) -> Result<Result<Self, Response>, Problem> {
        let key = idempotency_key(headers)?;
        let mut h = Sha256::new();
        h.update(operation.as_bytes());
        h.update(b"\n");
        // The body as parsed, so that two encodings of one request (spacing, key order)
        // are the same request.
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => h.update(serde_json::to_vec(&v).unwrap_or_default()),
            Err(_) => h.update(body),
        }
        let request = hex::encode(h.finalize());
        api_writes::lock(tx, tenant, &key).await?;
        let stored = api_writes::find(tx, tenant, &key).await?;
        match stored {
            None => Ok(Ok(Self { key, request })),
            Some((r, ..)) if r != request => Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::IdempotencyKeyReused,
                "this Idempotency-Key was used for another request; use a new key for a new request",
            )),
            Some((_, status, body)) => {
                let status = u16::try_from(status)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::OK);
                let mut response = (status, Json(body.0)).into_response();
                response.headers_mut().insert(
                    "idempotent-replayed",
                    axum::http::HeaderValue::from_static("true"),
                );
                Ok(Err(response))
            }
        }
    }

    /// Records `body` with `status` as the key's answer in the transaction; the response.
    pub(crate) async fn answer<T: Serialize>(
        self,
        tx: &mut PgConnection,
        tenant: &TenantId,
        status: StatusCode,
        body: &T,
    ) -> Result<Response, Problem> {
        let body = serde_json::to_value(body).map_err(|e| Problem::internal(&e.into()))?;
        api_writes::record(
            tx,
            tenant,
            &self.key,
            &self.request,
            i16::try_from(status.as_u16()).unwrap_or(200),
            &body,
        )
        .await?;
        Ok((status, Json(body)).into_response())
    }
}
