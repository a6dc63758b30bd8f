//! API keys: generation, hashing, and the extractor that turns a request's key into a caller.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use crm_envelope::TenantId;
use crm_service::Problem;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::AppState;

/// What a key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Post events (write keys for integrations).
    Ingest,
    /// Read customers.
    Read,
    /// Everything, including managing keys.
    Admin,
}

impl Scope {
    /// The scope's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// A new random key (`crm_` + 64 hex characters = 256 bits) and its stored hash.
pub(crate) fn new_key() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("crm_{}", hex::encode(bytes));
    let hash = hash_key(&key);
    (key, hash)
}

/// The hash stored for a key.
pub(crate) fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The authenticated caller: one tenant, some scopes.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub tenant: TenantId,
    scopes: Vec<Scope>,
    /// Who is calling, for the records of who changed what: `key:<name>/<id>` (never the key).
    pub actor: String,
}

impl Caller {
    /// 403 unless the key has `scope` (or `admin`).
    pub fn require(&self, scope: Scope) -> Result<(), Problem> {
        if self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this API key lacks the '{}' scope", scope.as_str()),
            ))
        }
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .ok_or_else(|| {
                unauthorized(
                    "send an API key as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'",
                )
            })?;
        let row: Option<(String, Vec<String>, uuid::Uuid, String)> = sqlx::query_as(
            "SELECT tenant_id, scopes, id, name FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash_key(key.trim()))
        .fetch_optional(&state.pool)
        .await?;
        let (tenant, scopes, key_id, key_name) =
            row.ok_or_else(|| unauthorized("the API key is not valid"))?;
        let tenant = TenantId::parse(&tenant).map_err(|e| Problem::internal(&e.into()))?;
        Ok(Caller {
            tenant,
            scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
            actor: format!("key:{key_name}/{key_id}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_only_their_hash_matches() {
        let (k1, h1) = new_key();
        let (k2, h2) = new_key();
        assert_ne!(k1, k2);
        assert_eq!(k1.len(), 68);
        assert_eq!(hash_key(&k1), h1);
        assert_ne!(h1, h2);
        assert!(!h1.contains(&k1[4..]));
    }
}
