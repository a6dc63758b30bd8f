//! Accounts (B2B) made by Segment `group` calls, relayed to identity: `GET /v1/accounts/{id}`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use crm_service::Problem;

use crate::auth::{needs, Caller, Scope};
use crate::proxy::relay;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/accounts/{id}", needs(Scope::Read, get(read_account)))
}

/// An account: the traits its `group` calls set (latest call wins, per key) and its members.
#[utoipa::path(
    get, path = "/v1/accounts/{id}", tag = "identity",
    params(("id" = String, Path, description = "The account's groupId")),
    responses(
        (status = 200, description = "The account", body = crm_identity::bodies::Account),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub(crate) async fn read_account(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let path = format!("accounts/{}", encode_segment(&id));
    relay(&app, &caller, reqwest::Method::GET, &path, &[], None).await
}

/// `s` percent-encoded as one path segment (every byte but RFC 3986's unreserved ones).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(encode_segment("acme-1.x_~"), "acme-1.x_~");
        assert_eq!(encode_segment("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(encode_segment("ñ"), "%C3%B1");
    }
}
