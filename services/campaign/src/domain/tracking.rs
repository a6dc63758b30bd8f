//! Delivery tracking: signed, expiring tokens for the public open, click and unsubscribe routes
//! (a click token carries the link it redirects to, signed, so the redirect goes only to links
//! the message contained); the delivery status, which moves only forward and is safe out of
//! order; which events suppress an address; and machine opens (mail privacy proxies, link
//! scanners) told apart from people.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

/// What a token allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "k")]
pub enum Action {
    /// The open pixel.
    Open,
    /// A click on this link of the message.
    Click {
        /// The link.
        url: String,
    },
    /// One-click unsubscribe (RFC 8058) and the preference page.
    Unsubscribe,
    /// A provider's delivery status callback.
    Status,
    /// A survey link (the claims' `message` is the link's id): answers `survey`, as
    /// `customer` when the link is personal.
    Survey {
        /// The survey.
        survey: Uuid,
        /// The customer a personal link was made for.
        customer: Option<Uuid>,
    },
}

/// A token's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The tenant.
    #[serde(rename = "t")]
    pub tenant: String,
    /// The message.
    #[serde(rename = "m")]
    pub message: Uuid,
    /// What it allows.
    #[serde(rename = "a")]
    pub action: Action,
    /// Unix seconds after which it is refused.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token (wrong shape or encoding).
    Malformed,
    /// The signature does not match.
    BadSignature,
    /// Past its expiry.
    Expired,
}

/// The deployment's tracking key (at least 32 bytes).
#[derive(Clone)]
pub struct TrackingKey(Vec<u8>);

impl std::fmt::Debug for TrackingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrackingKey(…)")
    }
}

impl TrackingKey {
    /// A key from secret bytes; `None` when shorter than 32 bytes.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= 32).then(|| Self(bytes.to_vec()))
    }

    fn mac(&self, payload: &str) -> Vec<u8> {
        match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mut m) => {
                m.update(payload.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }

    /// `payload.signature`, both base64url.
    pub fn issue(&self, claims: &Claims) -> String {
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&payload));
        format!("{payload}.{sig}")
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let (payload, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).map_err(|_| TokenError::BadSignature)?;
        mac.update(payload.as_bytes());
        // Compared in constant time.
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if now.timestamp() > claims.expires {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// A message's delivery status. It only moves forward ([`Status::advance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted by the gate, not yet handed to the channel.
    Queued,
    /// Handed to the channel.
    Sent,
    /// The provider failed to deliver, for now.
    SoftBounced,
    /// Delivered to the mailbox or handset.
    Delivered,
    /// Opened (by a person).
    Opened,
    /// A link was clicked.
    Clicked,
    /// Permanently undeliverable.
    HardBounced,
    /// Marked as spam by the recipient.
    Complained,
}

impl Status {
    fn rank(self) -> u8 {
        match self {
            Status::Queued => 0,
            Status::Sent => 1,
            Status::SoftBounced => 2,
            Status::Delivered => 3,
            Status::Opened => 4,
            Status::Clicked => 5,
            Status::HardBounced => 6,
            Status::Complained => 7,
        }
    }

    /// The status after `event`, whatever order events arrive in: the furthest wins, so a late
    /// `delivered` never undoes `opened`, and a complaint is final.
    pub fn advance(self, event: Status) -> Status {
        if event.rank() > self.rank() {
            event
        } else {
            self
        }
    }
}

/// Whether the address is suppressed after `event`, given its soft bounces in a row
/// (including this one) and the tenant's threshold: complaints and hard bounces at once, soft
/// bounces after `threshold`.
pub fn suppresses(event: Status, soft_bounces_in_a_row: u32, threshold: u32) -> bool {
    match event {
        Status::Complained | Status::HardBounced => true,
        Status::SoftBounced => soft_bounces_in_a_row >= threshold.max(1),
        _ => false,
    }
}

/// Whether an open looks automated: a mail privacy proxy or image cache (Apple, Google,
/// Yahoo), a security scanner, or an open within two seconds of sending (no person is that
/// fast). Machine opens are recorded, flagged, and not counted as opens in reports.
pub fn is_machine_open(user_agent: Option<&str>, seconds_after_send: i64) -> bool {
    const MARKERS: [&str; 8] = [
        "googleimageproxy",
        "yahoomailproxy",
        "via ggpht.com",
        "proofpoint",
        "barracuda",
        "mimecast",
        "bot",
        "preview",
    ];
    if seconds_after_send < 2 {
        return true;
    }
    let Some(ua) = user_agent.map(str::to_ascii_lowercase) else {
        return true;
    };
    // Apple Mail Privacy Protection fetches with a bare "Mozilla/5.0".
    ua.trim() == "mozilla/5.0" || MARKERS.iter().any(|m| ua.contains(m))
}

/// Rewrites every `href="http…"` / `href='http…'` of `html` with `track(url)` (the click
/// redirect), and returns the new HTML with the links it contained (unescaped: `&amp;` read as
/// `&`), in order, without repeats. Other links (`mailto:`, anchors) are left alone.
pub fn rewrite_links(html: &str, mut track: impl FnMut(&str) -> String) -> (String, Vec<String>) {
    let mut out = String::with_capacity(html.len() + 64);
    let mut links: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.to_ascii_lowercase().find("href=") {
        let (before, after) = rest.split_at(at + 5);
        out.push_str(before);
        let quote = match after.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => {
                rest = after;
                continue;
            }
        };
        let body = &after[1..];
        let Some(end) = body.find(quote) else {
            rest = after;
            continue;
        };
        let raw = &body[..end];
        let lower = raw.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let url = raw.replace("&amp;", "&");
            out.push(quote);
            out.push_str(&track(&url));
            out.push(quote);
            if !links.contains(&url) {
                links.push(url);
            }
        } else {
            out.push(quote);
            out.push_str(raw);
            out.push(quote);
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    (out, links)
}

