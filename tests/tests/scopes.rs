//! The scope matrix: every route of the gateway's OpenAPI document, called with a key of each
//! scope, with no key, and with another tenant's admin key. A key lacking the route's scope
//! gets 403 `insufficient_scope` (before the route reads its body), a key with it (or
//! `admin`) gets past the check, no key gets 401, and another tenant never sees or changes
//! this tenant's data: its calls on this tenant's ids answer 404 or carry none of its data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crm_gateway::Scope;
use crm_tests::{unique_id, Suite};
use reqwest::Method;
use serde_json::{json, Value};

struct Route {
    method: Method,
    template: String,
    scope: String,
}

/// Every operation of the OpenAPI document with the scope its security requirement names.
async fn routes(suite: &Suite) -> Vec<Route> {
    let doc: Value = suite
        .http
        .get(format!("{}/openapi.json", suite.gateway))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            // Each requirement (`api_key`, `bearer`, `basic`) names the same scope.
            let scope = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_object()?.values().next()?[0].as_str())
                .next()
                .unwrap_or_else(|| panic!("{method} {template} names no scope"))
                .to_owned();
            assert!(
                Scope::parse(&scope).is_some(),
                "{method} {template}: unknown scope {scope}"
            );
            routes.push(Route {
                method: method.to_uppercase().parse().unwrap(),
                template: template.clone(),
                scope,
            });
        }
    }
    routes
}

/// This tenant's ids that routes take.
struct Ids {
    customer: String,
    segment: String,
    reward: String,
    redemption: String,
    job: String,
    spare_key: String,
    webhook: String,
}

impl Ids {
    fn path(&self, template: &str) -> String {
        let id = if template.starts_with("/v1/customers/")
            || template.starts_with("/v1/loyalty/customers/")
        {
            &self.customer
        } else if template.starts_with("/v1/segments/") {
            &self.segment
        } else if template.starts_with("/v1/loyalty/rewards/") {
            &self.reward
        } else if template.starts_with("/v1/loyalty/redemptions/") {
            &self.redemption
        } else if template.starts_with("/v1/jobs/") {
            &self.job
        } else if template.starts_with("/v1/api-keys/") {
            &self.spare_key
        } else if template.starts_with("/v1/webhooks/") {
            &self.webhook
        } else {
            // Reviews, merges, imports: ids no tenant has.
            "0190a4c8-0000-7000-8000-000000000000"
        };
        template
            .replace("{id}", id)
            .replace("{job_id}", id)
            .replace("{delivery_id}", "0190a4c8-0000-7000-8000-000000000000")
    }

    /// The values that must never appear in another tenant's answers.
    fn markers(&self) -> Vec<&str> {
        vec![
            &self.customer,
            &self.segment,
            &self.reward,
            &self.redemption,
            &self.spare_key,
            &self.webhook,
            "matrix-hook",
            "matrix@acme.example",
            "Matrix Person",
        ]
    }
}

