//! Customer search and per-tenant identity settings through the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crm_tests::Suite;
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_identifier_name_and_email_with_paging() {
    let suite = Suite::start().await;
    for (n, (user, first, last, email)) in [
        ("s1", "José", "Núñez", "jose.nunez@example.com"),
        ("s2", "Josefa", "Lima", "jl@example.org"),
        ("s3", "Ana", "Joseph", "ana@example.com"),
        ("s4", "Rui", "Costa", "rui@example.com"),
    ]
    .iter()
    .enumerate()
    {
        suite
            .ingest(&json!({"id": format!("e{n}"), "kind": "identify",
                "identity": {"user_id": user, "email": email},
                "traits": {"first_name": first, "last_name": last}}))
            .await;
    }
    let s4 = suite.wait_for_customer("s4", |_| true).await;
    let s1 = suite.wait_for_customer("s1", |_| true).await;

    let get = |q: &str| {
        let path = format!("/v1/customers/search?{q}");
        let suite = &suite;
        async move { suite.get(Some(&suite.key), &path).await }
    };
    // Accents and case ignored, every word must match.
    let page: Value = get("q=JOSE%20nunez").await.json().await.unwrap();
    assert_eq!(ids(&page), vec![s1["id"].as_str().unwrap().to_owned()]);
    // Part of a name matches three people; paged two at a time, nobody twice.
    let first: Value = get("q=jose&limit=2").await.json().await.unwrap();
    assert_eq!(ids(&first).len(), 2);
    let after = first["next_after"].as_str().unwrap();
    let second: Value = get(&format!("q=jose&limit=2&after={after}"))
        .await
        .json()
        .await
        .unwrap();
    let mut all = ids(&first);
    all.extend(ids(&second));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3);
    // An exact identifier, and an email typed in another case.
    let by_user: Value = get("q=s4").await.json().await.unwrap();
    assert_eq!(ids(&by_user), vec![s4["id"].as_str().unwrap().to_owned()]);
    let by_email: Value = get("q=RUI@example.com").await.json().await.unwrap();
    assert_eq!(ids(&by_email), ids(&by_user));
    // Bad queries say what to fix.
    let bad = get("q=x").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["code"], "invalid_query");
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_validated_and_change_resolution() {
    let suite = Suite::start().await;
    let url = format!("{}/v1/identity/settings", suite.gateway);
    let defaults: Value = suite
        .http
        .get(&url)
        .bearer_auth(&suite.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(defaults["survivorship"], "most_recent");
    assert_eq!(defaults["max_identifiers_per_kind"], 10);

    for (body, needle) in [
        (json!({"phone_region": "XX"}), "XX"),
        (json!({"surviorship": "most_recent"}), "surviorship"),
        (
            json!({"max_identifiers_per_kind": 0}),
            "max_identifiers_per_kind",
        ),
    ] {
        let r = suite
            .http
            .put(&url)
            .bearer_auth(&suite.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_settings");
        assert!(
            problem["detail"].as_str().unwrap().contains(needle),
            "{problem}"
        );
    }
    let reader = suite.key_with("acme", &[crm_gateway::Scope::Read]).await;
    assert_eq!(
        suite
            .http
            .get(&url)
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    // Gmail rules and a UK default region: the same person typed two ways is one customer.
    let saved: Value = suite
        .http
        .put(&url)
        .bearer_auth(&suite.key)
        .json(&json!({"email_provider_rules": "on", "phone_region": "GB"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(saved["email_provider_rules"], "on");
    suite
        .ingest(&json!({"id": "g1", "kind": "identify", "identity": {"user_id": "kim", "email": "Kim.Lee+shop@gmail.com", "phone": "020 7946 0958"}}))
        .await;
    let kim = suite.wait_for_customer("kim", |_| true).await;
    suite
        .ingest(&json!({"id": "g2", "kind": "identify", "identity": {"anonymous_id": "d1", "email": "kimlee@googlemail.com"}, "traits": {"via": "email"}}))
        .await;
    suite
        .ingest(&json!({"id": "g3", "kind": "identify", "identity": {"anonymous_id": "d2", "phone": "+44 20 7946 0958"}, "traits": {"via": "phone"}}))
        .await;
    let kim_now = suite
        .wait_for_customer("kim", |p| p["event_count"] == 3)
        .await;
    assert_eq!(kim_now["id"], kim["id"]);
    let kinds: Vec<(String, String)> = kim_now["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_owned(),
                i["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("email".into(), "kimlee@gmail.com".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("phone".into(), "+442079460958".into())),
        "{kinds:?}"
    );
    suite.stop().await;
}
