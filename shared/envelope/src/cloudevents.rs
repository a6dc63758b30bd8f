//! CloudEvents 1.0 mapped to the envelope: the HTTP binding (structured, batch and binary
//! modes, at the gateway) and the Kafka binding (integrations producing to `crm.ingest.v1`
//! directly, read by identity). Every way in ends in the same ingest contract and its codes.
//!
//! | CloudEvents             | envelope                                                  |
//! |-------------------------|-----------------------------------------------------------|
//! | `specversion`           | must be `1.0`                                             |
//! | `id`, `source`          | `id` = `ce:<source>:<id>` (source + id is the spec's unique key; a resend applies once) |
//! | `type`                  | `identify`, `track`, `page`, `screen`, `group`, `alias` give that `kind`; any other type is a `track` named by the type (`com.acme.order.completed`) |
//! | `subject`               | `identity.user_id` (unless `data.userId` says it)         |
//! | `time`                  | `occurred_at` (else when the suite received it)           |
//! | `data`                  | a JSON object read with Segment's field names: `userId`, `anonymousId`, `traits`, `properties`, `groupId`, `previousId`, `event` (for type `track`), `name`, `context`; its other keys are the properties (track, page, screen) or the traits (identify) |
//! | `tenantid` (extension)  | the tenant, on the Kafka binding (on HTTP the API key's tenant, and a different one is refused) |
//! | other attributes        | `context.cloudevents`                                     |
//!
//! `data_base64` and non-JSON `datacontenttype` are refused: the suite's events are JSON.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::segment::{self, Received};
use crate::{parse_ingest_event, Envelope, EventError, IngestLimits, TenantId};

/// The structured mode's content type.
pub const STRUCTURED: &str = "application/cloudevents+json";
/// The batch mode's content type.
pub const BATCH: &str = "application/cloudevents-batch+json";
/// The extension attribute naming the tenant on the Kafka binding.
pub const TENANT_ATTRIBUTE: &str = "tenantid";
/// The longest envelope id (`ce:<source>:<id>`) kept.
const MAX_ID: usize = 128;
/// Keys of `data` read as Segment fields rather than properties or traits.
const RESERVED: [&str; 9] = [
    "event",
    "userId",
    "anonymousId",
    "traits",
    "properties",
    "groupId",
    "previousId",
    "name",
    "context",
];

fn error(code: &'static str, pointer: &str, detail: impl Into<String>) -> EventError {
    EventError {
        code,
        pointer: Some(pointer.to_owned()),
        detail: detail.into(),
    }
}

/// A CloudEvent in structured mode, as `/openapi.json` documents it: the attributes the
/// mapping reads. [`CloudEvent::structured`] reads the JSON object itself (extensions and all),
/// so this type only names the shape for client generators; a test checks that its example
/// maps to an envelope.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"specversion": "1.0", "id": "A234-1234-1234", "source": "/shop/checkout",
    "type": "com.acme.order.completed", "subject": "user-42", "time": "2026-12-03T10:00:00Z",
    "datacontenttype": "application/json", "data": {"revenue": 59.9, "currency": "EUR"}}))]
pub struct StructuredCloudEvent {
    /// `1.0`.
    pub specversion: String,
    /// Unique per `source`; a resend with the same `source` and `id` applies once.
    pub id: String,
    /// Who emitted it (a URI reference).
    pub source: String,
    /// `identify`, `track`, `page`, `screen`, `group`, `alias`, or any other type (a track
    /// named by it).
    #[serde(rename = "type")]
    pub kind: String,
    /// The user id.
    #[serde(default)]
    pub subject: Option<String>,
    /// When it happened (RFC 3339).
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    /// `application/json` when given.
    #[serde(default)]
    pub datacontenttype: Option<String>,
    /// The tenant (Kafka binding only; over HTTP it must be the API key's, if given).
    #[serde(default)]
    pub tenantid: Option<String>,
    /// The data, read with Segment's field names (`userId`, `traits`, `properties`, ...).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// One CloudEvent: its attributes (context attributes and extensions) and its data.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    attributes: Map<String, Value>,
    data: Option<Value>,
}

impl CloudEvent {
    /// An event in structured mode: one JSON object holding the attributes and `data`.
    pub fn structured(raw: Value) -> Result<Self, EventError> {
        let Value::Object(mut attributes) = raw else {
            return Err(EventError {
                code: "not_an_object",
                pointer: None,
                detail: "a CloudEvent in structured mode is a JSON object".into(),
            });
        };
        if attributes.contains_key("data_base64") {
            return Err(error(
                "invalid_field",
                "/data_base64",
                "data_base64 is not taken: send data as JSON",
            ));
        }
        let data = attributes.remove("data");
        Ok(Self { attributes, data })
    }

