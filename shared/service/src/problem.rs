use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Code;

/// An RFC 9457 problem answer: `type`, `title`, `status`, `detail`, plus a stable `code` that
/// clients switch on, and optional extension members (such as per-event results). Kept small,
/// since every fallible handler returns it.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    code: Code,
    detail: String,
    extensions: Option<Box<Map<String, Value>>>,
}

/// The JSON body of a [`Problem`] (also its OpenAPI schema).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
struct ProblemBody<'a> {
    /// A URI naming the problem type: `urn:crm:problem:<code>`.
    #[serde(rename = "type")]
    type_uri: String,
    /// Short summary of the status.
    title: &'a str,
    /// HTTP status code.
    status: u16,
    /// Stable machine-readable code.
    code: &'a str,
    /// What went wrong in this occurrence and how to fix it.
    detail: &'a str,
    /// Extension members (for example `results`, one entry per event of a batch).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    extensions: Option<&'a Map<String, Value>>,
}

impl Problem {
    /// A problem with `status`, stable `code` and a `detail` for the client.
    pub fn new(status: StatusCode, code: Code, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extensions: None,
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extensions
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value);
        self
    }

    /// What the client is told to fix.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }

    /// An opaque 500; the cause is logged (with its chain), never sent to the client.
    pub fn internal(cause: &anyhow::Error) -> Self {
        tracing::error!(error = %format!("{cause:#}"), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            "an internal error occurred; it has been logged",
        )
    }
}

/// A database error in a handler is an internal error: logged, answered with an opaque 500.
impl From<sqlx::Error> for Problem {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(&err.into())
    }
}

/// The tenant named in an internal API's path, or 400 `invalid_tenant`.
pub fn tenant_from_path(raw: &str) -> Result<crm_envelope::TenantId, Problem> {
    crm_envelope::TenantId::parse(raw)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, Code::InvalidTenant, e.to_string()))
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            type_uri: format!("urn:crm:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            code: self.code.as_str(),
            detail: &self.detail,
            extensions: self.extensions.as_deref(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <ProblemBody<'static> as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Problem {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Problem")
    }
}
