//! HTTP middleware shared by every part: request metrics and W3C trace-context extraction.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use crm_telemetry::Metrics;
use tracing::Instrument;

/// Counts requests and records latency by matched route (never by raw path, which would hold ids).
pub async fn track_metrics(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics
        .http_requests
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    metrics
        .http_latency
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Runs the request in a span whose parent is the caller's `traceparent`, so that the trace
/// continues into the Kafka messages the request produces.
pub async fn trace_context(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!("http.request", method = %request.method(), route = %route);
    let headers: HashMap<String, String> = ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| {
            let value = request.headers().get(name)?.to_str().ok()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    crm_telemetry::propagation::set_remote_parent(&span, &headers);
    next.run(request).instrument(span).await
}
