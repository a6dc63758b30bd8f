//! SMS as a conversation channel: the SMS provider's inbound webhook, in Twilio's format (the
//! format the journeys' SMS adapter already speaks outbound). The provider posts each received
//! message as a form (`application/x-www-form-urlencoded`) of `MessageSid`, `From`, `To` and
//! `Body` among others, signed in `X-Twilio-Signature`: the base64 HMAC-SHA1, keyed with the
//! account's auth token, of the full URL it called followed by every posted parameter's name
//! and value, sorted by name. The URL is part of what is signed, so the connector's
//! `webhook_url` must be registered with the provider exactly as shown.
//!
//! The message becomes a direct message from the sender's number, which is the identity its
//! `SMS Received` event carries; its thread is the number's SMS conversation.

use base64::Engine as _;
use chrono::Utc;

use super::mention::{Mention, MentionKind};
use super::network::{same, Network, PayloadError};

/// The SMS channel.
pub struct Sms;

/// Most bytes of a call taken (a form of a few fields; Twilio's longest text is 1,600 characters).
pub const MAX_BYTES: usize = 64 * 1024;

/// The signature of a form call to `url` with `params`, as the provider computes it.
fn signature(secret: &[u8], url: &str, params: &[(String, String)]) -> String {
    use hmac::{Hmac, Mac};
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Stable, so repeated names keep the order they were posted in.
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A phone number as the provider writes it (`+` and 6 to 15 digits, E.164), or `None`.
fn e164(number: &str) -> Option<String> {
    let n = number.trim();
    let digits = n.strip_prefix('+')?;
    (6..=15)
        .contains(&digits.len())
        .then_some(())
        .filter(|()| digits.bytes().all(|b| b.is_ascii_digit()))
        .map(|()| n.to_owned())
}

impl Network for Sms {
    fn name(&self) -> &'static str {
        "sms"
    }

    fn signature_header(&self) -> &'static str {
        "x-twilio-signature"
    }

    fn verify(&self, secret: &[u8], given: &str, url: &str, body: &[u8]) -> bool {
        body.len() <= MAX_BYTES
            && same(
                given.trim().as_bytes(),
                signature(secret, url, &form(body)).as_bytes(),
            )
    }

    /// An empty TwiML document: the provider sends no automatic answer (the agent replies).
    fn acknowledgement(&self) -> Option<(&'static str, &'static str)> {
        Some((
            "text/xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
        ))
    }

    /// `account` is the brand's number the connector listens on: a message to another number
    /// is refused (the provider is configured with another connector's URL).
    fn mentions(&self, body: &[u8], account: &str) -> Result<Vec<Mention>, PayloadError> {
        if body.len() > MAX_BYTES {
            return Err(PayloadError("the call is larger than 64 KiB".into()));
        }
        let fields = form(body);
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let sid = field("MessageSid")
            .or_else(|| field("SmsSid"))
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 100)
            .ok_or_else(|| PayloadError("the form has no MessageSid".into()))?;
        let from = field("From")
            .and_then(e164)
            .ok_or_else(|| PayloadError("From is not a phone number in E.164 (+…)".into()))?;
        let to = field("To").map(str::trim).unwrap_or_default();
        let brand = account.trim();
        if !brand.is_empty() && to != brand {
            return Err(PayloadError(format!(
                "the message is to {to}, not to this connector's number"
            )));
        }
        if from == brand {
            return Ok(Vec::new());
        }
        Ok(vec![Mention {
            network: "sms".into(),
            external_id: sid.to_owned(),
            handle: from,
            author_name: None,
            author_id: None,
            text: field("Body").unwrap_or_default().trim().to_owned(),
            url: None,
            language: None,
            // The provider's form carries no time: the message is as old as the call.
            posted_at: Utc::now(),
            kind: MentionKind::DirectMessage,
            hashtags: Vec::new(),
            mentions: Vec::new(),
            email: None,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(params: &[(&str, &str)]) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish()
            .into_bytes()
    }

    #[test]
    fn the_signature_is_twilios_published_example() {
        // twilio-python's request validator test: token 12345, this URL and these parameters.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let body = encoded(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ]);
        let expected = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(Sms.verify(b"12345", expected, url, &body));
        assert!(!Sms.verify(b"54321", expected, url, &body));
        assert!(!Sms.verify(b"12345", expected, "https://mycompany.com/other", &body));
        let tampered = encoded(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1235"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ]);
        assert!(!Sms.verify(b"12345", expected, url, &tampered));
    }

    #[test]
    fn an_inbound_message_is_a_direct_message_from_its_number() {
        let body = encoded(&[
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
            ("AccountSid", "AC1"),
            ("From", "+34600111222"),
            ("To", "+34910000000"),
            ("Body", " ¿Dónde está mi pedido? "),
            ("NumMedia", "0"),
        ]);
        let m = Sms.mentions(&body, "+34910000000").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].handle, "+34600111222");
        assert_eq!(m[0].external_id, "SM0123456789abcdef0123456789abcdef");
        assert_eq!(m[0].text, "¿Dónde está mi pedido?");
        assert_eq!(m[0].kind, MentionKind::DirectMessage);
        // Another number's message, a sender that is no number, no id: refused with why.
        assert!(Sms.mentions(&body, "+34910000001").is_err());
        for (name, bad) in [("From", "ana"), ("From", "+12"), ("MessageSid", "")] {
            let mut fields = vec![
                ("MessageSid", "SM1"),
                ("From", "+34600111222"),
                ("To", "+34910000000"),
                ("Body", "hola"),
            ];
            fields.retain(|(k, _)| *k != name);
            fields.push((name, bad));
            let e = Sms.mentions(&encoded(&fields), "+34910000000").unwrap_err();
            assert!(e.0.contains(name), "{name}: {e}");
        }
    }
}
