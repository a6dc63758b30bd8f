//! Email over SMTP with lettre (rustls for `smtps://` and STARTTLS). The relay is the
//! deployment's (`CRM_CAMPAIGN__SMTP_URL`, for example `smtp://127.0.0.1:2525` or
//! `smtps://user:pass@smtp.example.com`); the sender is the tenant's channel settings. Every
//! message carries a `Message-ID` derived from its send key (a retried send is recognisable
//! as the same message) and, unless transactional, `List-Unsubscribe` with
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};

use super::{Accepted, Outbound, SendError};

/// The SMTP channel: one pooled transport to the deployment's relay.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Smtp {
    /// A transport for `url` (`smtp://host:port`, `smtps://…`, `smtp://…?tls=required`).
    pub fn new(url: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("CRM_CAMPAIGN__SMTP_URL cannot be used: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(30)))
            .build();
        Ok(Self { transport })
    }

    /// Whether the relay answers (`/readyz` does not depend on it: mail waits when it is down).
    pub async fn ping(&self) -> bool {
        self.transport.test_connection().await.unwrap_or(false)
    }
}

/// `<hash@domain>`: the same send key always gives the same id.
pub fn message_id(send_key: &str, from: &str) -> String {
    let domain = from.rsplit_once('@').map_or("crm.invalid", |(_, d)| d);
    let digest = Sha256::digest(send_key.as_bytes());
    format!("<{}@{domain}>", hex::encode(&digest[..16]))
}

/// A message id without angle brackets, spaces or line breaks (never a header injection).
fn bare(id: &str) -> String {
    id.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '<' | '>'))
        .collect()
}

/// The message as lettre builds it.
pub fn build(m: &Outbound) -> Result<Message, SendError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        SendError::Permanent(format!("{what} is not a valid address: {e}"))
    };
    let from_addr = m.from.parse().map_err(|e| bad("from", &e))?;
    let to: Mailbox = m.to.parse().map_err(|e| bad("to", &e))?;
    let mut builder = Message::builder()
        .from(Mailbox::new(m.from_name.clone(), from_addr))
        .to(to)
        .subject(m.subject.clone())
        .message_id(Some(message_id(&m.send_key, &m.from)));
    if let Some(r) = &m.reply_to {
        builder = builder.reply_to(r.parse().map_err(|e| bad("reply_to", &e))?);
    }
    if let Some(id) = &m.in_reply_to {
        builder = builder.in_reply_to(format!("<{}>", bare(id)));
    }
    if !m.references.is_empty() {
        let refs: Vec<String> = m
            .references
            .iter()
            .map(|r| format!("<{}>", bare(r)))
            .collect();
        builder = builder.references(refs.join(" "));
    }
    let text = m.text.clone().unwrap_or_default();
    let body = match &m.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html.clone())),
        None => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text),
        ),
    };
    let mut message = body.map_err(|e| SendError::Permanent(format!("message: {e}")))?;
    if let Some(u) = &m.unsubscribe {
        let headers = message.headers_mut();
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{u}>"),
        ));
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_owned(),
        ));
    }
    Ok(message)
}

fn classify(e: &SmtpError) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(e.to_string())
    } else {
        SendError::Transient(e.to_string())
    }
}

impl super::Send for Smtp {
    async fn send(&self, m: &Outbound) -> Result<Accepted, SendError> {
        let message = build(m)?;
        let answer = self
            .transport
            .send(message)
            .await
            .map_err(|e| classify(&e))?;
        let provider_id = answer.message().next().map(str::to_owned);
        Ok(Accepted { provider_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound() -> Outbound {
        Outbound {
            send_key: "i:hello:1".into(),
            to: "ana@example.test".into(),
            from: "news@acme.test".into(),
            from_name: Some("Acme".into()),
            reply_to: None,
            subject: "Hola Ana".into(),
            html: Some("<p>Hola</p>".into()),
            text: Some("Hola".into()),
            unsubscribe: Some("https://crm.test/t/u/abc".into()),
            in_reply_to: None,
            references: Vec::new(),
        }
    }

    #[test]
    fn message_ids_follow_the_send_key() {
        let a = message_id("i:hello:1", "news@acme.test");
        assert_eq!(a, message_id("i:hello:1", "other@acme.test"));
        assert_ne!(a, message_id("i:hello:2", "news@acme.test"));
        assert!(a.ends_with("@acme.test>"), "{a}");
    }

    #[test]
    fn messages_carry_one_click_unsubscribe_and_their_id() {
        let raw = String::from_utf8(build(&outbound()).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("List-Unsubscribe: <https://crm.test/t/u/abc>"),
            "{raw}"
        );
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains(&format!(
            "Message-ID: {}",
            message_id("i:hello:1", "x@acme.test")
        )));
        let mut reply = outbound();
        reply.in_reply_to = Some("<first@example.test>".into());
        reply.references = vec!["first@example.test".into(), "x\r\nBcc: a@b.test".into()];
        let raw = String::from_utf8(build(&reply).unwrap().formatted()).unwrap();
        assert!(raw.contains("In-Reply-To: <first@example.test>"), "{raw}");
        assert!(
            raw.contains("References: <first@example.test> <xBcc:a@b.test>"),
            "{raw}"
        );
        let mut injected = outbound();
        injected.to = "ana@example.test\r\nBcc: all@example.test".into();
        assert!(matches!(build(&injected), Err(SendError::Permanent(_))));
    }
}
