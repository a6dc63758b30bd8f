//! What a webhook subscription is, with no I/O: which event types an endpoint may ask for
//! (exact kinds, a family with `.*`, or `*`), whether a kind matches, what an endpoint URL must
//! look like, and the body every delivery carries.

use crm_envelope::Envelope;
use serde_json::{json, Value};
use uuid::Uuid;

/// The families of kinds the output topics carry (`crm.profiles.v1`, `crm.segments.v1`,
/// `crm.loyalty.v1`, `crm.interactions.v1`; docs/events.md), and those the contract reserves
/// for interactions still to come (offers, surveys, conversations, the pipeline).
pub const FAMILIES: &[&str] = &[
    "profile",
    "consent",
    "segment",
    "lifecycle",
    "lead",
    "rfm",
    "points",
    "tier",
    "reward",
    "journey",
    "message",
    "offer",
    "decision",
    "survey",
    "conversation",
    "opportunity",
    "task",
];

/// Most event-type patterns one endpoint may hold.
pub const MAX_PATTERNS: usize = 50;

/// Longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2_000;

/// Checks one pattern: `*`, `family.*` or `family.kind` (lowercase letters and `_`), with a
/// family of [`FAMILIES`]; the error says what is wrong.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let Some((family, rest)) = pattern.split_once('.') else {
        return Err(format!(
            "`{pattern}` is not an event type: write `family.kind`, `family.*` or `*`"
        ));
    };
    if !FAMILIES.contains(&family) {
        return Err(format!(
            "`{pattern}`: `{family}` is not a family of events; the families are {}",
            FAMILIES.join(", ")
        ));
    }
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if rest == "*" || rest.split('.').all(word) {
        Ok(())
    } else {
        Err(format!(
            "`{pattern}`: a kind is lowercase letters and `_` separated by dots, or `*` for the whole family"
        ))
    }
}

/// Checks a list of patterns: one to [`MAX_PATTERNS`], each valid; errors name the index.
pub fn check_patterns(patterns: &[String]) -> Result<(), String> {
    if patterns.is_empty() {
        return Err("event_types: give at least one event type (`*` for every one)".to_owned());
    }
    if patterns.len() > MAX_PATTERNS {
        return Err(format!(
            "event_types: at most {MAX_PATTERNS} event types per endpoint"
        ));
    }
    for (i, p) in patterns.iter().enumerate() {
        check_pattern(p).map_err(|e| format!("event_types[{i}]: {e}"))?;
    }
    Ok(())
}

/// Whether `pattern` matches the event kind `kind`.
pub fn matches(pattern: &str, kind: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(family) => kind
            .strip_prefix(family)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == kind,
    }
}

/// Whether an endpoint subscribed to `patterns` wants `kind`.
pub fn wants(patterns: &[String], kind: &str) -> bool {
    patterns.iter().any(|p| matches(p, kind))
}

/// Checks an endpoint URL: http or https, a host, no user name or password in it (secrets in
/// URLs end up in logs), at most [`MAX_URL_LEN`] characters. Where it resolves is the SSRF
/// guard's question, asked at each delivery.
pub fn check_url(raw: &str) -> Result<(), String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("url: at most {MAX_URL_LEN} characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| format!("url: not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("url: use an http or https URL".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("url: the URL has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "url: put no user name or password in the URL; the signature authenticates the call"
                .to_owned(),
        );
    }
    Ok(())
}

/// The body of a delivery, as the Standard Webhooks specification suggests: the event kind as
/// `type`, when it happened as `timestamp`, and the event's envelope (docs/events.md) as
/// `data`.
pub fn body(envelope: &Envelope) -> Value {
    json!({
        "type": envelope.kind,
        "timestamp": envelope.occurred_at,
        "data": envelope,
    })
}

/// The `webhook-id` of a delivery: the same on every attempt and replay, so a receiver can
/// drop a second copy.
pub fn message_id(delivery: Uuid) -> String {
    format!("msg_{}", delivery.simple())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn patterns_match_exact_kinds_families_and_everything() {
        assert!(matches("*", "segment.entered"));
        assert!(matches("segment.*", "segment.entered"));
        assert!(matches("segment.entered", "segment.entered"));
        assert!(!matches("segment.entered", "segment.exited"));
        assert!(!matches("segment.*", "segments.entered"));
        assert!(!matches("segment.*", "segment"));
        assert!(!matches("message.*", "journey.entered"));
        assert!(wants(
            &["points.*".to_owned(), "tier.changed".to_owned()],
            "tier.changed"
        ));
        assert!(!wants(&["points.*".to_owned()], "tier.changed"));
    }

    #[test]
    fn bad_patterns_say_what_to_write() {
        assert!(check_pattern("*").is_ok());
        assert!(check_pattern("message.*").is_ok());
        assert!(check_pattern("message.opened").is_ok());
        assert!(check_pattern("journey.goal_reached").is_ok());
        let e = check_pattern("orders.*").unwrap_err();
        assert!(e.contains("not a family") && e.contains("segment"), "{e}");
        assert!(check_pattern("message")
            .unwrap_err()
            .contains("family.kind"));
        assert!(check_pattern("message.Opened").is_err());
        assert!(check_pattern("message.").is_err());
        assert!(check_pattern("message.*.x").is_err());
        assert!(check_pattern("*.opened").is_err());
        let e = check_patterns(&["*".to_owned(), "x".to_owned()]).unwrap_err();
        assert!(e.starts_with("event_types[1]"), "{e}");
        assert!(check_patterns(&[]).is_err());
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert!(check_url("https://hooks.example.com/crm?x=1").is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("not a url").is_err());
        assert!(check_url("https://user:pw@example.com/").is_err());
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn the_body_carries_the_kind_the_time_and_the_envelope() {
        let envelope: Envelope = serde_json::from_value(json!({
            "id": "e1", "tenant_id": "acme", "kind": "segment.entered",
            "occurred_at": "2026-12-01T10:00:00Z", "received_at": "2026-12-01T10:00:01Z",
            "source": "segmentation", "customer_id": "0190a0a0-0000-7000-8000-000000000001",
            "properties": {"segment_id": "vip"}
        }))
        .unwrap();
        let b = body(&envelope);
        assert_eq!(b["type"], "segment.entered");
        assert_eq!(b["timestamp"], "2026-12-01T10:00:00Z");
        assert_eq!(b["data"]["properties"]["segment_id"], "vip");
        assert_eq!(b["data"]["tenant_id"], "acme");
        assert_eq!(
            message_id(Uuid::nil()),
            "msg_00000000000000000000000000000000"
        );
    }

    proptest! {
        /// A family pattern matches exactly the kinds of that family; an exact pattern only
        /// itself; `*` everything.
        #[test]
        fn family_patterns_match_their_family_only(
            fam in prop::sample::select(FAMILIES), other in prop::sample::select(FAMILIES),
            kind in "[a-z_]{1,12}",
        ) {
            let k = format!("{other}.{kind}");
            let pattern = format!("{fam}.*");
            prop_assert!(check_pattern(&pattern).is_ok());
            prop_assert_eq!(matches(&pattern, &k), fam == other);
            prop_assert!(matches(&k, &k));
            prop_assert!(matches("*", &k));
            prop_assert!(check_pattern(&k).is_ok());
        }
    }
}
