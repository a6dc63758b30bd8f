//! The ingest contract: what an event must look like to enter `crm.ingest.v1`. The gateway applies
//! it to every posted event; identity applies it again to messages that integrations produce
//! straight to Kafka, and dead-letters what fails.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::{Envelope, TenantId};

/// The largest event, serialised, that the suite accepts (32 KiB).
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// The most events one `POST /v1/events` may carry.
pub const MAX_BATCH_EVENTS: usize = 500;

/// Kinds accepted from outside (the Segment spec's calls).
const INGEST_KINDS: [&str; 6] = ["track", "identify", "page", "screen", "group", "alias"];
/// The longest message id we accept; ids end up in keys and primary keys.
const MAX_ID_LEN: usize = 128;

/// Limits applied to incoming events.
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Largest serialised event, in bytes.
    pub max_event_bytes: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_event_bytes: MAX_EVENT_BYTES,
        }
    }
}

/// Why one event breaks the ingest contract. `code` is stable and machine-readable; `detail`
/// tells the sender what to fix. It never quotes the event's values (they may be personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, utoipa::ToSchema)]
#[error("{code}: {detail}")]
pub struct EventError {
    /// Stable code, such as `missing_identity`.
    pub code: &'static str,
    /// The offending field, as a JSON pointer, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// What is wrong and how to fix it.
    pub detail: String,
}

impl EventError {
    fn new(code: &'static str, pointer: Option<&str>, detail: impl Into<String>) -> Self {
        Self {
            code,
            pointer: pointer.map(str::to_owned),
            detail: detail.into(),
        }
    }
}

/// Turns one posted JSON event into an envelope for `crm.ingest.v1`: the tenant comes from the
/// API key, `id` defaults to a new UUIDv7, `occurred_at` to `received_at`, `source` to `api`.
pub fn parse_ingest_event(
    raw: Value,
    tenant: &TenantId,
    received_at: DateTime<Utc>,
    limits: IngestLimits,
) -> Result<Envelope, EventError> {
    let size = serde_json::to_vec(&raw)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > limits.max_event_bytes {
        return Err(EventError::new(
            "event_too_large",
            None,
            format!(
                "the event is {size} bytes; the limit is {} bytes",
                limits.max_event_bytes
            ),
        ));
    }
    let Value::Object(mut obj) = raw else {
        return Err(EventError::new(
            "not_an_object",
            None,
            "each event must be a JSON object",
        ));
    };
    match obj.get("tenant_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == tenant.as_str() => {}
        Some(_) => {
            return Err(EventError::new(
                "tenant_mismatch",
                Some("/tenant_id"),
                "tenant_id differs from the API key's tenant; omit it or send the key's tenant",
            ))
        }
    }
    obj.insert("tenant_id".into(), Value::String(tenant.to_string()));
    obj.insert(
        "received_at".into(),
        Value::String(received_at.to_rfc3339()),
    );
    if obj.get("id").is_none_or(Value::is_null) {
        obj.insert("id".into(), Value::String(Uuid::now_v7().to_string()));
    }
    if obj.get("occurred_at").is_none_or(Value::is_null) {
        obj.insert(
            "occurred_at".into(),
            Value::String(received_at.to_rfc3339()),
        );
    }
    if obj.get("source").is_none_or(Value::is_null) {
        obj.insert("source".into(), Value::String("api".into()));
    }
    if obj.contains_key("customer_id") {
        return Err(EventError::new(
            "customer_id_not_allowed",
            Some("/customer_id"),
            "customer_id is set by identity resolution; identify the customer with identity.user_id, anonymous_id or email",
        ));
    }
    let envelope: Envelope = serde_json::from_value(Value::Object(obj)).map_err(|e| {
        EventError::new(
            "invalid_field",
            None,
            format!("the event does not match the envelope: {}", describe(&e)),
        )
    })?;
    check_ingest_contract(&envelope)?;
    Ok(envelope)
}

impl Envelope {
    /// Parses a message taken from `crm.ingest.v1` and checks the ingest contract, so that
    /// messages produced straight to Kafka meet the same rules as those posted to the gateway.
    pub fn from_ingest_message(payload: &[u8]) -> Result<Envelope, EventError> {
        if payload.len() > MAX_EVENT_BYTES * 2 {
            return Err(EventError::new(
                "event_too_large",
                None,
                format!("the message is {} bytes", payload.len()),
            ));
        }
        let envelope: Envelope = serde_json::from_slice(payload).map_err(|e| {
            EventError::new(
                "invalid_envelope",
                None,
                format!("not a valid envelope: {}", describe(&e)),
            )
        })?;
        check_ingest_contract(&envelope)?;
        Ok(envelope)
    }
}

