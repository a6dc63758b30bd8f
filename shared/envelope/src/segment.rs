//! Segment's event spec mapped to the suite's ingest envelope (pure; no I/O).
//!
//! | Segment                          | envelope                                        |
//! |----------------------------------|-------------------------------------------------|
//! | `type` (or the route)            | `kind`                                          |
//! | `messageId`                      | `id` (the dedupe id: an SDK's retry applies once) |
//! | `userId`, `anonymousId`          | `identity.user_id`, `identity.anonymous_id`     |
//! | `traits.email`/`phone` (or `context.traits.*`) | `identity.email`, `identity.phone` |
//! | `event` (track), `name` (page, screen) | `name`                                    |
//! | `traits` (identify)              | `traits`                                        |
//! | `properties`                     | `properties` (page `category` joins them)       |
//! | `groupId`, `traits` (group)      | `properties.group_id`, `properties.traits` (the account's traits, not the person's) |
//! | `previousId` (alias)             | `identity.anonymous_id` and `properties.previous_id` |
//! | `context`, `integrations`        | `context`, `context.integrations`               |
//! | `timestamp`, `sentAt`            | `occurred_at`, corrected for clock skew          |
//!
//! Clock skew, as Segment does it: when the client says when it sent the request (`sentAt`,
//! on the event or on the batch), the event happened `sentAt - timestamp` before the suite
//! received it, measured on the client's clock only: `occurred_at = received_at - (sentAt -
//! timestamp)`, where `timestamp` is `originalTimestamp` when the client sent one. Without
//! `sentAt`, `timestamp` is taken as it is (a historical import); without either, the event
//! happened when it was received.

use crate::EventError;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The calls of Segment's spec, each a route of its own and a `type` inside `/v1/batch`.
pub const CALLS: [&str; 6] = ["identify", "track", "page", "screen", "group", "alias"];

/// The longest id (`userId`, `anonymousId`, `groupId`, `previousId`) taken.
const MAX_ID_LEN: usize = 256;

/// What the request says about the batch around an event.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// When the gateway received the request.
    pub at: DateTime<Utc>,
    /// The batch's `sentAt`, for events that carry none of their own.
    pub batch_sent_at: Option<DateTime<Utc>>,
}

fn error(code: &'static str, pointer: &str, detail: impl Into<String>) -> EventError {
    EventError {
        code,
        pointer: Some(pointer.to_owned()),
        detail: detail.into(),
    }
}

/// An id field (`userId`, `anonymousId`, `groupId`, `previousId`): Segment takes strings and
/// numbers; blank strings count as absent.
fn id_field(event: &Map<String, Value>, field: &str) -> Result<Option<String>, EventError> {
    match event.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.trim().len() > MAX_ID_LEN => Err(error(
            "invalid_field",
            &format!("/{field}"),
            format!("{field} is at most {MAX_ID_LEN} characters"),
        )),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(error(
            "invalid_field",
            &format!("/{field}"),
            format!("{field} must be a string or a number"),
        )),
    }
}

/// An object field (`traits`, `properties`, `context`, `integrations`); absent is empty.
fn object_field(event: &Map<String, Value>, field: &str) -> Result<Map<String, Value>, EventError> {
    match event.get(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o.clone()),
        Some(_) => Err(error(
            "invalid_field",
            &format!("/{field}"),
            format!("{field} must be a JSON object"),
        )),
    }
}

/// A string field; absent or null is `None`.
fn string_field(event: &Map<String, Value>, field: &str) -> Result<Option<String>, EventError> {
    match event.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(error(
            "invalid_field",
            &format!("/{field}"),
            format!("{field} must be a string"),
        )),
    }
}

/// A time field in ISO 8601 (RFC 3339), as Segment's libraries write them.
pub fn time_field(
    event: &Map<String, Value>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, EventError> {
    match string_field(event, field)? {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                error(
                    "invalid_field",
                    &format!("/{field}"),
                    format!("{field} must be an ISO 8601 time such as 2026-12-03T10:00:00.000Z"),
                )
            }),
    }
}

/// When the event happened, corrected for the client's clock skew (see the module's docs).
pub fn occurred_at(
    timestamp: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
) -> DateTime<Utc> {
    match (timestamp, sent_at) {
        (Some(t), Some(sent)) => received_at - (sent - t),
        (Some(t), None) => t,
        (None, _) => received_at,
    }
}

