//! The packed form of outbox rows: one row carries the messages of one `enqueue_all` call (up
//! to [`PACK_MAX`]) as a JSON array of `{"topic", "key", "payload", "headers"}` objects, in
//! their publishing order.
//!
//! Why packed: a message used to be a row of its own, so an event that announced 21 changes
//! wrote 21 rows, 21 primary-key entries and 21 entries of the unsent index, and the relay then
//! updated each of them once more to mark it sent. A poll of loyalty's (250 orders) or a
//! recompute's chunk (60,000 membership changes) now writes a handful of rows. The array is kept
//! as `text`, not `jsonb`: only the relay reads it, PostgreSQL need not parse it, and parsing a
//! large `jsonb` array on the way in cost more than the rows it saved (docs/scaling.md, "The
//! outbox"). People read it through the `outbox_messages` view, which parses it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// At most this many messages share one outbox row: the relay publishes a row whole, so a row
/// is also the most it re-sends after a crash between sending and marking it sent.
pub const PACK_MAX: usize = 1_000;

/// One message as it is written in a packed row.
#[derive(Serialize)]
struct Writing<'a> {
    topic: &'a str,
    key: &'a str,
    payload: &'a RawValue,
    headers: &'a HashMap<String, String>,
}

/// One message read back from a packed row; the payload is kept as the bytes that were written.
#[derive(Debug, Deserialize)]
pub struct Packed {
    /// The logical topic name (`crm.segments.v1`), without the deployment's prefix.
    pub topic: String,
    /// The message key (the partition key).
    pub key: String,
    /// The envelope, as compact JSON.
    pub payload: Box<RawValue>,
    /// The W3C trace context current when the message was created.
    pub headers: HashMap<String, String>,
}

/// What [`pack`] takes of a message: its topic name, key, payload (already JSON) and headers.
pub type Parts<'a> = (&'a str, &'a str, &'a RawValue, &'a HashMap<String, String>);

/// Packs `messages` into rows of at most [`PACK_MAX`], in order: each row's JSON text and its
/// message count.
pub fn pack<'a>(
    messages: impl ExactSizeIterator<Item = Parts<'a>>,
) -> Result<Vec<(String, i32)>, serde_json::Error> {
    pack_by(messages, PACK_MAX)
}

/// [`pack`] with at most `max` messages a row (at least one).
fn pack_by<'a>(
    messages: impl ExactSizeIterator<Item = Parts<'a>>,
    max: usize,
) -> Result<Vec<(String, i32)>, serde_json::Error> {
    let max = max.clamp(1, i32::MAX as usize);
    let mut rows = Vec::with_capacity(messages.len().div_ceil(max));
    let mut text = String::new();
    let mut count = 0usize;
    for (topic, key, payload, headers) in messages {
        text.push(if count == 0 { '[' } else { ',' });
        let one = serde_json::to_string(&Writing {
            topic,
            key,
            payload,
            headers,
        })?;
        text.push_str(&one);
        count += 1;
        if count == max {
            text.push(']');
            rows.push((std::mem::take(&mut text), count_of(count)));
            count = 0;
        }
    }
    if count > 0 {
        text.push(']');
        rows.push((text, count_of(count)));
    }
    Ok(rows)
}

/// A row's message count as stored (`max` is clamped to `i32`, so it always fits).
fn count_of(count: usize) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// The messages of one packed row, in order.
pub fn unpack(text: &str) -> Result<Vec<Packed>, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use serde_json::value::to_raw_value;

    type Message = (String, String, serde_json::Value, HashMap<String, String>);

    /// The payloads of `messages` as the outbox holds them (JSON text).
    fn raw(messages: &[Message]) -> Vec<Box<RawValue>> {
        messages
            .iter()
            .map(|(_, _, p, _)| to_raw_value(p).unwrap())
            .collect()
    }

    fn parts<'a>(messages: &'a [Message], payloads: &'a [Box<RawValue>]) -> Vec<Parts<'a>> {
        messages
            .iter()
            .zip(payloads)
            .map(|((t, k, _, h), p)| (t.as_str(), k.as_str(), &**p, h))
            .collect()
    }

    #[test]
    fn a_row_holds_at_most_pack_max_messages_and_the_rest_go_on_the_next() {
        let headers = HashMap::new();
        let payload = to_raw_value(&json!({"n": 1})).unwrap();
        let messages: Vec<Parts<'_>> = (0..PACK_MAX + 3)
            .map(|_| ("crm.events.v1", "k", &*payload, &headers))
            .collect();
        let rows = pack(messages.into_iter()).unwrap();
        let counts: Vec<i32> = rows.iter().map(|r| r.1).collect();
        assert_eq!(counts, vec![PACK_MAX as i32, 3]);
        assert_eq!(unpack(&rows[1].0).unwrap().len(), 3);
        assert!(pack(Vec::<Parts<'_>>::new().into_iter())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_payload_is_published_as_the_compact_bytes_written() {
        let headers = HashMap::from([("traceparent".to_owned(), "00-ab-cd-01".to_owned())]);
        let payload =
            to_raw_value(&json!({"kind": "segment.entered", "properties": {"segment": "a\"b"}}))
                .unwrap();
        let rows = pack([("crm.segments.v1", "c-1", &*payload, &headers)].into_iter()).unwrap();
        let back = unpack(&rows[0].0).unwrap();
        assert_eq!(back[0].payload.get(), payload.get());
        assert_eq!(back[0].headers, headers);
    }

    fn value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".*".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::hash_map(".*", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever the keys, payloads, headers and row size, unpacking the rows gives back
        /// every message, whole and in order, and no row is empty or holds more than its size.
        #[test]
        fn pack_then_unpack_gives_back_every_message_in_order(
            messages in prop::collection::vec(
                ("[a-z.0-9]{1,20}", ".*", value(), prop::collection::hash_map(".*", ".*", 0..3)),
                0..40,
            ),
            max in 1usize..8,
        ) {
            let payloads = raw(&messages);
            let rows = pack_by(parts(&messages, &payloads).into_iter(), max).unwrap();
            let mut back = Vec::new();
            for (text, count) in &rows {
                let unpacked = unpack(text).unwrap();
                prop_assert_eq!(unpacked.len(), *count as usize);
                prop_assert!(unpacked.len() <= max && !unpacked.is_empty());
                back.extend(unpacked);
            }
            prop_assert_eq!(back.len(), messages.len());
            for (got, (topic, key, payload, headers)) in back.iter().zip(&messages) {
                prop_assert_eq!(&got.topic, topic);
                prop_assert_eq!(&got.key, key);
                let parsed: serde_json::Value = serde_json::from_str(got.payload.get()).unwrap();
                prop_assert_eq!(&parsed, payload);
                prop_assert_eq!(&got.headers, headers);
            }
        }
    }
}
