//! Channel settings, per tenant: the sender of email, the HTTP provider of SMS and push
//! (Twilio-style), and webhook endpoints. Checked when saved; secrets (provider tokens,
//! webhook signing secrets) are kept apart from the settings and never shown back.

use serde::{Deserialize, Serialize};

/// A channel's settings, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
#[schema(as = ChannelSettings)]
pub enum Settings {
    /// Email: the tenant's sender (the SMTP relay is the deployment's).
    Email {
        /// `From` address.
        from: String,
        /// Display name.
        #[serde(default)]
        from_name: Option<String>,
        /// `Reply-To` address.
        #[serde(default)]
        reply_to: Option<String>,
    },
    /// SMS through an HTTP provider (Twilio-style form POST with Basic auth).
    Sms {
        /// The provider's messages endpoint.
        url: String,
        /// Account id (Basic auth user).
        account: String,
        /// Sender number or id.
        from: String,
    },
    /// Push through an HTTP provider.
    Push {
        /// The provider's endpoint.
        url: String,
        /// Account id (Basic auth user).
        account: String,
    },
    /// A webhook endpoint, signed per Standard Webhooks.
    Webhook {
        /// Where to POST.
        url: String,
    },
}

impl Settings {
    /// `email`, `sms`, `push` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            Settings::Email { .. } => "email",
            Settings::Sms { .. } => "sms",
            Settings::Push { .. } => "push",
            Settings::Webhook { .. } => "webhook",
        }
    }

    /// Checks the settings; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        let address = |field: &str, v: &str| {
            let ok = v.len() <= 254
                && v.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty() && d.contains('.') && !v.contains(['\r', '\n', '<', '>', ' '])
                });
            if ok {
                Ok(())
            } else {
                Err(format!("{field} must be an email address, not {v:?}"))
            }
        };
        let url = |v: &str| {
            let ok = (v.starts_with("https://") || v.starts_with("http://"))
                && v.len() <= 2048
                && !v.contains(char::is_whitespace);
            if ok {
                Ok(())
            } else {
                Err(format!("url must be an http or https address, not {v:?}"))
            }
        };
        match self {
            Settings::Email {
                from,
                from_name,
                reply_to,
            } => {
                address("from", from)?;
                if let Some(r) = reply_to {
                    address("reply_to", r)?;
                }
                if from_name
                    .as_deref()
                    .is_some_and(|n| n.len() > 128 || n.contains(['\r', '\n']))
                {
                    return Err("from_name must be one line of at most 128 bytes".into());
                }
                Ok(())
            }
            Settings::Sms { url: u, .. } | Settings::Push { url: u, .. } => url(u),
            Settings::Webhook { url: u } => url(u),
        }
    }
}

/// The key of a channel: 1 to 64 of `a-z 0-9 _ -`.
pub fn valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn settings_are_checked_by_kind() {
        let ok: Settings =
            serde_json::from_value(json!({"kind": "email", "from": "news@acme.test"})).unwrap();
        assert!(ok.check().is_ok());
        let bad: Settings = serde_json::from_value(
            json!({"kind": "email", "from": "news@acme.test\r\nBcc: x@y.z"}),
        )
        .unwrap();
        assert!(bad.check().unwrap_err().contains("from"));
        let hook: Settings =
            serde_json::from_value(json!({"kind": "webhook", "url": "ftp://x"})).unwrap();
        assert!(hook.check().unwrap_err().contains("url"));
        assert!(serde_json::from_value::<Settings>(json!({"kind": "fax"})).is_err());
        assert!(valid_key("welcome-1") && !valid_key("Welcome") && !valid_key(""));
    }
}
