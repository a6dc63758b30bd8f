//! Limits every HTTP request meets, in every part and the gateway, and problem+json for the
//! answers axum and the limits give on their own (unknown route, wrong method, an unreadable
//! path or body, too large, too slow, too many at once), so a client always gets a stable
//! `code`.
//!
//! - **Timeout** (tower-http `TimeoutLayer`): a request still running after
//!   `CRM_<PART>__REQUEST_TIMEOUT_MS` (default 120 s) is answered 503 `request_timeout`.
//! - **Requests in flight** (tower `GlobalConcurrencyLimit` with load shedding): past
//!   `CRM_<PART>__MAX_IN_FLIGHT` (default 1024) a request is answered at once with 503
//!   `overloaded` and `Retry-After: 1` instead of queueing without bound.
//! - **Body size** (tower-http `RequestBodyLimitLayer`): a hard cap of
//!   `CRM_<PART>__MAX_BODY_BYTES` (default 72 MiB, above the 64 MiB import cap so that imports
//!   keep their own, more precise 413); JSON routes stay under axum's 2 MiB extractor limit.

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use crm_config::{ConfigError, Env};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::{Code, Problem};

/// The limits of one part's HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest a request may run (`CRM_<PART>__REQUEST_TIMEOUT_MS`, default 120000).
    pub request_timeout: Duration,
    /// Most requests handled at once (`CRM_<PART>__MAX_IN_FLIGHT`, default 1024).
    pub max_in_flight: usize,
    /// Largest request body (`CRM_<PART>__MAX_BODY_BYTES`, default 72 MiB).
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(120),
            max_in_flight: 1024,
            max_body_bytes: 72 * 1024 * 1024,
        }
    }
}

impl HttpLimits {
    /// Reads `CRM_<PART>__REQUEST_TIMEOUT_MS`, `__MAX_IN_FLIGHT`, `__MAX_BODY_BYTES`
    /// (`upper` is the part's name in upper case).
    pub fn from_env(env: &Env, upper: &str) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            request_timeout: env.millis_or(
                &format!("CRM_{upper}__REQUEST_TIMEOUT_MS"),
                d.request_timeout.as_millis().try_into().unwrap_or(u64::MAX),
            )?,
            max_in_flight: env.ranged_or(
                &format!("CRM_{upper}__MAX_IN_FLIGHT"),
                d.max_in_flight,
                1..=1_000_000,
            )?,
            max_body_bytes: env.ranged_or(
                &format!("CRM_{upper}__MAX_BODY_BYTES"),
                d.max_body_bytes,
                1024..=(1 << 34),
            )?,
        })
    }

    /// `router` with the limits (their answers are problems once [`problem_answers`] wraps
    /// the server).
    pub fn apply(&self, router: Router) -> Router {
        let limits = ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                let mut response = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Code::Overloaded,
                    "too many requests in flight; retry in a moment",
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::new(self.max_in_flight));
        router
            .layer(RequestBodyLimitLayer::new(self.max_body_bytes))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                self.request_timeout,
            ))
            .layer(limits)
    }
}

/// `router` with every plain error answer turned into problem+json.
pub fn problem_answers(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(plain_errors_as_problems))
}