async fn call(suite: &Suite, key: Option<&str>, method: &Method, path: &str) -> (u16, String) {
    let mut request = suite
        .http
        .request(method.clone(), format!("{}{path}", suite.gateway))
        .header("Idempotency-Key", unique_id());
    if let Some(k) = key {
        request = request.bearer_auth(k);
    }
    if *method != Method::GET && *method != Method::DELETE {
        request = request.json(&json!({}));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn created_id(status: u16, body: &str, what: &str) -> String {
    assert!((200..300).contains(&status), "{what}: {status} {body}");
    let v: Value = serde_json::from_str(body).unwrap();
    v["id"]
        .as_str()
        .or_else(|| v["job_id"].as_str())
        .or_else(|| v["segment"]["id"].as_str())
        .unwrap_or_else(|| panic!("{what}: no id in {body}"))
        .to_owned()
}

/// A customer, a segment, a reward, a redemption, a job and a spare key of `acme`.
async fn acme_data(suite: &Suite) -> Ids {
    let admin = &suite.key;
    let r = suite
        .post_events(
            admin,
            &json!({"id": unique_id(), "kind": "identify", "identity": {"user_id": "matrix-user", "email": "matrix@acme.example"},
                    "traits": {"name": "Matrix Person"}}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 202);
    let customer = suite.wait_for_customer("matrix-user", |_| true).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = |path: &'static str, body: Value| async move {
        let r = suite
            .http
            .post(format!("{}{path}", suite.gateway))
            .bearer_auth(&suite.key)
            .header("Idempotency-Key", unique_id())
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let (s, b) = post(
        "/v1/segments",
        json!({"name": "matrix", "rule": {"trait": {"name": "name", "op": "exists"}}}),
    )
    .await;
    let segment = created_id(s, &b, "segment");
    let r = suite
        .http
        .put(format!("{}/v1/loyalty/programme", suite.gateway))
        .bearer_auth(admin)
        .header("Idempotency-Key", unique_id())
        .json(&json!({"expiry_days": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (s, b) = post("/v1/loyalty/rewards", json!({"name": "Mug", "cost": 10})).await;
    let reward = created_id(s, &b, "reward");
    let r = suite
        .http
        .post(format!(
            "{}/v1/loyalty/customers/{customer}/adjustments",
            suite.gateway
        ))
        .bearer_auth(admin)
        .header("Idempotency-Key", unique_id())
        .json(&json!({"points": 100, "reason": "matrix"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let (s, b) = post(
        "/v1/loyalty/redemptions",
        json!({"customer_id": customer, "reward_id": reward}),
    )
    .await;
    let redemption = created_id(s, &b, "redemption");
    let (s, b) = post("/v1/scoring/runs", json!(null)).await;
    let job = created_id(s, &b, "scoring job");
    let spare_key = crm_gateway::tenants::create_key(
        &suite.gateway_pool,
        &crm_envelope::TenantId::parse("acme").unwrap(),
        "spare",
        &[Scope::Read],
    )
    .await
    .unwrap()
    .id
    .to_string();
    let (s, b) = post(
        "/v1/webhooks",
        json!({"url": "http://127.0.0.1:9/matrix-hook", "event_types": ["*"]}),
    )
    .await;
    let webhook = created_id(s, &b, "webhook");
    Ids {
        customer,
        segment,
        reward,
        redemption,
        job,
        spare_key,
        webhook,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_checks_its_scope_and_its_tenant() {
    let suite = Suite::start().await;
    let routes = routes(&suite).await;
    assert!(
        routes.len() >= 50,
        "only {} operations documented",
        routes.len()
    );
    let ids = acme_data(&suite).await;
    let mut keys = Vec::new();
    for scope in Scope::ALL {
        keys.push((scope, suite.key_with("acme", &[scope]).await));
    }
    let other_admin = suite.new_tenant("globex").await;
    // The other tenant has a programme too, so that its loyalty calls reach the lookup.
    let r = suite
        .http
        .put(format!("{}/v1/loyalty/programme", suite.gateway))
        .bearer_auth(&other_admin)
        .header("Idempotency-Key", unique_id())
        .json(&json!({"expiry_days": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // No key, and keys without the route's scope: refused before anything runs.
    for route in &routes {
        let path = ids.path(&route.template);
        let (status, body) = call(&suite, None, &route.method, &path).await;
        assert_eq!(status, 401, "{} {path} without a key: {body}", route.method);
        for (scope, key) in &keys {
            if scope.as_str() == route.scope || *scope == Scope::Admin {
                continue;
            }
            let (status, body) = call(&suite, Some(key), &route.method, &path).await;
            assert_eq!(
                status,
                403,
                "{} {path} with a '{}' key (needs '{}'): {body}",
                route.method,
                scope.as_str(),
                route.scope
            );
            assert!(body.contains("insufficient_scope"), "{body}");
        }
    }

    // Another tenant's admin key on this tenant's ids: nothing of this tenant comes back.
    for route in &routes {
        let path = ids.path(&route.template);
        let (status, body) = call(&suite, Some(&other_admin), &route.method, &path).await;
        assert!(
            status != 401 && status != 403,
            "{} {path}: an admin key is refused: {status} {body}",
            route.method
        );
        // The caller's own input (an id in the path) may be echoed back; nothing else of
        // this tenant may be.
        for marker in ids.markers() {
            assert!(
                path.contains(marker) || !body.contains(marker),
                "{} {path} as another tenant leaks {marker}: {status} {body}",
                route.method
            );
        }
        let names_acme_entity = route.template.contains('{')
            && !route.template.starts_with("/v1/reviews/")
            && !route.template.starts_with("/v1/merges/")
            && !route.template.starts_with("/v1/imports/");
        if route.method == Method::GET && names_acme_entity {
            if route.template.starts_with("/v1/loyalty/customers/") {
                // Loyalty answers for any customer id: one it never saw has no points.
                assert_eq!(status, 200, "GET {path} as another tenant: {body}");
                let v: Value = serde_json::from_str(&body).unwrap();
                assert!(
                    v["balance"] == 0 || v["items"] == json!([]),
                    "GET {path} as another tenant: {body}"
                );
            } else {
                assert_eq!(status, 404, "GET {path} as another tenant: {body}");
            }
        }
    }
    // ... and changed nothing of this tenant's.
    let (status, body) = call(
        &suite,
        Some(&suite.key),
        &Method::GET,
        &format!("/v1/customers/{}", ids.customer),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("matrix@acme.example"), "{body}");
    let (status, _) = call(
        &suite,
        Some(&suite.key),
        &Method::GET,
        &format!("/v1/segments/{}", ids.segment),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &suite,
        Some(&suite.key),
        &Method::GET,
        &format!("/v1/webhooks/{}", ids.webhook),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("matrix-hook") && body.contains("\"enabled\":true"),
        "{body}"
    );
    let (_, listing) = call(&suite, Some(&suite.key), &Method::GET, "/v1/api-keys").await;
    let listing: Value = serde_json::from_str(&listing).unwrap();
    let spare = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == ids.spare_key.as_str())
        .unwrap();
    assert_eq!(
        spare["revoked_at"],
        Value::Null,
        "another tenant revoked this tenant's key"
    );
    let (_, account) = call(
        &suite,
        Some(&suite.key),
        &Method::GET,
        &format!("/v1/loyalty/customers/{}", ids.customer),
    )
    .await;
    assert!(account.contains("\"balance\":90"), "{account}");

    // Keys with the route's scope, and admin keys, get past the check (side effects allowed:
    // this runs last).
    for route in &routes {
        let path = ids.path(&route.template);
        for (scope, key) in &keys {
            if scope.as_str() != route.scope && *scope != Scope::Admin {
                continue;
            }
            let (status, body) = call(&suite, Some(key), &route.method, &path).await;
            assert!(
                status != 401 && status != 403,
                "{} {path} with a '{}' key: {status} {body}",
                route.method,
                scope.as_str()
            );
        }
    }
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_listed_without_secrets_and_revoked_at_once() {
    let suite = Suite::start().await;
    let storefront = suite
        .key_with("acme", &[Scope::WriteLoyalty, Scope::Read])
        .await;
    let (status, _) = call(
        &suite,
        Some(&storefront),
        &Method::GET,
        "/v1/loyalty/liability",
    )
    .await;
    assert_eq!(status, 200);
    // A storefront key redeems but cannot erase.
    let (status, body) = call(
        &suite,
        Some(&storefront),
        &Method::POST,
        "/v1/customers/0190a4c8-0000-7000-8000-000000000001/erase",
    )
    .await;
    assert_eq!(status, 403, "{body}");

    let (status, body) = call(&suite, Some(&suite.key), &Method::GET, "/v1/api-keys").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(&storefront), "a listing shows a key");
    let listing: Value = serde_json::from_str(&body).unwrap();
    let entry = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| {
            storefront.starts_with(k["key_prefix"].as_str().unwrap())
                && k["scopes"] == json!(["write:loyalty", "read"])
        })
        .unwrap()
        .clone();
    let id = entry["id"].as_str().unwrap();

    // Another tenant cannot revoke it.
    let other = suite.new_tenant("initech").await;
    let (status, body) = call(
        &suite,
        Some(&other),
        &Method::DELETE,
        &format!("/v1/api-keys/{id}"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = call(
        &suite,
        Some(&storefront),
        &Method::GET,
        "/v1/loyalty/liability",
    )
    .await;
    assert_eq!(status, 200);

    let (status, body) = call(
        &suite,
        Some(&suite.key),
        &Method::DELETE,
        &format!("/v1/api-keys/{id}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let revoked: Value = serde_json::from_str(&body).unwrap();
    assert!(revoked["revoked_at"].is_string());
    let (status, body) = call(
        &suite,
        Some(&storefront),
        &Method::GET,
        "/v1/loyalty/liability",
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("revoked"), "{body}");
    let (status, body) = call(
        &suite,
        Some(&suite.key),
        &Method::DELETE,
        "/v1/api-keys/not-a-uuid",
    )
    .await;
    assert_eq!(
        (status, body.contains("key_not_found")),
        (404, true),
        "{body}"
    );
    suite.stop().await;
}