/// Adds the open pixel before `</body>` (or at the end).
pub fn add_pixel(html: &str, pixel_url: &str) -> String {
    let img =
        format!(r#"<img src="{pixel_url}" width="1" height="1" alt="" style="display:none">"#);
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(at) => format!("{}{img}{}", &html[..at], &html[at..]),
        None => format!("{html}{img}"),
    }
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn links_are_rewritten_and_collected() {
        let html = r#"<a href="https://shop.test/a?x=1&amp;y=2">A</a> <a href='mailto:x@y.z'>m</a>
            <A HREF="http://shop.test/b">B</A><a href="https://shop.test/a?x=1&amp;y=2">again</a>"#;
        let (out, links) = rewrite_links(html, |u| format!("T({})", u.len()));
        assert_eq!(
            links,
            vec!["https://shop.test/a?x=1&y=2", "http://shop.test/b"]
        );
        assert!(out.contains(r#"href="T(27)""#), "{out}");
        assert!(out.contains("mailto:x@y.z"));
        assert_eq!(out.matches("T(").count(), 3);
        assert!(add_pixel("<body>x</body>", "P").contains(r#"<img src="P""#));
        assert!(add_pixel("<body>x</body>", "P").ends_with("</body>"));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key() -> TrackingKey {
        TrackingKey::new(&[7u8; 32]).unwrap()
    }

    fn click(url: &str, expires: i64) -> Claims {
        Claims {
            tenant: "acme".into(),
            message: Uuid::from_u128(1),
            action: Action::Click { url: url.into() },
            expires,
        }
    }

    #[test]
    fn tokens_verify_expire_and_cannot_be_altered() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let t = key().issue(&click("https://shop.example/sale", 1_800_000_100));
        assert_eq!(
            key().verify(&t, now).unwrap(),
            click("https://shop.example/sale", 1_800_000_100)
        );
        let later = DateTime::from_timestamp(1_800_000_101, 0).unwrap();
        assert_eq!(key().verify(&t, later), Err(TokenError::Expired));
        // Another link (an open redirect attempt) under the same signature.
        let (_, sig) = t.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&click("https://evil.example", 1_800_000_100)).unwrap());
        assert_eq!(
            key().verify(&format!("{forged_payload}.{sig}"), now),
            Err(TokenError::BadSignature)
        );
        let other = TrackingKey::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&t, now), Err(TokenError::BadSignature));
        assert_eq!(key().verify("nonsense", now), Err(TokenError::Malformed));
        assert!(TrackingKey::new(b"short").is_none());
        assert_eq!(format!("{:?}", key()), "TrackingKey(…)");
    }

    #[test]
    fn status_moves_only_forward_in_any_order() {
        use Status::*;
        let orders = [
            vec![Sent, Delivered, Opened, Clicked],
            vec![Clicked, Opened, Delivered, Sent],
            vec![Opened, Sent, Clicked, Delivered],
        ];
        for events in orders {
            assert_eq!(events.iter().fold(Queued, |s, e| s.advance(*e)), Clicked);
        }
        assert_eq!(Delivered.advance(SoftBounced), Delivered);
        assert_eq!(Opened.advance(Complained), Complained);
        assert_eq!(Complained.advance(Clicked), Complained);
    }

    #[test]
    fn complaints_and_hard_bounces_suppress_at_once_soft_ones_after_the_threshold() {
        assert!(suppresses(Status::Complained, 0, 3));
        assert!(suppresses(Status::HardBounced, 0, 3));
        assert!(!suppresses(Status::SoftBounced, 2, 3));
        assert!(suppresses(Status::SoftBounced, 3, 3));
        assert!(!suppresses(Status::Opened, 9, 3));
    }

    #[test]
    fn machine_opens_are_told_apart() {
        assert!(is_machine_open(Some("Mozilla/5.0"), 3600));
        assert!(is_machine_open(
            Some("Mozilla/5.0 (Windows NT 5.1) via ggpht.com GoogleImageProxy"),
            60
        ));
        assert!(is_machine_open(
            Some("Mozilla/5.0 (Macintosh) AppleWebKit/605"),
            1
        ));
        assert!(is_machine_open(None, 600));
        assert!(!is_machine_open(
            Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) AppleWebKit/605.1.15 Mobile"),
            600
        ));
    }

    proptest! {
        #[test]
        fn any_issued_token_round_trips_and_any_changed_byte_is_refused(
            url in "https://[a-z]{1,10}\\.example/[a-z0-9/]{0,20}", at in 0usize..200,
        ) {
            let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
            let claims = click(&url, 1_900_000_000);
            let t = key().issue(&claims);
            prop_assert_eq!(key().verify(&t, now), Ok(claims));
            let mut bytes = t.into_bytes();
            let i = at % bytes.len();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(key().verify(&changed, now).is_err());
        }
    }
}
