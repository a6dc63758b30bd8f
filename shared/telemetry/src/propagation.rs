//! W3C `traceparent`/`tracestate` propagation, independent of the transport: HTTP middleware
//! and Kafka headers both go through a plain string map.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct MapCarrier<'a>(&'a mut HashMap<String, String>);

impl Injector for MapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapReader<'a>(&'a HashMap<String, String>);

impl Extractor for MapReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The current span's context as W3C headers (`traceparent`, and `tracestate` when set).
pub fn current_context_headers() -> HashMap<String, String> {
    let mut headers = HashMap::new();
    let context = Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut MapCarrier(&mut headers));
    });
    headers
}

/// Makes `span` a child of the remote context carried in `headers`, if any.
pub fn set_remote_parent(span: &Span, headers: &HashMap<String, String>) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&MapReader(headers)));
    // Fails only when the span is disabled by the filter; then there is nothing to link.
    let _ = span.set_parent(parent);
}

/// The trace id of a `traceparent` header value, if well-formed.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let _version = parts.next()?;
    let trace_id = parts.next()?;
    (trace_id.len() == 32).then_some(trace_id)
}
