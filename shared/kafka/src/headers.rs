//! Kafka headers to and from plain string maps (trace context, dead-letter details).

use std::collections::HashMap;

use rdkafka::message::{Header, Headers, OwnedHeaders};

/// Builds Kafka headers from string pairs.
pub(crate) fn to_kafka<'a>(
    pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> OwnedHeaders {
    pairs.into_iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        })
    })
}

/// Reads the UTF-8 headers of a message into a map (others are skipped).
pub(crate) fn from_kafka<H: Headers>(headers: Option<&H>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(headers) = headers {
        for header in headers.iter() {
            if let Some(Ok(value)) = header.value.map(std::str::from_utf8) {
                map.insert(header.key.to_owned(), value.to_owned());
            }
        }
    }
    map
}