    /// An event in binary mode: attributes in headers named `prefix` + attribute (`ce-` on
    /// HTTP, `ce_` on Kafka; names case-insensitive, values percent-decoded), `content_type`
    /// the data's (`datacontenttype`), `body` the data.
    pub fn binary<'h>(
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        prefix: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Self, EventError> {
        let mut attributes = Map::new();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            if let Some(attribute) = name.strip_prefix(prefix) {
                attributes.insert(attribute.to_owned(), Value::String(percent_decode(value)));
            }
        }
        if let Some(ct) = content_type {
            attributes.insert("datacontenttype".into(), Value::String(ct.to_owned()));
        }
        let data = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else if content_type.is_none_or(is_json) {
            Some(serde_json::from_slice(body).map_err(|e| {
                error(
                    "invalid_field",
                    "/data",
                    format!(
                        "the body (the event's data) is not valid JSON (line {}, column {})",
                        e.line(),
                        e.column()
                    ),
                )
            })?)
        } else {
            return Err(error(
                "invalid_field",
                "/datacontenttype",
                "the suite takes JSON data (application/json or a +json type)",
            ));
        };
        Ok(Self { attributes, data })
    }

    fn attribute(&self, name: &str) -> Result<Option<&str>, EventError> {
        match self.attributes.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(error(
                "invalid_field",
                &format!("/{name}"),
                format!("{name} must be a string"),
            )),
        }
    }

    fn required(&self, name: &str) -> Result<&str, EventError> {
        self.attribute(name)?
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                error(
                    "invalid_field",
                    &format!("/{name}"),
                    format!("the CloudEvents attribute {name} is required"),
                )
            })
    }

    /// The `tenantid` extension attribute, if the event carries one.
    pub fn tenant(&self) -> Result<Option<&str>, EventError> {
        self.attribute(TENANT_ATTRIBUTE)
    }

    /// The event as the suite's ingest JSON (which the ingest contract then checks).
    pub fn to_ingest(&self, received_at: DateTime<Utc>) -> Result<Value, EventError> {
        let version = self.required("specversion")?;
        if version != "1.0" {
            return Err(error(
                "invalid_field",
                "/specversion",
                "specversion must be 1.0",
            ));
        }
        let id = self.required("id")?;
        let source = self.required("source")?;
        let ce_type = self.required("type")?;
        let message_id = format!("ce:{source}:{id}");
        if message_id.len() > MAX_ID {
            return Err(error(
                "invalid_id",
                "/id",
                format!(
                    "source and id together are at most {} characters",
                    MAX_ID - 4
                ),
            ));
        }
        if let Some(ct) = self.attribute("datacontenttype")? {
            if !is_json(ct) {
                return Err(error(
                    "invalid_field",
                    "/datacontenttype",
                    "the suite takes JSON data (application/json or a +json type)",
                ));
            }
        }
        let data = match &self.data {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(_) => {
                return Err(error(
                    "invalid_field",
                    "/data",
                    "data must be a JSON object",
                ))
            }
        };
        let call = segment::CALLS
            .iter()
            .find(|c| **c == ce_type)
            .copied()
            .unwrap_or("track");
        let mut event = Map::new();
        event.insert("type".into(), Value::String(call.into()));
        event.insert("messageId".into(), Value::String(message_id));
        if call == "track" && ce_type != "track" {
            event.insert("event".into(), Value::String(ce_type.to_owned()));
        }
        if let Some(subject) = self.attribute("subject")? {
            event.insert("userId".into(), Value::String(subject.to_owned()));
        }
        if let Some(time) = self.attribute("time")? {
            event.insert("timestamp".into(), Value::String(time.to_owned()));
        }
        let mut rest = Map::new();
        for (k, v) in data {
            if RESERVED.contains(&k.as_str()) {
                event.insert(k, v);
            } else {
                rest.insert(k, v);
            }
        }
        let into = if call == "identify" {
            "traits"
        } else {
            "properties"
        };
        if !rest.is_empty() {
            let target = event
                .entry(into)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(target) = target.as_object_mut() {
                for (k, v) in rest {
                    target.entry(k).or_insert(v);
                }
            }
        }
        let mut cloudevents = self.attributes.clone();
        cloudevents.remove(TENANT_ATTRIBUTE);
        let context = event
            .entry("context")
            .or_insert_with(|| Value::Object(Map::new()));
        match context.as_object_mut() {
            Some(c) => {
                c.insert("cloudevents".into(), Value::Object(cloudevents));
            }
            None => {
                return Err(error(
                    "invalid_field",
                    "/data/context",
                    "context must be a JSON object",
                ))
            }
        }
        let received = Received {
            at: received_at,
            batch_sent_at: None,
        };
        let mut ingest = segment::to_ingest(&Value::Object(event), None, received)
            .map_err(in_cloudevents_terms)?;
        if let Some(obj) = ingest.as_object_mut() {
            obj.insert("source".into(), Value::String("cloudevents".into()));
        }
        Ok(ingest)
    }

    /// The event as an envelope of `tenant` that meets the ingest contract.
    pub fn to_envelope(
        &self,
        tenant: &TenantId,
        received_at: DateTime<Utc>,
    ) -> Result<Envelope, EventError> {
        if let Some(named) = self.tenant()? {
            if named != tenant.as_str() {
                return Err(error(
                    "tenant_mismatch",
                    &format!("/{TENANT_ATTRIBUTE}"),
                    "tenantid differs from the API key's tenant; omit it or send the key's tenant",
                ));
            }
        }
        let ingest = self.to_ingest(received_at)?;
        parse_ingest_event(ingest, tenant, received_at, IngestLimits::default())
            .map_err(in_cloudevents_terms)
    }
}

