//! One trace across every hop: an OTLP/HTTP receiver on 127.0.0.1 collects the spans the
//! suite exports (OTLP/JSON), one event is posted with a W3C `traceparent`, and the trace must
//! hold the gateway's request, identity's span of `crm.ingest.v1` and the spans of every
//! part that applied the resolved event from `crm.events.v1` (segmentation, loyalty,
//! campaign), each the child of the span that produced the message it read.
//!
//! The parts run in this test's process (one per test under nextest), exporting through the
//! suite's own telemetry set-up (`crm_telemetry::init`), so the parts are told apart by their
//! consumer groups.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::Router;
use crm_tests::{eventually, Suite};
use serde_json::{json, Value};

/// One span as the receiver keeps it.
#[derive(Debug, Clone)]
struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    attributes: HashMap<String, String>,
}

/// The spans of an OTLP/JSON export request (`resourceSpans[].scopeSpans[].spans[]`).
fn spans_of(body: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in body["resourceSpans"].as_array().into_iter().flatten() {
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                let attributes = s["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| {
                        let v = &a["value"];
                        let text = v["stringValue"]
                            .as_str()
                            .map(str::to_owned)
                            .or_else(|| v["intValue"].as_str().map(str::to_owned))
                            .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))?;
                        Some((a["key"].as_str()?.to_owned(), text))
                    })
                    .collect();
                out.push(Span {
                    trace: s["traceId"].as_str().unwrap_or_default().to_lowercase(),
                    id: s["spanId"].as_str().unwrap_or_default().to_lowercase(),
                    parent: s["parentSpanId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_lowercase(),
                    name: s["name"].as_str().unwrap_or_default().to_owned(),
                    attributes,
                });
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_holds_every_part_that_applied_an_event_parent_to_child() {
    // The receiver: an OTLP/HTTP endpoint that keeps what it is sent.
    let received: Arc<Mutex<Vec<Span>>> = Arc::default();
    let store = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                store.lock().unwrap().extend(spans_of(&v));
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // SAFETY of set_var: set before any other thread of this test reads the environment.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"));
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
    let telemetry = crm_telemetry::init("crm-tests").unwrap();

    let suite = Suite::start().await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let response = suite
        .http
        .post(format!("{}/v1/events", suite.gateway))
        .bearer_auth(&suite.key)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(
            &json!({"id": "traced-order-1", "kind": "track", "name": "Order Completed",
                      "identity": {"user_id": "traced-buyer"},
                      "properties": {"order_id": "o-1", "revenue": 25}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    // Wait until every consuming part's span of the event is exported: identity's of
    // crm.ingest.v1, the others' of crm.events.v1 (a part's span of another topic in the same
    // trace, such as segmentation's of crm.profiles.v1, may be exported first).
    let groups = [
        ("crm-identity", "crm.ingest.v1"),
        ("crm-segmentation", "crm.events.v1"),
        ("crm-loyalty", "crm.events.v1"),
        ("crm-campaign", "crm.events.v1"),
    ];
    let trace: Vec<Span> = eventually("the spans of every part", || {
        telemetry.flush();
        let spans = received.lock().unwrap().clone();
        async move {
            let trace: Vec<Span> = spans.into_iter().filter(|s| s.trace == trace_id).collect();
            let consumed_by = |(group, topic): &(&str, &str)| {
                trace.iter().any(|s| {
                    s.name.starts_with("kafka.")
                        && s.attributes.get("topic").map(String::as_str) == Some(*topic)
                        && s.attributes
                            .get("group")
                            .is_some_and(|g| g.ends_with(group))
                })
            };
            groups.iter().all(consumed_by).then_some(trace)
        }
    })
    .await;

    // The gateway's request is the child of the caller's span.
    let ids: HashSet<&str> = trace.iter().map(|s| s.id.as_str()).collect();
    let request = trace
        .iter()
        .find(|s| {
            s.name == "http.request"
                && s.attributes.get("route").map(String::as_str) == Some("/v1/events")
        })
        .unwrap_or_else(|| panic!("no gateway request span in {trace:#?}"));
    assert_eq!(request.parent, caller_span);

    // Identity read crm.ingest.v1 as the child of the gateway's request.
    let identity: Vec<&Span> = trace
        .iter()
        .filter(|s| {
            s.attributes.get("topic").map(String::as_str) == Some("crm.ingest.v1")
                && s.attributes
                    .get("group")
                    .is_some_and(|g| g.ends_with("crm-identity"))
        })
        .collect();
    assert!(!identity.is_empty(), "{trace:#?}");
    assert!(
        identity.iter().all(|s| s.parent == request.id),
        "identity's span is not the child of the gateway's request: {identity:#?}"
    );

    // Each part that applied the resolved event read crm.events.v1 as the child of a span of
    // identity's (its consumer span, or a span under it: the outbox row carries the context
    // of the span that wrote it), never of an unknown span.
    let mut identity_ids: HashSet<&str> = identity.iter().map(|s| s.id.as_str()).collect();
    loop {
        let before = identity_ids.len();
        for s in &trace {
            // identity's own inner spans: no consumer group, or identity's.
            let identity_own = s
                .attributes
                .get("group")
                .is_none_or(|g| g.ends_with("crm-identity"));
            if identity_own && identity_ids.contains(s.parent.as_str()) {
                identity_ids.insert(s.id.as_str());
            }
        }
        if identity_ids.len() == before {
            break;
        }
    }
    for group in ["crm-segmentation", "crm-loyalty", "crm-campaign"] {
        let spans: Vec<&Span> = trace
            .iter()
            .filter(|s| {
                s.attributes.get("topic").map(String::as_str) == Some("crm.events.v1")
                    && s.attributes
                        .get("group")
                        .is_some_and(|g| g.ends_with(group))
            })
            .collect();
        assert!(
            !spans.is_empty(),
            "{group} has no span of crm.events.v1: {trace:#?}"
        );
        for s in spans {
            assert!(
                identity_ids.contains(s.parent.as_str()),
                "{group}'s span {} has parent {}, not a span of identity ({identity_ids:?})",
                s.name,
                s.parent
            );
        }
    }
    // Every span of the trace hangs from a span of the trace, or from the caller's.
    for s in &trace {
        assert!(
            s.parent == caller_span || ids.contains(s.parent.as_str()),
            "span {} ({:?}) has a parent outside the trace: {}",
            s.name,
            s.attributes,
            s.parent
        );
    }
    suite.stop().await;
}
