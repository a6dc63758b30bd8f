//! The public tracking routes of messages, forwarded to campaign: no API key, a signed and
//! expiring token in the path instead (ARCHITECTURE.md). `GET /t/o/{token}` (open pixel),
//! `GET /t/c/{token}` (click redirect), `GET /t/u/{token}` (preference page) and
//! `POST /t/u/{token}` (one-click unsubscribe, RFC 8058), `POST /t/status/{token}` (provider
//! status callbacks). Campaign checks the token; the gateway passes the answer on as it is.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use crm_service::{Code, Problem};

use crate::proxy::CAMPAIGN;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/t/{kind}/{token}", get(track).post(track))
}

/// Tokens are base64url with one dot: anything else is refused before it reaches campaign.
pub(crate) fn plausible(token: &str) -> bool {
    token.len() <= 4096
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Forwards a public call (no API key) to campaign's `/internal/v1/{path}`, with the request
/// headers named in `pass`, and answers with campaign's status, body and content headers.
pub(crate) async fn forward(
    app: &AppState,
    method: reqwest::Method,
    path: String,
    headers: &HeaderMap,
    pass_headers: &[&str],
    body: Bytes,
) -> Result<Response, Problem> {
    let mut pass: Vec<(&str, &str)> = Vec::new();
    for name in pass_headers.iter().copied() {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            pass.push((name, v));
        }
    }
    let answer = CAMPAIGN
        .client(app)
        .forward(method, &path, &pass, body.to_vec())
        .await
        .map_err(|e| CAMPAIGN.unavailable(&e))?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HeaderMap::new();
    for name in [
        header::CONTENT_TYPE,
        header::LOCATION,
        header::CACHE_CONTROL,
    ] {
        if let Some(v) = answer
            .headers()
            .get(name.as_str())
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            out.insert(name, v);
        }
    }
    let bytes = answer
        .bytes()
        .await
        .map_err(|e| CAMPAIGN.unavailable(&anyhow::Error::from(e)))?;
    Ok((status, out, bytes).into_response())
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::InvalidToken,
        "this link is not valid or has expired",
    )
}

/// One tracking route: `o` (GET), `c` (GET), `u` (GET page, POST unsubscribe), `status` (POST).
async fn track(
    State(app): State<AppState>,
    Path((kind, token)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let allowed = matches!(
        (kind.as_str(), &method),
        ("o" | "c" | "u", &Method::GET) | ("u" | "status", &Method::POST)
    );
    if !allowed || !plausible(&token) {
        return Err(not_found());
    }
    let method = if method == Method::POST {
        reqwest::Method::POST
    } else {
        reqwest::Method::GET
    };
    forward(
        &app,
        method,
        format!("track/{kind}/{token}"),
        &headers,
        &["user-agent", "content-type"],
        body,
    )
    .await
}