/// An error of the Segment-shaped mapping, its pointer in CloudEvents terms.
fn in_cloudevents_terms(mut e: EventError) -> EventError {
    e.pointer = e.pointer.map(|p| match p.as_str() {
        "/userId" | "/identity" => "/subject".to_owned(),
        "/event" | "/type" | "/kind" | "/name" => "/type".to_owned(),
        "/timestamp" | "/occurred_at" => "/time".to_owned(),
        "/id" | "/messageId" => "/id".to_owned(),
        other => format!("/data{other}"),
    });
    if e.code == "missing_identity" {
        e.detail =
            "name the customer: subject (its user id), or data.userId or data.anonymousId".into();
    }
    e
}

/// Whether a content type is JSON (`application/json`, `text/json` or a `+json` type).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// `%XX` sequences decoded (the HTTP binding percent-encodes header values); invalid ones kept.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The Kafka binding: a message on `crm.ingest.v1` that is a CloudEvent (binary mode: a
/// `ce_specversion` header; structured mode: `content-type: application/cloudevents+json`),
/// as an envelope of the tenant its `tenantid` attribute names. `None` when the message is not
/// a CloudEvent (it is then read as an envelope).
pub fn from_kafka(
    headers: &HashMap<String, String>,
    payload: &[u8],
    received_at: DateTime<Utc>,
) -> Option<Result<Envelope, EventError>> {
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    let event = if headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("ce_specversion"))
    {
        CloudEvent::binary(
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            "ce_",
            content_type,
            payload,
        )
    } else if content_type.is_some_and(|ct| ct.to_ascii_lowercase().starts_with(STRUCTURED)) {
        serde_json::from_slice(payload)
            .map_err(|e| {
                error(
                    "invalid_envelope",
                    "/",
                    format!("not a valid CloudEvent: {}", e.classify_name()),
                )
            })
            .and_then(CloudEvent::structured)
    } else {
        return None;
    };
    Some(event.and_then(|event| {
        let tenant = event.tenant()?.ok_or_else(|| {
            error(
                "invalid_field",
                "/tenantid",
                "a CloudEvent produced to Kafka names its tenant in the tenantid extension attribute",
            )
        })?;
        let tenant = TenantId::parse(tenant)
            .map_err(|_| error("invalid_field", "/tenantid", "tenantid is not a valid tenant id"))?;
        event.to_envelope(&tenant, received_at)
    }))
}

