//! The service token: a shared secret per deployment that closes the parts' internal APIs to
//! everything but the gateway. Compared in constant time; never logged.

use crate::Code;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crm_config::{ConfigError, Env};
use sha2::{Digest, Sha256};

use crate::Problem;

/// The header the gateway sends the token in.
pub const HEADER: &str = "x-crm-service-token";

/// Shortest token taken (32 characters: 128 bits as hex at least).
pub const MIN_LEN: usize = 32;

/// The deployment's service token: the one the gateway sends, and during a rotation the
/// others a part still accepts (`CRM_SERVICE_TOKEN=new,old`).
#[derive(Clone)]
pub struct ServiceToken(Vec<String>);

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceToken(***)")
    }
}

impl ServiceToken {
    /// Tokens separated by commas, the first the one to send; or why they are refused.
    pub fn new(tokens: &str) -> Result<Self, String> {
        let tokens: Vec<String> = tokens
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if tokens.is_empty() || tokens.iter().any(|t| t.len() < MIN_LEN) {
            return Err(format!(
                "each service token must have at least {MIN_LEN} characters (for example `openssl rand -hex 32`); several are separated by commas"
            ));
        }
        Ok(Self(tokens))
    }

    /// The token to send on an internal call (the first).
    pub fn expose(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }

    /// Whether `candidate` is one of the tokens, in time independent of where they differ
    /// (each is hashed to 32 bytes first, so lengths do not show either, and every token is
    /// compared).
    pub fn matches(&self, candidate: &str) -> bool {
        let given = Sha256::digest(candidate.as_bytes());
        self.0.iter().fold(false, |found, token| {
            let want = Sha256::digest(token.as_bytes());
            let same = want
                .iter()
                .zip(given.iter())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0;
            found | same
        })
    }
}

/// `CRM_SERVICE_TOKEN`, when set.
pub(crate) fn from_env(env: &Env) -> Result<Option<ServiceToken>, ConfigError> {
    match env.raw("CRM_SERVICE_TOKEN") {
        None => Ok(None),
        Some(raw) => ServiceToken::new(raw)
            .map(Some)
            .map_err(|problem| ConfigError {
                key: "CRM_SERVICE_TOKEN".into(),
                problem,
            }),
    }
}

/// Refuses calls to `/internal/…` that do not carry the service token: 401
/// `service_token_required`. Other routes (the gateway's public API, `/healthz`, `/metrics`)
/// pass.
pub(crate) async fn require(
    State(token): State<ServiceToken>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/internal/") {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if token.matches(given) {
        return next.run(request).await;
    }
    Problem::new(
        StatusCode::UNAUTHORIZED,
        Code::ServiceTokenRequired,
        "internal APIs answer the gateway only: call the public API through the gateway",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::ServiceToken;

    #[test]
    fn a_token_is_long_and_matches_only_itself() {
        assert!(ServiceToken::new("short").is_err());
        let token = ServiceToken::new(&"a".repeat(40)).unwrap();
        assert!(token.matches(&"a".repeat(40)));
        assert!(!token.matches(&"a".repeat(39)));
        assert!(!token.matches(""));
        assert!(!token.matches(&format!("{}b", "a".repeat(39))));
        assert_eq!(format!("{token:?}"), "ServiceToken(***)");
    }

    #[test]
    fn during_a_rotation_both_tokens_are_accepted_and_the_first_is_sent() {
        let (new, old) = ("n".repeat(32), "o".repeat(32));
        let token = ServiceToken::new(&format!("{new}, {old}")).unwrap();
        assert_eq!(token.expose(), new);
        assert!(token.matches(&new) && token.matches(&old));
        assert!(!token.matches(&"x".repeat(32)));
        assert!(ServiceToken::new(&format!("{new},short")).is_err());
        assert!(ServiceToken::new(" , ").is_err());
    }
}