/// An error answer that is not JSON (axum's rejections and fallbacks, the limits above) becomes
/// problem+json with a code for its status; the text axum wrote, if any, is the detail. JSON
/// answers (our problems, a part's answer the gateway passes on) are left as they are.
async fn plain_errors_as_problems(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = match axum::body::to_bytes(response.into_body(), 16 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let (code, fallback) = code_for(status);
    let detail = if text.is_empty() {
        fallback.to_owned()
    } else {
        text
    };
    let mut out = Problem::new(status, code, detail).into_response();
    if let Some(v) = retry_after {
        out.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if let Some(v) = allow {
        out.headers_mut().insert(header::ALLOW, v);
    }
    out
}

/// The code and default detail of a plain error answer with `status`.
fn code_for(status: StatusCode) -> (Code, &'static str) {
    match status {
        StatusCode::NOT_FOUND => (Code::NotFound, "no such route; see /openapi.json"),
        StatusCode::METHOD_NOT_ALLOWED => (
            Code::MethodNotAllowed,
            "this route does not take that method; see the Allow header",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            Code::PayloadTooLarge,
            "the request body is larger than this server accepts",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            Code::UnsupportedMediaType,
            "send the body as application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (Code::InvalidBody, "the body does not fit the schema"),
        StatusCode::SERVICE_UNAVAILABLE => (
            Code::RequestTimeout,
            "the request took longer than this server allows; retry",
        ),
        s if s.is_server_error() => (Code::Internal, "an internal error occurred"),
        _ => (Code::InvalidRequest, "the request could not be read"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::routing::{get, post};
    use axum::Json;
    use tokio::sync::Notify;
    use tower::ServiceExt;
    use uuid::Uuid;

    use super::*;

    async fn problem(response: Response) -> (StatusCode, serde_json::Value) {
        let status = response.status();
        let ct = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert_eq!(ct, "application/problem+json", "{status}");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn app(limits: HttpLimits, gate: Arc<Notify>) -> Router {
        let router =
            Router::new()
                .route(
                    "/items/{id}",
                    get(
                        |axum::extract::Path(id): axum::extract::Path<Uuid>| async move {
                            id.to_string()
                        },
                    ),
                )
                .route(
                    "/echo",
                    post(|Json(v): Json<serde_json::Value>| async move { Json(v) }),
                )
                .route(
                    "/slow",
                    get(move || {
                        let gate = Arc::clone(&gate);
                        async move {
                            gate.notified().await;
                            "done"
                        }
                    }),
                );
        problem_answers(limits.apply(router))
    }

    fn request(method: &str, uri: &str, body: Body) -> Request {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap()
    }

    #[tokio::test]
    async fn axums_own_answers_are_problems_with_stable_codes() {
        let app = app(HttpLimits::default(), Arc::new(Notify::new()));
        let cases = [
            (request("GET", "/nowhere", Body::empty()), 404, "not_found"),
            (
                request("DELETE", "/echo", Body::empty()),
                405,
                "method_not_allowed",
            ),
            (
                request("GET", "/items/not-a-uuid", Body::empty()),
                400,
                "invalid_request",
            ),
            (
                request("POST", "/echo", Body::from("{")),
                400,
                "invalid_request",
            ),
            (request("POST", "/echo", Body::from("[1]")), 200, ""),
        ];
        for (req, status, code) in cases {
            let response = app.clone().oneshot(req).await.unwrap();
            if status == 200 {
                assert_eq!(response.status(), StatusCode::OK);
                continue;
            }
            let (got, body) = problem(response).await;
            assert_eq!(got.as_u16(), status);
            assert_eq!(body["code"], code, "{body}");
            assert!(!body["detail"].as_str().unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn a_body_past_the_cap_is_413() {
        let limits = HttpLimits {
            max_body_bytes: 1024,
            ..HttpLimits::default()
        };
        let app = app(limits, Arc::new(Notify::new()));
        let big = format!("[\"{}\"]", "x".repeat(4096));
        let response = app
            .oneshot(request("POST", "/echo", Body::from(big)))
            .await
            .unwrap();
        let (status, body) = problem(response).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["code"], "payload_too_large");
    }

    #[tokio::test]
    async fn a_slow_request_times_out_with_503() {
        let limits = HttpLimits {
            request_timeout: Duration::from_millis(50),
            ..HttpLimits::default()
        };
        let app = app(limits, Arc::new(Notify::new()));
        let response = app
            .oneshot(request("GET", "/slow", Body::empty()))
            .await
            .unwrap();
        let (status, body) = problem(response).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "request_timeout");
    }

    #[tokio::test]
    async fn past_the_requests_in_flight_a_request_is_shed_at_once() {
        let limits = HttpLimits {
            max_in_flight: 1,
            ..HttpLimits::default()
        };
        let gate = Arc::new(Notify::new());
        let app = app(limits, Arc::clone(&gate));
        let first = tokio::spawn(app.clone().oneshot(request("GET", "/slow", Body::empty())));
        // The first request holds the only slot until the gate opens.
        let mut shed = None;
        for _ in 0..100 {
            let r = app
                .clone()
                .oneshot(request(
                    "GET",
                    "/items/00000000-0000-0000-0000-000000000001",
                    Body::empty(),
                ))
                .await
                .unwrap();
            if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                shed = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let shed = shed.expect("a second request was shed while the first held the slot");
        assert_eq!(
            shed.headers().get(header::RETRY_AFTER).unwrap(),
            &HeaderValue::from_static("1")
        );
        let (_, body) = problem(shed).await;
        assert_eq!(body["code"], "overloaded");
        gate.notify_one();
        let done = first.await.unwrap().unwrap();
        assert_eq!(done.status(), StatusCode::OK);
    }
}