/// The rules an envelope must meet on `crm.ingest.v1`.
fn check_ingest_contract(e: &Envelope) -> Result<(), EventError> {
    if e.id.trim().is_empty() || e.id.len() > MAX_ID_LEN {
        return Err(EventError::new(
            "invalid_id",
            Some("/id"),
            format!("id must be 1-{MAX_ID_LEN} characters"),
        ));
    }
    if !INGEST_KINDS.contains(&e.kind.as_str()) {
        return Err(EventError::new(
            "unknown_kind",
            Some("/kind"),
            format!("kind must be one of {}", INGEST_KINDS.join(", ")),
        ));
    }
    if e.kind == "track" && e.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(EventError::new(
            "missing_name",
            Some("/name"),
            "a track event needs a name, such as \"Order Completed\"",
        ));
    }
    if e.customer_id.is_some() {
        return Err(EventError::new(
            "customer_id_not_allowed",
            Some("/customer_id"),
            "customer_id is set by identity resolution",
        ));
    }
    let id = &e.identity;
    let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    if !present(&id.user_id) && !present(&id.anonymous_id) {
        return Err(EventError::new(
            "missing_identity",
            Some("/identity"),
            "identity.user_id or identity.anonymous_id is required",
        ));
    }
    for (pointer, value) in [
        ("/identity/user_id", id.user_id.as_deref()),
        ("/identity/anonymous_id", id.anonymous_id.as_deref()),
        ("/identity/email", id.email.as_ref().map(|e| e.as_str())),
        ("/identity/phone", id.phone.as_ref().map(|p| p.as_str())),
    ] {
        if value.is_some_and(|v| v.len() > 256) {
            return Err(EventError::new(
                "invalid_field",
                Some(pointer),
                "identifiers are at most 256 characters",
            ));
        }
    }
    Ok(())
}

/// A serde error described without quoting the input (which may hold personal data).
fn describe(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde_json's messages name the field and the expected type; values appear only after
    // "invalid value: " or "invalid type: " as `string "..."`; cut those.
    match text.find(" \"") {
        Some(cut) if text.contains("invalid") => format!("{}…", &text[..cut]),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn parse(v: Value) -> Result<Envelope, EventError> {
        parse_ingest_event(v, &tenant(), Utc::now(), IngestLimits::default())
    }

    #[test]
    fn fills_defaults_and_keeps_client_ids() {
        let e = parse(
            json!({"kind": "identify", "identity": {"user_id": "u1"}, "traits": {"plan": "pro"}}),
        )
        .unwrap();
        assert_eq!(e.tenant_id, tenant());
        assert_eq!(e.source, "api");
        assert!(Uuid::parse_str(&e.id).is_ok());
        assert_eq!(e.occurred_at, e.received_at);
        let e = parse(json!({"id": "m-1", "kind": "track", "name": "Signed Up", "identity": {"anonymous_id": "a"}})).unwrap();
        assert_eq!(e.id, "m-1");
        assert_eq!(e.partition_key(), "acme:a");
    }

    #[test]
    fn rejects_with_stable_codes() {
        let code = |v: Value| parse(v).unwrap_err().code;
        assert_eq!(code(json!([1])), "not_an_object");
        assert_eq!(
            code(json!({"kind": "track", "name": "X"})),
            "missing_identity"
        );
        assert_eq!(
            code(json!({"kind": "explode", "identity": {"user_id": "u"}})),
            "unknown_kind"
        );
        assert_eq!(
            code(json!({"kind": "track", "identity": {"user_id": "u"}})),
            "missing_name"
        );
        assert_eq!(
            code(
                json!({"kind": "track", "name": "X", "tenant_id": "other", "identity": {"user_id": "u"}})
            ),
            "tenant_mismatch"
        );
        assert_eq!(
            code(
                json!({"kind": "track", "name": "X", "occurred_at": "yesterday", "identity": {"user_id": "u"}})
            ),
            "invalid_field"
        );
        assert_eq!(
            code(json!({"kind": "identify", "customer_id": "x", "identity": {"user_id": "u"}})),
            "customer_id_not_allowed"
        );
        let big = "x".repeat(MAX_EVENT_BYTES);
        assert_eq!(
            code(json!({"kind": "identify", "identity": {"user_id": "u"}, "traits": {"bio": big}})),
            "event_too_large"
        );
    }

    #[test]
    fn error_details_do_not_quote_values() {
        let err = parse(json!({"kind": "identify", "occurred_at": "ana@example.com", "identity": {"user_id": "u"}})).unwrap_err();
        assert!(!err.detail.contains("ana@example.com"), "{}", err.detail);
    }

    #[test]
    fn kafka_messages_meet_the_same_contract() {
        let ok = parse(json!({"kind": "identify", "identity": {"user_id": "u1"}})).unwrap();
        let bytes = serde_json::to_vec(&ok).unwrap();
        assert_eq!(Envelope::from_ingest_message(&bytes).unwrap(), ok);
        assert_eq!(
            Envelope::from_ingest_message(b"{not json")
                .unwrap_err()
                .code,
            "invalid_envelope"
        );
        let mut no_identity = ok.clone();
        no_identity.identity = Default::default();
        let bytes = serde_json::to_vec(&no_identity).unwrap();
        assert_eq!(
            Envelope::from_ingest_message(&bytes).unwrap_err().code,
            "missing_identity"
        );
    }

    proptest! {
        /// Whatever JSON arrives, parsing never panics, and what it accepts round-trips through
        /// the Kafka contract check unchanged.
        #[test]
        fn accepted_events_round_trip(kind in "(track|identify|page|bogus)", name in proptest::option::of("[A-Za-z ]{0,20}"),
                                      user in proptest::option::of("[a-z0-9]{0,10}"), anon in proptest::option::of("[a-z0-9]{0,10}"),
                                      extra in proptest::collection::btree_map("[a-z]{1,6}", any::<i64>(), 0..5)) {
            let raw = json!({"kind": kind, "name": name, "identity": {"user_id": user, "anonymous_id": anon}, "properties": extra});
            if let Ok(e) = parse(raw) {
                let bytes = serde_json::to_vec(&e).unwrap();
                prop_assert_eq!(Envelope::from_ingest_message(&bytes).unwrap(), e);
            }
        }
    }
}
