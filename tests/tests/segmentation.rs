//! Segmentation end to end: segments saved through the gateway, memberships kept in real time
//! from events (and from time passing), published on `crm.segments.v1`, equal to a full
//! recompute; aggregates that follow merges and erasures; RFM, lifecycle stages and lead scores.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use crm_tests::{eventually, test_consumer, unique_id, Suite};
use rdkafka::consumer::StreamConsumer;
use rdkafka::Message;
use serde_json::{json, Value};

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn order(user: &str, at: chrono::DateTime<Utc>, category: &str, revenue: f64) -> Value {
    json!({"id": format!("o-{}", unique_id()), "kind": "track", "name": "Order Completed",
           "occurred_at": ts(at), "identity": {"user_id": user},
           "properties": {"order_id": unique_id(), "revenue": revenue, "currency": "EUR",
                          "products": [{"category": category}]}})
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn put(suite: &Suite, path: &str, body: &Value) -> (u16, Value) {
    json_of(
        suite
            .http
            .put(format!("{}{path}", suite.gateway))
            .bearer_auth(&suite.key)
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn create_segment(suite: &Suite, name: &str, rule: Value) -> String {
    let (status, body) = json_of(
        suite
            .post(
                &suite.key,
                "/v1/segments",
                Some(&json!({"name": name, "rule": rule})),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["segment"]["id"].as_str().unwrap().to_owned()
}

async fn customer_id(suite: &Suite, user: &str) -> String {
    suite.wait_for_customer(user, |_| true).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Collects `crm.segments.v1` messages until `want` holds for them (60 s at most).
async fn wait_messages(
    consumer: &StreamConsumer,
    seen: &mut Vec<Value>,
    what: &str,
    want: impl Fn(&[Value]) -> bool,
) {
    let started = std::time::Instant::now();
    while !want(seen) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}; seen {seen:#?}"
        );
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            if let Some(v) = m
                .payload()
                .and_then(|p| serde_json::from_slice::<Value>(p).ok())
            {
                seen.push(v);
            }
        }
    }
}

fn has(seen: &[Value], kind: &str, customer: &str, segment: &str) -> bool {
    seen.iter().any(|m| {
        m["kind"] == kind
            && m["customer_id"] == customer
            && m["properties"]["segment_id"] == segment
    })
}

/// The job at `url` once it ended (succeeded or failed).
async fn finished_job(suite: &Suite, url: &str) -> Value {
    eventually("the job to end", || async {
        let (status, job) = json_of(suite.get(Some(&suite.key), url).await).await;
        assert_eq!(status, 200, "{job}");
        (job["status"] == "succeeded" || job["status"] == "failed").then_some(job)
    })
    .await
}

async fn members(suite: &Suite, segment: &str) -> BTreeSet<String> {
    let (status, body) = json_of(
        suite
            .get(
                Some(&suite.key),
                &format!("/v1/segments/{segment}/members?limit=1000"),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["customer_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn segments_follow_events_and_time_and_a_recompute_agrees() {
    let suite = Suite::start().await;
    let segments_topic = test_consumer(&suite.topic("crm.segments.v1"));
    let now = Utc::now();

    // Rules are checked when saved; errors point at the faulty node.
    let (status, body) = json_of(suite.post(&suite.key, "/v1/segments", Some(&json!({"name": "bad",
        "rule": {"all": [{"trait": {"name": "plan", "op": "eq", "value": "gold"}}, {"event": {"name": "x", "at_least": 1, "within_days": 5000}}]}}))).await).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_rule");
    assert_eq!(body["path"], "/all/1/event/within_days");
    let (status, body) = json_of(suite.post(&suite.key, "/v1/segments", Some(&json!({"name": "bad",
        "rule": {"any": [{"trait": {"name": "plan", "op": "eq", "value": "gold", "eval": "1+1"}}]}}))).await).await;
    assert_eq!(
        (status, body["path"].as_str()),
        (422, Some("/any/0/trait/eval")),
        "{body}"
    );

    let shoes = create_segment(&suite, "Shoe buyers", json!({"event": {"name": "Order Completed",
        "where": [{"property": "products.category", "op": "eq", "value": "shoes"}], "at_least": 1, "within_days": 90}})).await;
    let lapsed = create_segment(
        &suite,
        "No order in 90 days",
        json!({"all": [
        {"aggregate": {"metric": "orders", "op": "gte", "value": 1}},
        {"event": {"name": "Order Completed", "at_most": 0, "within_days": 90}}]}),
    )
    .await;
    let gold_shoes = create_segment(
        &suite,
        "Gold shoe buyers",
        json!({"all": [
        {"segment": {"id": shoes}}, {"trait": {"name": "plan", "op": "eq", "value": "gold"}}]}),
    )
    .await;

    // A reference back to the referring segment would close a cycle.
    let (status, body) = put(
        &suite,
        &format!("/v1/segments/{shoes}"),
        &json!({"rule": {"segment": {"id": gold_shoes}}}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("segment_cycle")),
        "{body}"
    );

    let u1 = format!("seg-{}", unique_id());
    let u2 = format!("seg-{}", unique_id());
    let u3 = format!("seg-{}", unique_id());
    suite.ingest(&json!([
        {"id": unique_id(), "kind": "identify", "identity": {"user_id": u1}, "traits": {"plan": "gold", "first_name": "Ana"}},
        order(&u1, now, "shoes", 80.0),
        order(&u2, now, "bags", 40.0),
        // 90 days minus 20 seconds ago: inside the window now, outside it in 20 seconds.
        order(&u3, now - chrono::Duration::days(90) + chrono::Duration::seconds(20), "shoes", 10.0),
    ])).await;
    let (c1, c2, c3) = (
        customer_id(&suite, &u1).await,
        customer_id(&suite, &u2).await,
        customer_id(&suite, &u3).await,
    );

    let mut seen = Vec::new();
    wait_messages(
        &segments_topic,
        &mut seen,
        "u1 entering shoes and gold shoes",
        |s| has(s, "segment.entered", &c1, &shoes) && has(s, "segment.entered", &c1, &gold_shoes),
    )
    .await;
    // Time alone moves u3: its only order leaves the 90-day window, with no event.
    wait_messages(
        &segments_topic,
        &mut seen,
        "u3 entering the lapsed segment as time passes",
        |s| {
            s.iter().any(|m| {
                m["kind"] == "segment.entered"
                    && m["customer_id"] == c3.as_str()
                    && m["properties"]["segment_id"] == lapsed.as_str()
                    && m["properties"]["reason"] == "time"
            })
        },
    )
    .await;
    wait_messages(
        &segments_topic,
        &mut seen,
        "u3 leaving shoe buyers as time passes",
        |s| has(s, "segment.exited", &c3, &shoes),
    )
    .await;
    assert!(
        !has(&seen, "segment.entered", &c2, &shoes),
        "bags are not shoes"
    );
    assert!(seen.iter().any(|m| m["kind"] == "lifecycle.changed"
        && m["customer_id"] == c1.as_str()
        && m["properties"]["to"] == "new"));

    let (_, body) = json_of(
        suite
            .get(Some(&suite.key), &format!("/v1/customers/{c1}/segments"))
            .await,
    )
    .await;
    let names: BTreeSet<&str> = body["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["Gold shoe buyers", "Shoe buyers"]));

    // A full recompute finds exactly the memberships the stream keeps.
    let before: Vec<BTreeSet<String>> = vec![
        members(&suite, &shoes).await,
        members(&suite, &lapsed).await,
        members(&suite, &gold_shoes).await,
    ];
    assert_eq!(before[0], BTreeSet::from([c1.clone()]));
    assert_eq!(before[1], BTreeSet::from([c3.clone()]));
    assert_eq!(before[2], BTreeSet::from([c1.clone()]));
    for segment in [&shoes, &lapsed, &gold_shoes] {
        let (status, body) = json_of(
            suite
                .post(
                    &suite.key,
                    &format!("/v1/segments/{segment}/recompute"),
                    None,
                )
                .await,
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let job = finished_job(&suite, body["url"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let (result, progress) = (&job["result"], &job["progress"]);
        assert_eq!(result["entered"], 0, "{job}");
        assert_eq!(result["exited"], 0, "{job}");
        assert!(result["customers"].as_u64().unwrap() >= 3);
        // Its progress counted every customer, with the rate it went at.
        assert_eq!(progress["done"], result["customers"], "{job}");
        assert_eq!(progress["done"], progress["of"], "{job}");
        assert!(progress["rate_per_s"].as_f64().unwrap() > 0.0, "{job}");
        assert_eq!(progress["eta_s"], 0.0, "{job}");
    }
    let after = vec![
        members(&suite, &shoes).await,
        members(&suite, &lapsed).await,
        members(&suite, &gold_shoes).await,
    ];
    assert_eq!(before, after);

    // Members page by customer id.
    let (_, page) = json_of(
        suite
            .get(
                Some(&suite.key),
                &format!("/v1/segments/{shoes}/members?limit=1"),
            )
            .await,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // Preview: size and sample of an unsaved rule.
    let (status, preview) = json_of(
        suite
            .post(
                &suite.key,
                "/v1/segments/preview",
                Some(&json!({"rule": {"bought_category": {"any_of": ["bags"]}}})),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["size"], 1);
    assert_eq!(preview["sample"], json!([c2]));

    // Versions say who changed what.
    let (status, _) = put(
        &suite,
        &format!("/v1/segments/{lapsed}"),
        &json!({"description": "win-back list"}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, versions) = json_of(
        suite
            .get(Some(&suite.key), &format!("/v1/segments/{lapsed}/versions"))
            .await,
    )
    .await;
    let versions = versions["versions"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["change"], "updated");
    assert_eq!(versions[0]["description"], "win-back list");
    assert!(
        versions[0]["changed_by"]
            .as_str()
            .unwrap()
            .starts_with("key:"),
        "{versions:?}"
    );

    // Deleting a referenced segment is refused; another tenant sees nothing.
    let r = suite
        .http
        .delete(format!("{}/v1/segments/{shoes}", suite.gateway))
        .bearer_auth(&suite.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let other = suite.new_tenant(&format!("t{}", unique_id())).await;
    assert_eq!(
        suite
            .get(Some(&other), &format!("/v1/segments/{shoes}"))
            .await
            .status(),
        404
    );
    // Another tenant's customer is unknown here, as any id this tenant never saw.
    let theirs = suite
        .get(Some(&other), &format!("/v1/customers/{c1}/segments"))
        .await;
    assert_eq!(theirs.status(), 404);
    assert_eq!(
        theirs.json::<Value>().await.unwrap()["code"],
        "customer_not_found"
    );
    let r = suite
        .http
        .delete(format!("{}/v1/segments/{gold_shoes}", suite.gateway))
        .bearer_auth(&suite.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    wait_messages(
        &segments_topic,
        &mut seen,
        "exit published on delete",
        |s| {
            s.iter().any(|m| {
                m["kind"] == "segment.exited"
                    && m["properties"]["reason"] == "segment_deleted"
                    && m["customer_id"] == c1.as_str()
            })
        },
    )
    .await;

    // The API documents itself.
    let spec: Value = suite.get(None, "/openapi.json").await.json().await.unwrap();
    for path in [
        "/v1/segments",
        "/v1/segments/{id}/members",
        "/v1/customers/{id}/scores",
        "/v1/reports/rfm",
        "/v1/reports/lifecycle",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merges_combine_aggregates_and_erasure_removes_them() {
    let suite = Suite::start().await;
    let now = Utc::now();
    let user = format!("m-{}", unique_id());
    let email = format!("{}@example.com", unique_id());
    suite
        .ingest(&json!([order(
            &user,
            now - chrono::Duration::days(3),
            "shoes",
            10.0
        )]))
        .await;
    let survivor = customer_id(&suite, &user).await;
    suite.ingest(&json!([{"id": unique_id(), "kind": "track", "name": "Order Completed", "occurred_at": ts(now),
        "identity": {"email": email, "anonymous_id": unique_id()},
        "properties": {"revenue": 20.0, "products": [{"category": "bags"}]}}])).await;
    let merged = eventually("second customer", || async {
        suite
            .customer_by("email", &email)
            .await
            .and_then(|c| c["id"].as_str().map(str::to_owned))
            .filter(|id| *id != survivor)
    })
    .await;
    eventually("second customer's activity", || async {
        let r = suite
            .get(
                Some(&suite.key),
                &format!("/v1/customers/{merged}/activity"),
            )
            .await;
        (r.status() == 200).then_some(())
    })
    .await;
    suite.ingest(&json!([{"id": unique_id(), "kind": "identify", "identity": {"user_id": user, "email": email}}])).await;
    let activity = eventually("combined aggregates", || async {
        let body: Value = suite
            .get(
                Some(&suite.key),
                &format!("/v1/customers/{survivor}/activity"),
            )
            .await
            .json()
            .await
            .ok()?;
        (body["orders"] == 2).then_some(body)
    })
    .await;
    assert_eq!(activity["revenue"], 30.0);
    assert_eq!(activity["average_order_value"], 15.0);
    assert_eq!(activity["categories"], json!(["bags", "shoes"]));
    assert_eq!(activity["events"]["Order Completed"]["count"], 2);
    assert_eq!(activity["events"]["Order Completed"]["last_7_days"], 2);
    // The merged id answers the survivor.
    let via_alias: Value = suite
        .get(
            Some(&suite.key),
            &format!("/v1/customers/{merged}/activity"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(via_alias["customer_id"], survivor.as_str());

    let r = suite
        .post(&suite.key, &format!("/v1/customers/{survivor}/erase"), None)
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    eventually("aggregates erased", || async {
        let r = suite
            .get(
                Some(&suite.key),
                &format!("/v1/customers/{survivor}/activity"),
            )
            .await;
        (r.status() == 404).then_some(())
    })
    .await;
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfm_stages_and_lead_scores_through_the_api() {
    let suite = Suite::start().await;
    let segments_topic = test_consumer(&suite.topic("crm.segments.v1"));
    let now = Utc::now();
    let days = |d: i64| now - chrono::Duration::days(d);

    let (status, body) = put(&suite, "/v1/segmentation/settings", &json!({
        "lifecycle": {"new_days": 30, "active_days": 90, "lapsed_days": 180},
        "lead_scoring": {
            "behaviour": [{"label": "pricing page", "event": "Page Viewed", "where": [{"property": "path", "op": "eq", "value": "/pricing"}], "points": 10}],
            "fit": [{"label": "director", "trait": "title", "op": "contains", "value": "director", "points": 15}],
            "half_life_days": 30, "qualified_at": 30}})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = put(
        &suite,
        "/v1/segmentation/settings",
        &json!({"lifecycle": {"new_days": 100, "active_days": 90, "lapsed_days": 180}}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_settings")),
        "{body}"
    );

    let champions = create_segment(
        &suite,
        "Champions",
        json!({"rfm": {"group": ["champions"]}}),
    )
    .await;
    let won_back = create_segment(
        &suite,
        "Won back",
        json!({"stage": {"in": ["reactivated"]}}),
    )
    .await;

    // Ten buyers with histories from loyal to long gone, one won back, one lead.
    let mut events = Vec::new();
    let mut users = Vec::new();
    for i in 0..10i64 {
        let user = format!("rfm-{i}-{}", unique_id());
        for k in 0..=i {
            events.push(order(
                &user,
                days(400 - 40 * i + k),
                "music",
                10.0 * (i + 1) as f64,
            ));
        }
        users.push(user);
    }
    let back = format!("back-{}", unique_id());
    events.push(order(&back, days(300), "music", 15.0));
    events.push(order(&back, days(5), "music", 25.0));
    let lead = format!("lead-{}", unique_id());
    events.push(json!({"id": unique_id(), "kind": "identify", "identity": {"user_id": lead}, "traits": {"title": "Marketing Director"}}));
    for _ in 0..2 {
        events.push(json!({"id": unique_id(), "kind": "track", "name": "Page Viewed", "occurred_at": ts(now), "identity": {"user_id": lead}, "properties": {"path": "/pricing"}}));
    }
    suite.ingest(&json!(events)).await;
    let back_id = customer_id(&suite, &back).await;
    let lead_id = customer_id(&suite, &lead).await;
    let mut seen = Vec::new();
    wait_messages(&segments_topic, &mut seen, "the won-back customer", |s| {
        has(s, "segment.entered", &back_id, &won_back)
    })
    .await;
    wait_messages(&segments_topic, &mut seen, "the qualified lead", |s| {
        s.iter()
            .any(|m| m["kind"] == "lead.qualified" && m["customer_id"] == lead_id.as_str())
    })
    .await;
    let (_, scores) = json_of(
        suite
            .get(Some(&suite.key), &format!("/v1/customers/{lead_id}/scores"))
            .await,
    )
    .await;
    assert_eq!(scores["stage"], "prospect");
    assert_eq!(scores["lead"]["qualified"], true);
    let score = scores["lead"]["score"].as_f64().unwrap();
    assert!((34.9..=35.0).contains(&score), "{scores}");
    let explanation = scores["lead"]["explanation"].as_array().unwrap();
    assert_eq!(explanation.len(), 2, "{scores}");
    assert_eq!(explanation[0]["label"], "pricing page");
    assert_eq!(explanation[0]["events"], 2);
    assert_eq!(explanation[1]["points"], 15.0);

    // Wait for every buyer, then score on demand.
    for u in &users {
        let id = customer_id(&suite, u).await;
        eventually("buyer's activity", || async {
            (suite
                .get(Some(&suite.key), &format!("/v1/customers/{id}/activity"))
                .await
                .status()
                == 200)
                .then_some(())
        })
        .await;
    }
    // A scoring run is a job: 202 with its URL, then followed until it ends.
    let started = suite.post(&suite.key, "/v1/scoring/runs", None).await;
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let (status, job) = json_of(started).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["url"], location.as_str());
    let job = eventually("the scoring job ended", || async {
        let (_, job) = json_of(suite.get(Some(&suite.key), &location).await).await;
        (job["status"] == "succeeded" || job["status"] == "failed").then_some(job)
    })
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let run = job["result"].clone();
    assert_eq!(run["customers"], 11, "{run}");
    let (_, rfm) = json_of(suite.get(Some(&suite.key), "/v1/reports/rfm").await).await;
    let total: i64 = rfm["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["customers"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 11, "{rfm}");
    let champion_members = members(&suite, &champions).await;
    let expected: BTreeSet<String> = {
        let (_, runs) = json_of(suite.get(Some(&suite.key), "/v1/reports/rfm").await).await;
        let n = runs["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == "champions")
            .map_or(0, |g| g["customers"].as_i64().unwrap());
        assert_eq!(champion_members.len() as i64, n);
        champion_members.clone()
    };
    assert!(
        !expected.is_empty(),
        "the most recent, most frequent buyers are champions: {rfm}"
    );
    let (_, back_scores) = json_of(
        suite
            .get(Some(&suite.key), &format!("/v1/customers/{back_id}/scores"))
            .await,
    )
    .await;
    assert_eq!(back_scores["stage"], "reactivated");
    assert!(
        back_scores["rfm"]["r"].as_u64().unwrap() >= 4,
        "{back_scores}"
    );
    // The run announced the value it predicted (campaign mirrors it for lead priority).
    let predicted = back_scores["value"]["lifetime_value"]
        .as_f64()
        .unwrap_or_else(|| panic!("the value model fits these buyers: {back_scores}"));
    wait_messages(
        &segments_topic,
        &mut seen,
        "the won-back customer's value.predicted",
        |s| {
            s.iter().any(|m| {
                m["kind"] == "value.predicted"
                    && m["customer_id"] == back_id.as_str()
                    && m["properties"]["lifetime_value"]
                        .as_f64()
                        .is_some_and(|v| (v - predicted).abs() < 1e-6)
            })
        },
    )
    .await;

    let (status, report) = json_of(
        suite
            .get(Some(&suite.key), "/v1/reports/lifecycle?period=day")
            .await,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["stages"]["reactivated"], 1, "{report}");
    assert_eq!(report["stages"]["prospect"], 1, "{report}");
    let into_reactivated: i64 = report["periods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["into"]["reactivated"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(into_reactivated, 1, "{report}");
    let (status, bad) = json_of(
        suite
            .get(Some(&suite.key), "/v1/reports/lifecycle?from=yesterday")
            .await,
    )
    .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid_range")),
        "{bad}"
    );
    let (status, bad) = json_of(
        suite
            .get(Some(&suite.key), "/v1/reports/lifecycle?period=year")
            .await,
    )
    .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid_period")),
        "{bad}"
    );
    suite.stop().await;
}

/// A change of the tenant's segments waits for every evaluation in progress (which may be
/// using the old model), and evaluations that start during the change wait for it: so the
/// recompute that follows a change sees every customer an old-model evaluation touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_segment_change_waits_for_evaluations_in_progress() {
    let suite = Suite::start().await;
    let acme = crm_envelope::TenantId::parse("acme").unwrap();
    let pool = suite.pool_of("segmentation").await;
    let mut evaluation = pool.begin().await.unwrap();
    crm_segmentation::store::settings::hold_generation(&mut evaluation, &acme)
        .await
        .unwrap();
    let before = crm_segmentation::store::settings::generation(&mut evaluation, &acme)
        .await
        .unwrap();
    let change = {
        let pool = pool.clone();
        let acme = acme.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            crm_segmentation::store::settings::bump_generation(&mut tx, &acme)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !change.is_finished(),
        "the change went ahead while an evaluation held the generation"
    );
    evaluation.commit().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), change)
        .await
        .expect("the change proceeds once the evaluation commits")
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let after = crm_segmentation::store::settings::generation(&mut conn, &acme)
        .await
        .unwrap();
    assert_eq!(after, before + 1);
    suite.stop().await;
}
