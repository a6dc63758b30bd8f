//! Journeys through the gateway: a refused definition names the JSON pointer of its fault, a
//! draft is published as a frozen version, the lifecycle answers 409 where it must, a retried
//! write with the same Idempotency-Key makes one effect, and another tenant sees nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crm_tests::{unique_id, Suite};
use reqwest::Method;
use serde_json::{json, Value};

fn welcome(minutes: u32) -> Value {
    json!({
        "name": "Welcome", "time_zone": "Europe/Madrid",
        "trigger": {"event": {"name": "Signed Up"}},
        "exit": [{"event": {"name": "Unsubscribed"}}],
        "start": "hello",
        "nodes": {
            "hello": {"send": {"template": "welcome", "channel": "email", "next": "wait"}},
            "wait": {"wait": {"minutes": minutes, "next": "done"}},
            "done": "exit"
        }
    })
}

async fn call(
    suite: &Suite,
    key: &str,
    method: Method,
    path: &str,
    idempotency: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = suite
        .http
        .request(method, format!("{}{path}", suite.gateway))
        .bearer_auth(key);
    if let Some(k) = idempotency {
        request = request.header("Idempotency-Key", k);
    }
    if let Some(b) = body {
        request = request.json(b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journeys_are_checked_versioned_and_kept_per_tenant() {
    let suite = Suite::start().await;
    let key = suite.key.clone();

    // A loop is refused with the pointer of the node that closes it.
    let mut looping = welcome(60);
    looping["nodes"]["wait"]["wait"]["next"] = json!("hello");
    let (status, body) = call(
        &suite,
        &key,
        Method::POST,
        "/v1/journeys",
        Some(&unique_id()),
        Some(&looping),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_journey");
    assert_eq!(body["path"], "/nodes/wait", "{body}");

    // Created once, however often the same write is retried.
    let create_key = unique_id();
    let (status, created) = call(
        &suite,
        &key,
        Method::POST,
        "/v1/journeys",
        Some(&create_key),
        Some(&welcome(60)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (again_status, again) = call(
        &suite,
        &key,
        Method::POST,
        "/v1/journeys",
        Some(&create_key),
        Some(&welcome(60)),
    )
    .await;
    assert_eq!((again_status, &again["id"]), (201, &created["id"]));
    let (_, list) = call(&suite, &key, Method::GET, "/v1/journeys", None, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let id = created["id"].as_str().unwrap().to_owned();

    // Pause before publishing: 409. Publish: version 1, frozen against later edits.
    let (status, body) = call(
        &suite,
        &key,
        Method::POST,
        &format!("/v1/journeys/{id}/pause"),
        Some(&unique_id()),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("invalid_state")),
        "{body}"
    );
    let (status, live) = call(
        &suite,
        &key,
        Method::POST,
        &format!("/v1/journeys/{id}/publish"),
        Some(&unique_id()),
        None,
    )
    .await;
    assert_eq!(
        (
            status,
            live["status"].as_str(),
            live["published_version"].as_i64()
        ),
        (200, Some("published"), Some(1)),
        "{live}"
    );
    let (status, _) = call(
        &suite,
        &key,
        Method::PUT,
        &format!("/v1/journeys/{id}"),
        Some(&unique_id()),
        Some(&welcome(120)),
    )
    .await;
    assert_eq!(status, 200);
    let (_, versions) = call(
        &suite,
        &key,
        Method::GET,
        &format!("/v1/journeys/{id}/versions"),
        None,
        None,
    )
    .await;
    assert_eq!(
        versions["items"][0]["definition"]["nodes"]["wait"]["wait"]["minutes"], 60,
        "{versions}"
    );
    let (_, current) = call(
        &suite,
        &key,
        Method::GET,
        &format!("/v1/journeys/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(current["draft"]["nodes"]["wait"]["wait"]["minutes"], 120);

    // Another tenant: not found, and its own list is empty.
    let other = suite.new_tenant("globex").await;
    let (status, body) = call(
        &suite,
        &other,
        Method::GET,
        &format!("/v1/journeys/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("journey_not_found"))
    );
    let (status, _) = call(
        &suite,
        &other,
        Method::POST,
        &format!("/v1/journeys/{id}/archive"),
        Some(&unique_id()),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, theirs) = call(&suite, &other, Method::GET, "/v1/journeys", None, None).await;
    assert!(theirs["items"].as_array().unwrap().is_empty());
    let (_, still) = call(
        &suite,
        &key,
        Method::GET,
        &format!("/v1/journeys/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(still["status"], "published");
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suppression_list_normalises_addresses_and_is_kept_per_tenant() {
    let suite = Suite::start().await;
    let key = suite.key.clone();
    let add = |address: &'static str| json!({"channel": "email", "address": address, "reason": "unsubscribe"});

    let (status, body) = call(
        &suite,
        &key,
        Method::POST,
        "/v1/suppressions",
        Some(&unique_id()),
        Some(&add(" Ana@Example.COM ")),
    )
    .await;
    assert_eq!(
        (status, body["added"].as_bool()),
        (201, Some(true)),
        "{body}"
    );
    // The same address however it is typed is one entry.
    let (status, body) = call(
        &suite,
        &key,
        Method::POST,
        "/v1/suppressions",
        Some(&unique_id()),
        Some(&add("ana@example.com")),
    )
    .await;
    assert_eq!(
        (status, body["added"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    let (status, body) = call(
        &suite,
        &key,
        Method::POST,
        "/v1/suppressions",
        Some(&unique_id()),
        Some(&json!({"channel": "sms", "address": "612"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_body")),
        "{body}"
    );
    let (status, body) = call(
        &suite,
        &key,
        Method::POST,
        "/v1/suppressions",
        Some(&unique_id()),
        Some(&json!({"channel": "fax", "address": "x"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (_, list) = call(&suite, &key, Method::GET, "/v1/suppressions", None, None).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(
        (items[0]["address"].as_str(), items[0]["reason"].as_str()),
        (Some("ana@example.com"), Some("unsubscribe"))
    );

    let other = suite.new_tenant("initech").await;
    let (_, theirs) = call(&suite, &other, Method::GET, "/v1/suppressions", None, None).await;
    assert!(theirs["items"].as_array().unwrap().is_empty());
    let (_, removed) = call(
        &suite,
        &other,
        Method::POST,
        "/v1/suppressions/remove",
        Some(&unique_id()),
        Some(&add("ana@example.com")),
    )
    .await;
    assert_eq!(removed["removed"], false, "another tenant cannot remove it");

    let (status, removed) = call(
        &suite,
        &key,
        Method::POST,
        "/v1/suppressions/remove",
        Some(&unique_id()),
        Some(&add("ANA@example.com")),
    )
    .await;
    assert_eq!(
        (status, removed["removed"].as_bool()),
        (200, Some(true)),
        "{removed}"
    );
    let (_, list) = call(&suite, &key, Method::GET, "/v1/suppressions", None, None).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    suite.stop().await;
}
