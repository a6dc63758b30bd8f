//! The channels that carry messages, behind one trait ([`Send`]): email over SMTP
//! ([`smtp`]), SMS and push through an HTTP provider ([`provider`]), and signed webhooks
//! ([`webhook`]). The delivery loop ([`deliver`]) claims queued messages, renders them and
//! hands them to the channel; a channel answers whether the message was accepted, refused for
//! good, or should be tried again.

pub mod deliver;
/// The SSRF guard of outbound HTTP (shared with the gateway).
pub use crm_webhooks::guard;
pub mod provider;
pub mod smtp;
/// One signed webhook call (shared with the gateway).
pub use crm_webhooks::call as webhook;

use std::future::Future;

/// One message ready to go out.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The message's send key (the `Message-ID` and the webhook id derive from it).
    pub send_key: String,
    /// The recipient: an email address or a phone number.
    pub to: String,
    /// The sender address (email) or id (SMS).
    pub from: String,
    /// The sender's display name.
    pub from_name: Option<String>,
    /// `Reply-To`.
    pub reply_to: Option<String>,
    /// The subject (email), or the title (push).
    pub subject: String,
    /// HTML body, tracking links and pixel in place.
    pub html: Option<String>,
    /// Text body.
    pub text: Option<String>,
    /// The one-click unsubscribe address (RFC 8058), if the message is not transactional.
    pub unsubscribe: Option<String>,
    /// `In-Reply-To`: the id of the message this one answers (a conversation's reply).
    pub in_reply_to: Option<String>,
    /// `References`: the ids of the thread so far, oldest first.
    pub references: Vec<String>,
}

/// What the channel answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The server's or provider's id for it, if it gave one.
    pub provider_id: Option<String>,
}

/// Why a channel did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Refused for good (a 5xx SMTP answer, a 4xx from a provider): not retried.
    #[error("refused: {0}")]
    Permanent(String),
    /// Failed for now (connection, timeout, 4xx SMTP, 5xx provider): retried later.
    #[error("failed for now: {0}")]
    Transient(String),
}

/// A channel that carries messages.
pub trait Send: std::marker::Send + Sync {
    /// Sends one message.
    fn send(
        &self,
        m: &Outbound,
    ) -> impl Future<Output = Result<Accepted, SendError>> + std::marker::Send;
}
