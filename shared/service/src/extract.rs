//! Extractors for the parts' internal routes, `/internal/v1/tenants/{tenant}/...`: the tenant
//! in the path is parsed once, here, into a [`TenantId`], and a path that does not parse is a
//! problem+json answer (400 `invalid_tenant` or `invalid_request`), never a handler's concern.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use crm_envelope::TenantId;
use serde::de::DeserializeOwned;

use crate::{tenant_from_path, Code, Problem};

/// Who is calling, as the gateway names them in `x-crm-actor` (`key:<name>`); `internal` when
/// absent or unreadable. Recorded as `updated_by` / `created_by`.
pub fn actor(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-crm-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .unwrap_or("internal")
        .to_owned()
}

/// The tenant of a route whose only path parameter is `{tenant}`.
#[derive(Debug, Clone)]
pub struct TenantPath(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for TenantPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                Problem::new(StatusCode::BAD_REQUEST, Code::InvalidRequest, e.body_text())
            })?;
        Ok(Self(tenant_from_path(&raw)?))
    }
}

/// The tenant and the one parameter after it (`{tenant}/.../{id}`), the parameter read as `T`
/// (a `Uuid`, a `String`, a number).
#[derive(Debug, Clone)]
pub struct TenantAnd<T>(pub TenantId, pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for TenantAnd<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path((raw, value)) = Path::<(String, T)>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                Problem::new(StatusCode::BAD_REQUEST, Code::InvalidRequest, e.body_text())
            })?;
        Ok(Self(tenant_from_path(&raw)?, value))
    }
}