/// An identifier trait (`email`, `phone`) from `traits`, else from `context.traits`.
fn identifier_trait(
    traits: &Map<String, Value>,
    context: &Map<String, Value>,
    key: &str,
) -> Option<Value> {
    let pick = |m: &Map<String, Value>| {
        m.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(|s| Value::String(s.to_owned()))
    };
    pick(traits).or_else(|| {
        context
            .get("traits")
            .and_then(Value::as_object)
            .and_then(pick)
    })
}

/// Maps one Segment event to the suite's ingest JSON (which the ingest contract then checks).
/// `call` is the route's call (`None` inside `/v1/batch`, where the event's `type` says it).
pub fn to_ingest(raw: &Value, call: Option<&str>, received: Received) -> Result<Value, EventError> {
    let Value::Object(event) = raw else {
        return Err(EventError {
            code: "not_an_object",
            pointer: None,
            detail: "each event must be a JSON object".into(),
        });
    };
    let kind = match (call, string_field(event, "type")?) {
        (Some(call), Some(t)) if t != call => {
            return Err(error(
                "unknown_kind",
                "/type",
                format!("this route takes '{call}' calls; the event says '{t}'"),
            ))
        }
        (Some(call), _) => call.to_owned(),
        (None, Some(t)) if CALLS.contains(&t.as_str()) => t,
        (None, Some(_)) => {
            return Err(error(
                "unknown_kind",
                "/type",
                format!("type must be one of {}", CALLS.join(", ")),
            ))
        }
        (None, None) => {
            return Err(error(
                "unknown_kind",
                "/type",
                format!("each event of a batch needs a type: {}", CALLS.join(", ")),
            ))
        }
    };
    let user_id = id_field(event, "userId")?;
    let mut anonymous_id = id_field(event, "anonymousId")?;
    let traits = object_field(event, "traits")?;
    let mut properties = object_field(event, "properties")?;
    let mut context = object_field(event, "context")?;
    let integrations = object_field(event, "integrations")?;
    let message_id = string_field(event, "messageId")?;
    let client_time = match time_field(event, "originalTimestamp")? {
        Some(t) => Some(t),
        None => time_field(event, "timestamp")?,
    };
    let sent_at = time_field(event, "sentAt")?.or(received.batch_sent_at);

    let mut name = None;
    let mut person_traits = Map::new();
    match kind.as_str() {
        "identify" => person_traits = traits.clone(),
        "track" => {
            name = string_field(event, "event")?.filter(|n| !n.trim().is_empty());
            if name.is_none() {
                return Err(error(
                    "missing_name",
                    "/event",
                    "a track call needs an event name, such as \"Order Completed\"",
                ));
            }
        }
        "page" | "screen" => {
            name = string_field(event, "name")?.filter(|n| !n.trim().is_empty());
            if let Some(category) = string_field(event, "category")? {
                properties
                    .entry("category")
                    .or_insert(Value::String(category));
            }
        }
        "group" => {
            let Some(group_id) = id_field(event, "groupId")? else {
                return Err(error(
                    "invalid_field",
                    "/groupId",
                    "a group call needs a groupId (the account's id)",
                ));
            };
            properties.insert("group_id".into(), Value::String(group_id));
            properties.insert("traits".into(), Value::Object(traits.clone()));
        }
        "alias" => {
            let Some(previous_id) = id_field(event, "previousId")? else {
                return Err(error(
                    "invalid_field",
                    "/previousId",
                    "an alias call needs the previousId it links to userId",
                ));
            };
            if user_id.is_none() {
                return Err(error(
                    "missing_identity",
                    "/userId",
                    "an alias call needs the userId that previousId becomes",
                ));
            }
            properties.insert("previous_id".into(), Value::String(previous_id.clone()));
            if let Some(own) = anonymous_id.replace(previous_id) {
                properties.insert("anonymous_id".into(), Value::String(own));
            }
        }
        _ => {}
    }
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(error(
            "missing_identity",
            "/userId",
            "userId or anonymousId is required",
        ));
    }
    let mut identity = Map::new();
    if let Some(u) = user_id {
        identity.insert("user_id".into(), Value::String(u));
    }
    if let Some(a) = anonymous_id {
        identity.insert("anonymous_id".into(), Value::String(a));
    }
    if kind != "group" {
        for key in ["email", "phone"] {
            if let Some(v) = identifier_trait(&traits, &context, key) {
                identity.insert(key.into(), v);
            }
        }
    }
    if !integrations.is_empty() {
        context.insert("integrations".into(), Value::Object(integrations));
    }

    let mut out = Map::new();
    if let Some(id) = message_id.filter(|m| !m.trim().is_empty()) {
        out.insert("id".into(), Value::String(id));
    }
    out.insert("kind".into(), Value::String(kind));
    if let Some(n) = name {
        out.insert("name".into(), Value::String(n));
    }
    let at = occurred_at(client_time, sent_at, received.at);
    out.insert("occurred_at".into(), Value::String(at.to_rfc3339()));
    out.insert("source".into(), Value::String("segment".into()));
    out.insert("identity".into(), Value::Object(identity));
    out.insert("traits".into(), Value::Object(person_traits));
    out.insert("properties".into(), Value::Object(properties));
    out.insert("context".into(), Value::Object(context));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn received() -> Received {
        Received {
            at: at("2026-12-03T10:00:10Z"),
            batch_sent_at: None,
        }
    }

    #[test]
    fn an_identify_maps_identifiers_traits_and_the_message_id() {
        let v = to_ingest(
            &json!({"userId": 42, "anonymousId": "a-1", "messageId": "m-1",
                    "traits": {"email": "Ana@Example.com", "plan": "pro"},
                    "context": {"ip": "203.0.113.9"}, "integrations": {"All": true}}),
            Some("identify"),
            received(),
        )
        .unwrap();
        assert_eq!(v["id"], "m-1");
        assert_eq!(v["kind"], "identify");
        assert_eq!(v["source"], "segment");
        assert_eq!(
            v["identity"],
            json!({"user_id": "42", "anonymous_id": "a-1", "email": "Ana@Example.com"})
        );
        assert_eq!(v["traits"]["plan"], "pro");
        assert_eq!(v["context"]["integrations"], json!({"All": true}));
        assert_eq!(v["occurred_at"], received().at.to_rfc3339());
    }

    #[test]
    fn track_page_group_and_alias_keep_their_own_fields() {
        let track = to_ingest(
            &json!({"type": "track", "userId": "u", "event": "Order Completed",
                    "properties": {"revenue": 10}, "context": {"traits": {"phone": "+34600000000"}}}),
            None,
            received(),
        )
        .unwrap();
        assert_eq!(track["name"], "Order Completed");
        assert_eq!(track["properties"]["revenue"], 10);
        assert_eq!(track["identity"]["phone"], "+34600000000");
        assert_eq!(track["traits"], json!({}));

        let page = to_ingest(
            &json!({"anonymousId": "a", "name": "Pricing", "category": "Docs"}),
            Some("page"),
            received(),
        )
        .unwrap();
        assert_eq!(page["name"], "Pricing");
        assert_eq!(page["properties"]["category"], "Docs");

        let group = to_ingest(
            &json!({"userId": "u", "groupId": 7, "traits": {"name": "Initech", "email": "billing@initech.example"}}),
            Some("group"),
            received(),
        )
        .unwrap();
        assert_eq!(group["properties"]["group_id"], "7");
        assert_eq!(group["properties"]["traits"]["name"], "Initech");
        assert_eq!(
            group["traits"],
            json!({}),
            "account traits are not the person's"
        );
        assert!(group["identity"].get("email").is_none());

        let alias = to_ingest(
            &json!({"userId": "u", "previousId": "anon-9", "anonymousId": "anon-1"}),
            Some("alias"),
            received(),
        )
        .unwrap();
        assert_eq!(alias["identity"]["anonymous_id"], "anon-9");
        assert_eq!(alias["properties"]["previous_id"], "anon-9");
        assert_eq!(alias["properties"]["anonymous_id"], "anon-1");
    }

    #[test]
    fn invalid_events_name_the_segment_field() {
        let fail = |v: Value, call: Option<&str>| to_ingest(&v, call, received()).unwrap_err();
        let e = fail(json!({"event": "X"}), Some("track"));
        assert_eq!(
            (e.code, e.pointer.as_deref()),
            ("missing_identity", Some("/userId"))
        );
        let e = fail(json!({"userId": "u"}), Some("track"));
        assert_eq!(
            (e.code, e.pointer.as_deref()),
            ("missing_name", Some("/event"))
        );
        let e = fail(json!({"userId": "u"}), None);
        assert_eq!(
            (e.code, e.pointer.as_deref()),
            ("unknown_kind", Some("/type"))
        );
        let e = fail(json!({"userId": "u", "type": "merge"}), None);
        assert_eq!(e.code, "unknown_kind");
        let e = fail(
            json!({"userId": "u", "type": "track", "event": "X"}),
            Some("page"),
        );
        assert_eq!(e.code, "unknown_kind");
        let e = fail(json!({"userId": "u"}), Some("group"));
        assert_eq!(e.pointer.as_deref(), Some("/groupId"));
        let e = fail(json!({"userId": "u"}), Some("alias"));
        assert_eq!(e.pointer.as_deref(), Some("/previousId"));
        let e = fail(json!({"userId": ["u"]}), Some("identify"));
        assert_eq!(e.pointer.as_deref(), Some("/userId"));
        let e = fail(
            json!({"userId": "u", "timestamp": "yesterday"}),
            Some("identify"),
        );
        assert_eq!(e.pointer.as_deref(), Some("/timestamp"));
        let e = fail(json!({"userId": "u", "traits": "x"}), Some("identify"));
        assert_eq!(e.pointer.as_deref(), Some("/traits"));
        assert_eq!(fail(json!("x"), None).code, "not_an_object");
    }

    #[test]
    fn clock_skew_is_corrected_from_sent_at() {
        // Segment's documented example: a client clock 1 hour fast. It stamps the event at
        // 11:00:00 (its time) and sends it 5 s later at 11:00:05; the suite receives it at
        // 10:00:06 (true time): the event happened at 10:00:01.
        let event = json!({"userId": "u", "event": "X", "timestamp": "2026-12-03T11:00:00Z",
                           "sentAt": "2026-12-03T11:00:05Z"});
        let v = to_ingest(
            &event,
            Some("track"),
            Received {
                at: at("2026-12-03T10:00:06Z"),
                batch_sent_at: None,
            },
        )
        .unwrap();
        assert_eq!(v["occurred_at"], at("2026-12-03T10:00:01Z").to_rfc3339());
        // The batch's sentAt serves events without their own; originalTimestamp wins over
        // timestamp.
        let event = json!({"type": "track", "userId": "u", "event": "X",
                           "timestamp": "2026-12-03T09:00:00Z",
                           "originalTimestamp": "2026-12-03T11:00:00Z"});
        let v = to_ingest(
            &event,
            None,
            Received {
                at: at("2026-12-03T10:00:06Z"),
                batch_sent_at: Some(at("2026-12-03T11:00:05Z")),
            },
        )
        .unwrap();
        assert_eq!(v["occurred_at"], at("2026-12-03T10:00:01Z").to_rfc3339());
        // Without sentAt, timestamp stands (a historical import).
        let v = to_ingest(
            &json!({"userId": "u", "event": "X", "timestamp": "2020-01-01T00:00:00Z"}),
            Some("track"),
            received(),
        )
        .unwrap();
        assert_eq!(v["occurred_at"], at("2020-01-01T00:00:00Z").to_rfc3339());
    }

    proptest! {
        #[test]
        fn skew_correction_keeps_the_client_s_interval(
            t in 0i64..4_000_000_000, gap in 0i64..86_400_000, skew in -86_400_000i64..86_400_000,
        ) {
            let timestamp = Utc.timestamp_millis_opt(t * 1000).unwrap();
            let sent = timestamp + chrono::Duration::milliseconds(gap);
            let received = sent - chrono::Duration::milliseconds(skew);
            let at = occurred_at(Some(timestamp), Some(sent), received);
            prop_assert_eq!(received - at, sent - timestamp);
            prop_assert!(at <= received);
        }

        #[test]
        fn any_json_maps_or_fails_with_a_pointer_never_a_panic(
            user in proptest::option::of("[a-z0-9]{0,8}"),
            anon in proptest::option::of("[a-z0-9]{0,8}"),
            kind in proptest::sample::select(vec!["identify", "track", "page", "screen", "group", "alias", "other"]),
            event in proptest::option::of("[A-Za-z ]{0,12}"),
            group in proptest::option::of(0u32..100),
        ) {
            let raw = json!({"type": kind, "userId": user, "anonymousId": anon, "event": event,
                             "groupId": group, "previousId": anon});
            match to_ingest(&raw, None, received()) {
                Ok(v) => {
                    let tenant = crate::TenantId::parse("t").unwrap();
                    let parsed = crate::parse_ingest_event(
                        v, &tenant, received().at, crate::IngestLimits::default());
                    prop_assert!(parsed.is_ok(), "{:?}", parsed);
                }
                Err(e) => prop_assert!(e.pointer.is_some() || e.code == "not_an_object"),
            }
        }
    }
}
