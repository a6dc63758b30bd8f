//! The gateway's client of a part's internal API (identity, segmentation).

use std::time::Duration;

use crm_envelope::TenantId;
use reqwest::StatusCode;
use uuid::Uuid;

/// Calls a part's internal API, passing the W3C trace context on.
#[derive(Clone)]
pub struct PartClient {
    http: reqwest::Client,
    /// For forwarded public calls: redirects are the caller's to follow, not the gateway's.
    raw: reqwest::Client,
    base: String,
    token: crm_service::ServiceToken,
}

impl PartClient {
    /// A client of the part at `base` (`http://host:port`), each call bounded by `timeout` and
    /// carrying the deployment's service `token`.
    pub fn new(
        base: &str,
        timeout: Duration,
        token: crm_service::ServiceToken,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            raw: reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// A customer's profile JSON, or `None` when identity has no such customer.
    pub async fn customer(&self, tenant: &TenantId, id: Uuid) -> anyhow::Result<Option<String>> {
        let path = format!("customers/{id}");
        let response = self
            .request(reqwest::Method::GET, tenant, &path)
            .send()
            .await?;
        match response.status() {
            StatusCode::OK => Ok(Some(response.text().await?)),
            StatusCode::NOT_FOUND => Ok(None),
            other => anyhow::bail!("identity answered {other}"),
        }
    }

    /// Calls identity's `/internal/v1/tenants/{tenant}/{path}` (with `body` as JSON, if any) and
    /// returns its status and JSON body as they are (identity answers problem+json on errors).
    pub async fn call(
        &self,
        method: reqwest::Method,
        tenant: &TenantId,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(StatusCode, serde_json::Value)> {
        self.call_as(method, tenant, path, query, body, &[]).await
    }

    /// [`PartClient::call`] with extra headers: `x-crm-actor` naming the caller (recorded by
    /// parts that keep who changed what), `idempotency-key`.
    pub async fn call_as(
        &self,
        method: reqwest::Method,
        tenant: &TenantId,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, serde_json::Value)> {
        let mut request = self.request(method, tenant, path).query(query);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        Self::json_answer(request).await
    }

    /// As [`Self::call_as`], with the answer's body as the part wrote it (JSON, not parsed:
    /// the gateway relays it unchanged).
    pub async fn call_raw(
        &self,
        method: reqwest::Method,
        tenant: &TenantId,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, axum::body::Bytes)> {
        let mut request = self.request(method, tenant, path).query(query);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(reqwest::Error::without_url)?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(reqwest::Error::without_url)?;
        Ok((status, body))
    }

    /// Posts a file (`body`, streamed as it comes, never held whole) to identity's `/internal/v1/tenants/{tenant}/{path}`
    /// and returns its status and JSON body as they are.
    pub async fn post_file(
        &self,
        tenant: &TenantId,
        path: &str,
        query: &[(&str, &str)],
        body: reqwest::Body,
    ) -> anyhow::Result<(StatusCode, serde_json::Value)> {
        let request = self
            .request(reqwest::Method::POST, tenant, path)
            .query(query)
            .body(body);
        Self::json_answer(request).await
    }

    /// Forwards a public call to the part's `/internal/v1/{path}` (routes without a tenant in
    /// the path, such as tracking links, whose signed token names it), with `headers`, and
    /// returns the part's answer as it is (any content type).
    pub async fn forward(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}/internal/v1/{path}", self.base);
        let mut request = self
            .raw
            .request(method, url)
            .header(crm_service::SERVICE_TOKEN_HEADER, self.token.expose())
            .body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Ok(request.send().await?)
    }

    /// A request to `/internal/v1/tenants/{tenant}/{path}` carrying the current trace context.
    fn request(
        &self,
        method: reqwest::Method,
        tenant: &TenantId,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}/internal/v1/tenants/{tenant}/{path}", self.base);
        let mut request = self
            .http
            .request(method, url)
            .header(crm_service::SERVICE_TOKEN_HEADER, self.token.expose());
        for (k, v) in crm_telemetry::propagation::current_context_headers() {
            request = request.header(k, v);
        }
        request
    }

    ///
    /// Errors leave out the URL: it holds the tenant and ids (a customer id, an email in a
    /// lookup), and errors end up in logs.
    async fn json_answer(
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<(StatusCode, serde_json::Value)> {
        let response = request.send().await.map_err(reqwest::Error::without_url)?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(reqwest::Error::without_url)?;
        if body.is_empty() {
            return Ok((status, serde_json::Value::Null));
        }
        Ok((status, serde_json::from_slice(&body)?))
    }
}
