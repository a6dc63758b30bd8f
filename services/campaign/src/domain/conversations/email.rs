//! Email as a conversation channel: a provider's inbound webhook (or the deployment's own
//! relay) posts each received message raw (RFC 5322, `Content-Type: message/rfc822`), signed
//! in `X-Inbound-Signature: sha256=<hex HMAC-SHA256 of the body with the connector's secret>`.
//! The message becomes a direct message from its sender's address, with its subject and the
//! message ids it replies to (`In-Reply-To`, then `References`), by which it is threaded into
//! its conversation. The quoted part of a reply ("On … wrote:", "> …") is left out.

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::MessageParser;

use super::mention::{EmailThread, Mention, MentionKind};
use super::network::{verify_hex_sha256, Network, PayloadError};

/// The email channel.
pub struct Email;

/// A message id without its angle brackets or spaces.
pub fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

/// `Re: subject`, unless it already says so.
pub fn reply_subject(subject: Option<&str>) -> String {
    match subject.map(str::trim).filter(|s| !s.is_empty()) {
        None => "Re: your message".to_owned(),
        Some(s) if s.len() >= 3 && s[..3].eq_ignore_ascii_case("re:") => s.to_owned(),
        Some(s) => format!("Re: {s}"),
    }
}

/// The new part of a reply: lines up to the quote's header ("On … wrote:", "El … escribió:",
/// "-----Original Message-----"), without quoted (`>`) lines, trimmed.
pub fn strip_quoted(text: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let lower = t.to_lowercase();
        let header = (lower.starts_with("on ") && lower.ends_with("wrote:"))
            || (lower.starts_with("el ") && lower.ends_with("escribió:"))
            || lower.starts_with("-----original message-----")
            || lower.starts_with("-----mensaje original-----");
        if header {
            break;
        }
        if t.starts_with('>') {
            continue;
        }
        kept.push(line);
    }
    kept.join("\n").trim().to_owned()
}

/// Most bytes of a message taken (attachments included).
pub const MAX_BYTES: usize = 10 * 1024 * 1024;

impl Network for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn signature_header(&self) -> &'static str {
        "x-inbound-signature"
    }

    fn verify(&self, secret: &[u8], signature: &str, _url: &str, body: &[u8]) -> bool {
        verify_hex_sha256(secret, signature, body)
    }

    fn mentions(&self, body: &[u8], account: &str) -> Result<Vec<Mention>, PayloadError> {
        if body.len() > MAX_BYTES {
            return Err(PayloadError("the message is larger than 10 MiB".into()));
        }
        let message = MessageParser::default()
            .parse(body)
            .ok_or_else(|| PayloadError("not an RFC 5322 message".into()))?;
        let from = message
            .from()
            .and_then(|a| a.first())
            .ok_or_else(|| PayloadError("the message has no From address".into()))?;
        let address = from
            .address()
            .filter(|a| a.contains('@'))
            .ok_or_else(|| PayloadError("the From header holds no address".into()))?
            .trim()
            .to_lowercase();
        if address == account.trim().to_lowercase() {
            // The brand's own message, copied back: not the contact's.
            return Ok(Vec::new());
        }
        let message_id = message
            .message_id()
            .map(bare_id)
            .filter(|id| !id.is_empty() && id.len() <= 500)
            .ok_or_else(|| PayloadError("the message has no Message-ID".into()))?;
        let mut replies_to: Vec<String> = Vec::new();
        for header in [message.in_reply_to(), message.references()] {
            let ids: Vec<String> = match (header.as_text_list(), header.as_text()) {
                (Some(list), _) => list.iter().map(|s| bare_id(s)).collect(),
                (None, Some(one)) => one.split_whitespace().map(bare_id).collect(),
                _ => Vec::new(),
            };
            for id in ids {
                if !id.is_empty() && id.len() <= 500 && !replies_to.contains(&id) {
                    replies_to.push(id);
                }
            }
        }
        replies_to.truncate(50);
        let text = message
            .body_text(0)
            .map(|t| strip_quoted(&t))
            .unwrap_or_default();
        let posted_at: DateTime<Utc> = message
            .date()
            .and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single())
            .unwrap_or_else(Utc::now);
        Ok(vec![Mention {
            network: "email".into(),
            external_id: message_id,
            handle: address,
            author_name: from.name().map(str::to_owned).filter(|n| !n.is_empty()),
            author_id: None,
            text,
            url: None,
            language: None,
            posted_at,
            kind: MentionKind::DirectMessage,
            hashtags: Vec::new(),
            mentions: Vec::new(),
            email: Some(EmailThread {
                subject: message.subject().map(str::to_owned),
                replies_to,
            }),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLY: &str = "From: Ana Lima <Ana@Example.test>\r\n\
To: support@acme.test\r\n\
Subject: Re: Your order 42\r\n\
Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n\
Message-ID: <reply-1@example.test>\r\n\
In-Reply-To: <out-1@acme.test>\r\n\
References: <first@example.test> <out-1@acme.test>\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Gracias, ya lo recibí.\r\n\
\r\n\
On Thu, Dec 3, 2026 at 9:00 AM Acme <support@acme.test> wrote:\r\n\
> Hola Ana, lo sentimos.\r\n";

    #[test]
    fn a_reply_is_read_with_its_thread_and_without_its_quote() {
        let m = Email
            .mentions(REPLY.as_bytes(), "support@acme.test")
            .unwrap()
            .remove(0);
        assert_eq!(m.handle, "ana@example.test");
        assert_eq!(m.author_name.as_deref(), Some("Ana Lima"));
        assert_eq!(m.external_id, "reply-1@example.test");
        assert_eq!(m.text, "Gracias, ya lo recibí.");
        assert_eq!(m.kind, MentionKind::DirectMessage);
        let thread = m.email.unwrap();
        assert_eq!(thread.subject.as_deref(), Some("Re: Your order 42"));
        assert_eq!(thread.replies_to, ["out-1@acme.test", "first@example.test"]);
        assert_eq!(m.posted_at.to_rfc3339(), "2026-12-04T10:00:00+00:00");
    }

    #[test]
    fn signatures_bad_messages_and_the_brands_own_mail() {
        let sig = format!(
            "sha256={}",
            hex::encode(super::super::network::hmac_sha256(
                b"secret",
                REPLY.as_bytes()
            ))
        );
        assert!(Email.verify(b"secret", &sig, "", REPLY.as_bytes()));
        assert!(!Email.verify(b"other", &sig, "", REPLY.as_bytes()));
        assert!(Email
            .mentions(b"From: x@y.test\r\n\r\nno id", "a@b.test")
            .is_err());
        assert!(Email
            .mentions(REPLY.as_bytes(), "ana@example.test")
            .unwrap()
            .is_empty());
        assert_eq!(reply_subject(Some("Order 42")), "Re: Order 42");
        assert_eq!(reply_subject(Some("RE: Order 42")), "RE: Order 42");
        assert_eq!(bare_id(" <a@b> "), "a@b");
        assert_eq!(
            strip_quoted("Hi\n> old\nthanks\n-----Original Message-----\nold"),
            "Hi\nthanks"
        );
    }
}
