//! One trait for every social network a connector listens to: how its webhook calls are
//! signed, and how its payloads map to [`Mention`]s. Adding a network is one implementation
//! and one name in `conversations::by_name`.

use super::mention::Mention;

/// Why a payload was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

/// The message a reply answers on the network.
#[derive(Debug, Clone, Copy)]
pub struct ReplyTo<'a> {
    /// Its author's handle.
    pub handle: &'a str,
    /// Its id on the network.
    pub message_id: &'a str,
    /// Its author's account id on the network, if the network gave one.
    pub author_id: Option<&'a str>,
    /// Whether it was a direct (private) message.
    pub direct: bool,
}

/// A call to the network's API: a JSON `POST` with the connector's bearer token.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    /// Where.
    pub url: String,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// A network's webhook: signature and payload format; and how a reply is posted.
pub trait Network: Sync {
    /// Its name in connectors and mentions (`mastodon`, `x`).
    fn name(&self) -> &'static str;

    /// The header that carries the signature.
    fn signature_header(&self) -> &'static str;

    /// Whether `signature` (the header's value) signs the call with `secret`: its `body`, and
    /// for networks that sign it too (SMS), the public `url` the network called.
    fn verify(&self, secret: &[u8], signature: &str, url: &str, body: &[u8]) -> bool;

    /// The mentions a payload holds (none for events that are not posts or messages); `account`
    /// is the brand's handle on the network, to tell mentions of it from other posts and to
    /// leave out what the brand itself posted.
    fn mentions(&self, body: &[u8], account: &str) -> Result<Vec<Mention>, PayloadError>;

    /// The answer to the network's challenge of a webhook URL (X's CRC check), if it has one.
    fn challenge(&self, _secret: &[u8], _token: &str) -> Option<serde_json::Value> {
        None
    }

    /// The API call that posts `text` as a reply to `to`, with the network's API at
    /// `api_url`; `Err` says why this network takes no such reply.
    fn reply(&self, _api_url: &str, _to: &ReplyTo<'_>, _text: &str) -> Result<ApiCall, String> {
        Err(format!(
            "replies on {} do not go through its API",
            self.name()
        ))
    }

    /// The answer the network expects to a taken call, as (content type, body), where it
    /// expects one other than JSON (an SMS provider: an empty TwiML document, "send nothing").
    fn acknowledgement(&self) -> Option<(&'static str, &'static str)> {
        None
    }

    /// The id of the posted reply in the network's answer.
    fn reply_id(&self, _answer: &serde_json::Value) -> Option<String> {
        None
    }
}

/// HMAC-SHA256 of `body` with `secret`.
pub(crate) fn hmac_sha256(secret: &[u8], body: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return Vec::new();
    };
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Whether `signature` is `sha256=<hex HMAC-SHA256 of body with secret>` (Mastodon's
/// `X-Hub-Signature`, the inbound email relay's `X-Inbound-Signature`).
pub(crate) fn verify_hex_sha256(secret: &[u8], signature: &str, body: &[u8]) -> bool {
    let Some(hex_sig) = signature.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    same(&given, &hmac_sha256(secret, body))
}

/// Compares two byte strings in time independent of where they differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