/// A serde_json error's category, without its position or the input.
trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_example_maps_to_an_envelope() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(StructuredCloudEvent::schema()).unwrap();
        let example = schema["example"].clone();
        let typed: StructuredCloudEvent = serde_json::from_value(example.clone()).unwrap();
        assert_eq!(typed.kind, "com.acme.order.completed");
        let event = CloudEvent::structured(example).unwrap();
        let envelope = event.to_envelope(&tenant(), now()).unwrap();
        assert_eq!(envelope.name.as_deref(), Some("com.acme.order.completed"));
        assert_eq!(envelope.identity.user_id.as_deref(), Some("user-42"));
    }

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_structured_event_maps_every_attribute() {
        let ce = CloudEvent::structured(json!({
            "specversion": "1.0", "id": "A-1", "source": "/shop/orders",
            "type": "com.acme.order.completed", "subject": "u-7",
            "time": "2026-12-01T09:30:00Z", "datacontenttype": "application/json",
            "traceparent": "00-abc-def-01",
            "data": {"order_id": "o-1", "revenue": 12.5, "anonymousId": "dev-1"}
        }))
        .unwrap();
        let e = ce.to_envelope(&tenant(), now()).unwrap();
        assert_eq!(e.id, "ce:/shop/orders:A-1");
        assert_eq!(e.kind, "track");
        assert_eq!(e.name.as_deref(), Some("com.acme.order.completed"));
        assert_eq!(e.source, "cloudevents");
        assert_eq!(e.identity.user_id.as_deref(), Some("u-7"));
        assert_eq!(e.identity.anonymous_id.as_deref(), Some("dev-1"));
        assert_eq!(e.occurred_at.to_rfc3339(), "2026-12-01T09:30:00+00:00");
        assert_eq!(e.properties["revenue"], 12.5);
        assert_eq!(e.context["cloudevents"]["source"], "/shop/orders");
        assert_eq!(e.context["cloudevents"]["traceparent"], "00-abc-def-01");
    }

    #[test]
    fn an_identify_type_sets_traits_and_binary_headers_are_decoded() {
        let headers = [
            ("ce-specversion", "1.0"),
            ("Ce-Id", "9"),
            ("ce-source", "urn:crm%3Asignup"),
            ("ce-type", "identify"),
            ("ce-subject", "u-1"),
            ("content-length", "10"),
        ];
        let ce = CloudEvent::binary(
            headers,
            "ce-",
            Some("application/json; charset=utf-8"),
            br#"{"plan": "pro", "traits": {"email": "ana@example.com"}}"#,
        )
        .unwrap();
        let e = ce.to_envelope(&tenant(), now()).unwrap();
        assert_eq!(e.id, "ce:urn:crm:signup:9");
        assert_eq!(e.kind, "identify");
        assert_eq!(e.traits["plan"], "pro");
        assert_eq!(
            e.identity.email.as_deref().map(|s| s.as_str()),
            Some("ana@example.com")
        );
    }

    #[test]
    fn malformed_events_name_the_attribute() {
        let fail = |v: Value| {
            CloudEvent::structured(v)
                .and_then(|ce| ce.to_envelope(&tenant(), now()))
                .unwrap_err()
        };
        let base =
            json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "subject": "u"});
        let with = |k: &str, v: Value| {
            let mut o = base.clone();
            o[k] = v;
            o
        };
        assert_eq!(
            fail(with("specversion", json!("0.3"))).pointer.as_deref(),
            Some("/specversion")
        );
        assert_eq!(fail(with("id", json!(""))).pointer.as_deref(), Some("/id"));
        assert_eq!(
            fail(with("source", json!(null))).pointer.as_deref(),
            Some("/source")
        );
        assert_eq!(
            fail(with("time", json!("soon"))).pointer.as_deref(),
            Some("/time")
        );
        assert_eq!(
            fail(with("data", json!([1]))).pointer.as_deref(),
            Some("/data")
        );
        assert_eq!(
            fail(with("subject", json!(null))).pointer.as_deref(),
            Some("/subject")
        );
        assert_eq!(
            fail(with("tenantid", json!("globex"))).code,
            "tenant_mismatch"
        );
        assert_eq!(
            fail(with("datacontenttype", json!("text/xml")))
                .pointer
                .as_deref(),
            Some("/datacontenttype")
        );
        assert_eq!(
            fail(with("data_base64", json!("AA=="))).pointer.as_deref(),
            Some("/data_base64")
        );
        assert_eq!(
            fail(with("type", json!("group"))).pointer.as_deref(),
            Some("/data/groupId")
        );
        assert_eq!(fail(with("id", json!("x".repeat(130)))).code, "invalid_id");
    }

    #[test]
    fn the_kafka_binding_reads_binary_and_structured_messages_with_their_tenant() {
        let mut headers = HashMap::new();
        headers.insert("ce_specversion".to_owned(), "1.0".to_owned());
        headers.insert("ce_id".to_owned(), "k-1".to_owned());
        headers.insert("ce_source".to_owned(), "erp".to_owned());
        headers.insert("ce_type".to_owned(), "Invoice Paid".to_owned());
        headers.insert("ce_subject".to_owned(), "u-1".to_owned());
        headers.insert("ce_tenantid".to_owned(), "acme".to_owned());
        let e = from_kafka(&headers, br#"{"amount": 3}"#, now())
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.tenant_id.as_str(), e.name.as_deref()),
            ("acme", Some("Invoice Paid"))
        );
        assert!(e.context["cloudevents"].get("tenantid").is_none());
        headers.remove("ce_tenantid");
        let err = from_kafka(&headers, b"{}", now()).unwrap().unwrap_err();
        assert_eq!(err.pointer.as_deref(), Some("/tenantid"));

        let mut headers = HashMap::new();
        headers.insert("content-type".to_owned(), STRUCTURED.to_owned());
        let payload = json!({"specversion": "1.0", "id": "2", "source": "erp", "type": "track",
                             "tenantid": "acme", "data": {"userId": "u-2", "event": "x"}});
        let e = from_kafka(&headers, payload.to_string().as_bytes(), now())
            .unwrap()
            .unwrap();
        assert_eq!(e.identity.user_id.as_deref(), Some("u-2"));
        assert!(from_kafka(&HashMap::new(), b"{}", now()).is_none());
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%20b%3A"), "a b:");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
