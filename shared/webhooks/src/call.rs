//! Webhook calls signed per the Standard Webhooks specification: `webhook-id` (the send key,
//! the same on every retry), `webhook-timestamp` and `webhook-signature` with one `v1,`
//! signature per secret (two during a rotation), through the SSRF guard. The delivery loop
//! retries on the specification's schedule and disables the channel on 410 Gone.

use chrono::Utc;

use crate::guard::{ClientCache, Guard};
use crate::signing::{signature_header, Secret};

/// One webhook call.
pub struct Call<'a> {
    /// The endpoint.
    pub url: &'a str,
    /// The signing secrets, newest first.
    pub secrets: &'a [Secret],
    /// The message id (`webhook-id`).
    pub id: &'a str,
    /// The JSON body.
    pub body: &'a [u8],
}

/// The endpoint's answer: its status, or `None` for no answer (refused, timed out); an error
/// names a target the guard refused.
pub async fn call(guard: &Guard, c: &Call<'_>) -> Result<Option<u16>, String> {
    call_logged(guard, c).await.map(|a| a.status)
}

/// What one attempt came to, for a delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The endpoint's status, if it answered.
    pub status: Option<u16>,
    /// Why there was no answer (`timed out`, `connection refused`), if there was none.
    pub error: Option<String>,
}

/// [`call`], keeping why there was no answer; an error names a target the guard refused.
pub async fn call_logged(guard: &Guard, c: &Call<'_>) -> Result<Answer, String> {
    let client = guard.client(c.url).await.map_err(|e| e.to_string())?;
    send(&client, c).await
}

/// [`call_logged`] with a client from `cache` (connections kept between calls).
pub async fn call_cached(
    guard: &Guard,
    cache: &ClientCache,
    c: &Call<'_>,
) -> Result<Answer, String> {
    let client = cache
        .client(guard, c.url)
        .await
        .map_err(|e| e.to_string())?;
    send(&client, c).await
}

async fn send(client: &reqwest::Client, c: &Call<'_>) -> Result<Answer, String> {
    let ts = Utc::now().timestamp();
    let answer = client
        .post(c.url)
        .header("content-type", "application/json")
        .header("webhook-id", c.id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            signature_header(c.secrets, c.id, ts, c.body),
        )
        .body(c.body.to_vec())
        .send()
        .await;
    Ok(match answer {
        Ok(a) => Answer {
            status: Some(a.status().as_u16()),
            error: None,
        },
        Err(e) => Answer {
            status: None,
            error: Some(if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "connection refused or unreachable".to_owned()
            } else {
                "the request failed before an answer".to_owned()
            }),
        },
    })
}
