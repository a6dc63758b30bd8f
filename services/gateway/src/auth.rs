//! API keys: generation, hashing, and the extractor that turns a request's key into a caller.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use crm_envelope::TenantId;
use crm_service::Code;
use crm_service::Problem;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::AppState;

/// What a key may do. Each route needs one scope (the OpenAPI document names it in the
/// route's security requirement); `admin` passes every check.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum Scope {
    /// Post events and imports (write keys for integrations and SDKs).
    #[serde(rename = "ingest")]
    Ingest,
    /// Read customers, segments, reports, loyalty accounts (dashboards, storefronts).
    #[serde(rename = "read")]
    Read,
    /// Redeem and adjust points: reserve, confirm and cancel redemptions, adjustments (a
    /// storefront or a support desk). Not the programme or the catalogue.
    #[serde(rename = "write:loyalty")]
    WriteLoyalty,
    /// Ask for offer decisions and report their outcomes (a storefront, an app, a message
    /// renderer). Not the catalogue.
    #[serde(rename = "decide")]
    Decide,
    /// Work leads and opportunities: open, assign, move, convert, win or lose them (a sales
    /// team's tools). Not the lead settings or the pipelines' definitions.
    #[serde(rename = "sales")]
    Sales,
    /// Personal data requests: export, erase, consent changes (the privacy team's tooling).
    #[serde(rename = "privacy")]
    Privacy,
    /// Everything, including keys, settings, segment definitions, merges and the loyalty
    /// programme.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope, in the order documented.
    pub const ALL: [Scope; 7] = [
        Scope::Ingest,
        Scope::Read,
        Scope::WriteLoyalty,
        Scope::Decide,
        Scope::Sales,
        Scope::Privacy,
        Scope::Admin,
    ];

    /// The scope's name as stored and documented.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::WriteLoyalty => "write:loyalty",
            Scope::Decide => "decide",
            Scope::Sales => "sales",
            Scope::Privacy => "privacy",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
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
    /// 403 unless the key has `scope` (or `admin`). Routes check it through [`needs`].
    fn require(&self, scope: Scope) -> Result<(), Problem> {
        if self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                Code::InsufficientScope,
                format!("this API key lacks the '{}' scope", scope.as_str()),
            ))
        }
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, detail)
}

/// Why a request has no caller, left by [`authenticate`] for the scope check: no key, a key
/// that is not valid (401), or a key that could not be checked (503: retry).
#[derive(Debug, Clone)]
struct Unauthenticated {
    status: StatusCode,
    code: Code,
    detail: &'static str,
}

impl Unauthenticated {
    const fn unauthorized(detail: &'static str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: Code::Unauthorized,
            detail,
        }
    }

    fn problem(&self) -> Problem {
        Problem::new(self.status, self.code, self.detail)
    }
}

/// The answer for a request that reached a route without a caller.
fn no_caller(extensions: &axum::http::Extensions) -> Problem {
    extensions
        .get::<Unauthenticated>()
        .map_or_else(|| unauthorized("send an API key"), Unauthenticated::problem)
}

/// Resolves the request's API key, if it has one, into a [`Caller`] in the request's
/// extensions, before any route runs; [`needs`] and the [`Caller`] extractor read it there.
pub(crate) async fn authenticate(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match caller_of(&app, request.headers()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
        }
        Err(why) => {
            request.extensions_mut().insert(why);
        }
    }
    next.run(request).await
}

/// A key as looked up: tenant, scopes, id, name.
type KeyRow = (String, Vec<String>, uuid::Uuid, String);

/// The caller a request's key names.
async fn caller_of(app: &AppState, headers: &HeaderMap) -> Result<Caller, Unauthenticated> {
    let key = key_of(headers).ok_or(Unauthenticated::unauthorized(
        "send an API key as 'Authorization: Bearer <key>', 'X-Api-Key: <key>' or HTTP Basic with the key as the user name (Segment's write key)",
    ))?;
    let key = key.as_str();
    let row: Result<Option<KeyRow>, _> = sqlx::query_as(
        "SELECT tenant_id, scopes, id, name FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash_key(key.trim()))
    .fetch_optional(&app.pool)
    .await;
    let row = match row {
        Ok(row) => row,
        Err(e) => {
            tracing::error!(error = %e, "API key lookup failed");
            return Err(Unauthenticated {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: Code::AuthUnavailable,
                detail: "the API key could not be checked (the gateway's database is unavailable); retry",
            });
        }
    };
    let (tenant, scopes, key_id, key_name) = row.ok_or(Unauthenticated::unauthorized(
        "the API key is not valid (unknown or revoked)",
    ))?;
    let tenant = TenantId::parse(&tenant)
        .map_err(|_| Unauthenticated::unauthorized("the API key belongs to no valid tenant"))?;
    Ok(Caller {
        tenant,
        scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        actor: format!("key:{key_name}/{key_id}"),
    })
}

/// The key a request carries: `Authorization: Bearer <key>`, `Authorization: Basic
/// base64(<key>:)` (how Segment's and RudderStack's libraries send their write key: the key is
/// the user name, the password empty; a key given as the password with an empty user name is
/// taken too), or `X-Api-Key: <key>`.
fn key_of(headers: &HeaderMap) -> Option<String> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(bearer) = authorization.and_then(|v| v.strip_prefix("Bearer ")) {
        return Some(bearer.to_owned());
    }
    if let Some(basic) = authorization.and_then(|v| v.strip_prefix("Basic ")) {
        return basic_key(basic);
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The key of HTTP Basic credentials (`base64(user:password)`): the user name, or the password
/// when the user name is empty.
fn basic_key(encoded: &str) -> Option<String> {
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':').unwrap_or((text.as_str(), ""));
    let key = if user.is_empty() { password } else { user };
    (!key.is_empty()).then(|| key.to_owned())
}

/// `route` restricted to callers whose key has `scope` (or `admin`): 401 without a valid
/// key, 403 `insufficient_scope` otherwise, checked before the route reads its body. Each
/// route of the API declares its scope this way, and the OpenAPI document names the same
/// scope in the route's security requirement (a test walks both).
pub(crate) fn needs(scope: Scope, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.route_layer(axum::middleware::from_fn(
        move |request: Request, next: Next| async move {
            let allowed = match request.extensions().get::<Caller>() {
                Some(caller) => caller.require(scope),
                None => Err(no_caller(request.extensions())),
            };
            match allowed {
                Ok(()) => next.run(request).await,
                Err(problem) => problem.into_response(),
            }
        },
    ))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Problem> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            None => Err(no_caller(&parts.extensions)),
        }
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

    #[test]
    fn keys_come_from_bearer_basic_or_the_key_header() {
        use base64::Engine as _;
        let basic = |credentials: &str| {
            let mut headers = HeaderMap::new();
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            headers.insert(
                header::AUTHORIZATION,
                format!("Basic {encoded}").parse().unwrap(),
            );
            key_of(&headers)
        };
        assert_eq!(basic("crm_abc:").as_deref(), Some("crm_abc"));
        assert_eq!(basic("crm_abc").as_deref(), Some("crm_abc"));
        assert_eq!(basic(":crm_abc").as_deref(), Some("crm_abc"));
        assert_eq!(basic(":"), None);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(key_of(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer crm_x".parse().unwrap());
        assert_eq!(key_of(&headers).as_deref(), Some("crm_x"));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "crm_y".parse().unwrap());
        assert_eq!(key_of(&headers).as_deref(), Some("crm_y"));
    }
}
