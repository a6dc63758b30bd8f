//! SMS and push through an HTTP provider, Twilio-style: a form POST of `To`, `From`, `Body`
//! (and `StatusCallback`) with HTTP Basic auth (account and token), answered with JSON carrying
//! the provider's message id (`sid`). Status callbacks come back through the gateway's
//! tracking routes. Every call goes through the SSRF guard.

use super::guard::Guard;
use super::{Accepted, Outbound, SendError};

/// One provider endpoint with its credentials.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The messages endpoint.
    pub url: String,
    /// Basic auth user.
    pub account: String,
    /// Basic auth password.
    pub token: String,
    /// Where the provider reports delivery, if tracking is configured.
    pub status_callback: Option<String>,
    /// The SSRF guard.
    pub guard: Guard,
}

impl super::Send for Provider {
    async fn send(&self, m: &Outbound) -> Result<Accepted, SendError> {
        let client = self
            .guard
            .client(&self.url)
            .await
            .map_err(|e| SendError::Permanent(format!("provider url: {e}")))?;
        let body = m.text.clone().unwrap_or_else(|| m.subject.clone());
        let mut form = vec![
            ("To", m.to.clone()),
            ("From", m.from.clone()),
            ("Body", body),
        ];
        if let Some(cb) = &self.status_callback {
            form.push(("StatusCallback", cb.clone()));
        }
        let answer = client
            .post(&self.url)
            .basic_auth(&self.account, Some(&self.token))
            .form(&form)
            .send()
            .await
            .map_err(|e| SendError::Transient(format!("provider: {e}")))?;
        let status = answer.status();
        if status.is_success() {
            let json: serde_json::Value = answer.json().await.unwrap_or_default();
            return Ok(Accepted {
                provider_id: json.get("sid").and_then(|s| s.as_str()).map(str::to_owned),
            });
        }
        let what = format!("provider answered {status}");
        if status.is_client_error() && status.as_u16() != 429 {
            Err(SendError::Permanent(what))
        } else {
            Err(SendError::Transient(what))
        }
    }
}
