//! Personalize through the gateway, on the real pipeline: offers are checked when saved (the
//! JSON pointer of a refused condition), decisions read the profile campaign mirrors from the
//! topics (segment memberships from segmentation, consent from identity), rank with their
//! reasons, honour caps and suppression, give the control group the fallback on every call,
//! record outcomes once, learn from them, put them on the timeline, and keep every tenant's
//! offers and decisions to itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crm_gateway::Scope;
use crm_tests::{eventually, Suite};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

async fn decide(suite: &Suite, key: &str, body: &Value) -> (u16, Value) {
    let response = suite.post(key, "/v1/decisions", Some(body)).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn outcome(suite: &Suite, key: &str, decision: &str, body: &Value) -> (u16, Value) {
    let path = format!("/v1/decisions/{decision}/outcomes");
    let response = suite.post(key, &path, Some(body)).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn offer(suite: &Suite, body: Value) -> String {
    let (status, created) = suite
        .admin_call(Method::POST, "/v1/offers", Some(&body))
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

fn ids(decision: &Value) -> Vec<String> {
    decision["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["offer_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A customer identified with `traits`, once campaign's mirror shows `ready` of its row.
async fn customer(suite: &Suite, user: &str, traits: Value, ready: &str) -> Uuid {
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": user}, "traits": traits}))
        .await;
    let profile = suite.wait_for_customer(user, |_| true).await;
    let id: Uuid = profile["id"].as_str().unwrap().parse().unwrap();
    let campaign = suite.pool_of("campaign").await;
    eventually(&format!("campaign's mirror of {user}"), || async {
        let sql = format!("SELECT 1 FROM contacts WHERE customer_id = $1 AND ({ready})");
        sqlx::query_scalar::<_, i32>(&sql)
            .bind(id)
            .fetch_optional(&campaign)
            .await
            .unwrap()
    })
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_are_decided_by_segment_and_consent_with_reasons_caps_and_outcomes() {
    let suite = Suite::start().await;
    let storefront = suite.key_with("acme", &[Scope::Decide]).await;

    let (status, segment) = suite
        .admin_call(
            Method::POST,
            "/v1/segments",
            Some(&json!({"name": "French", "rule": {"trait": {"name": "country", "op": "eq", "value": "FR"}}})),
        )
        .await;
    assert_eq!(status, 201, "{segment}");
    let segment = segment["segment"]["id"].as_str().unwrap().to_owned();

    // Eligibility is the segment language restricted to decision-time nodes: a condition on
    // the event history is refused with its pointer; a segment cannot test consent.
    let (status, refused) = suite
        .admin_call(
            Method::POST,
            "/v1/offers",
            Some(
                &json!({"name": "History", "placements": ["home"], "value": 1,
                "eligibility": {"all": [{"segment": {"id": segment}},
                                        {"event": {"name": "Order Completed", "at_least": 1}}]}}),
            ),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "invalid_offer");
    assert_eq!(refused["path"], "/eligibility/all/1/event", "{refused}");
    let (status, refused) = suite
        .admin_call(
            Method::POST,
            "/v1/segments",
            Some(&json!({"name": "Consenting", "rule": {"consent": {"purpose": "marketing"}}})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("/consent"), "{refused}");

    let french = offer(
        &suite,
        json!({"name": "French deal", "placements": ["home"], "value": 10,
               "content": {"headline": "Bonjour"},
               "eligibility": {"all": [{"segment": {"id": segment}},
                                       {"consent": {"purpose": "marketing", "channel": "email"}}]}}),
    )
    .await;
    let everyone = offer(
        &suite,
        json!({"name": "Everyone", "placements": ["home", "cart"], "value": 1, "customer_cap": 1}),
    )
    .await;
    let fallback = offer(
        &suite,
        json!({"name": "Newsletter", "placements": ["home"], "value": 0.1, "fallback": true}),
    )
    .await;
    let (status, dup) = suite
        .admin_call(
            Method::POST,
            "/v1/offers",
            Some(&json!({"name": "everyone", "placements": ["home"], "value": 1})),
        )
        .await;
    assert_eq!(
        (status, dup["code"].as_str()),
        (409, Some("offer_name_taken"))
    );

    let fr = customer(
        &suite,
        "offer-fr",
        json!({"country": "FR",
               "consent": [{"purpose": "marketing", "channel": "email", "granted": true}]}),
        &format!("'{segment}' = ANY(segments) AND consents ? 'marketing:email'"),
    )
    .await;
    let de = customer(
        &suite,
        "offer-de",
        json!({"country": "DE"}),
        "traits ->> 'country' = 'DE'",
    )
    .await;

    // The French customer with consent: both offers, the French one first, with reasons.
    let ask = |user: &str, limit: u32| {
        json!({"customer": {"user_id": user}, "placement": "home",
               "context": {"channel": "web"}, "limit": limit})
    };
    let (status, d) = decide(&suite, &storefront, &ask("offer-fr", 3)).await;
    assert_eq!(status, 201, "{d}");
    assert_eq!(ids(&d), [french.clone(), everyone.clone()], "{d}");
    assert_eq!(d["customer_id"], fr.to_string());
    assert_eq!(d["control"], false);
    assert!(d["expires_at"].as_str().unwrap() > d["decided_at"].as_str().unwrap());
    let reasons: Vec<&str> = d["offers"][0]["eligible_because"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["/all/0", "/all/1"], "{d}");
    assert!(d["offers"][0]["ranked_by"]["score"].as_f64().unwrap() > 0.0);
    assert_eq!(d["offers"][0]["content"]["headline"], "Bonjour");
    let decision = d["decision_id"].as_str().unwrap().to_owned();

    // The German customer is not in the segment: only the open offer.
    let (status, d) = decide(&suite, &storefront, &ask("offer-de", 3)).await;
    assert_eq!(status, 201, "{d}");
    assert_eq!(ids(&d), std::slice::from_ref(&everyone), "{d}");
    let de_decision = d["decision_id"].as_str().unwrap().to_owned();

    // Outcomes: once per kind; an offer the decision did not make is refused.
    let accept = json!({"offer_id": french, "kind": "accept"});
    let (status, r) = outcome(&suite, &storefront, &decision, &accept).await;
    assert_eq!((status, &r["recorded"]), (201, &json!(true)), "{r}");
    let (status, r) = outcome(&suite, &storefront, &decision, &accept).await;
    assert_eq!((status, &r["recorded"]), (200, &json!(false)), "{r}");
    let (status, r) = outcome(
        &suite,
        &storefront,
        &de_decision,
        &json!({"offer_id": french, "kind": "click"}),
    )
    .await;
    assert_eq!(
        (status, r["code"].as_str()),
        (422, Some("invalid_outcome")),
        "{r}"
    );
    let (status, r) = outcome(
        &suite,
        &storefront,
        &de_decision,
        &json!({"offer_id": everyone, "kind": "impression"}),
    )
    .await;
    assert_eq!(status, 201, "{r}");

    // The customer cap (one impression) is spent: the German customer now gets the fallback,
    // and the answer says why the open offer was left out.
    let (status, d) = decide(&suite, &storefront, &ask("offer-de", 3)).await;
    assert_eq!(status, 201, "{d}");
    assert_eq!(ids(&d), std::slice::from_ref(&fallback), "{d}");
    assert_eq!(d["fallback_used"], true);
    assert_eq!(d["excluded"][0]["offer_id"], everyone);
    assert_eq!(d["excluded"][0]["reason"], "customer_cap");

    // One rejection suppresses an offer for that customer (the default setting).
    let (_, d) = decide(&suite, &storefront, &ask("offer-fr", 3)).await;
    let again = d["decision_id"].as_str().unwrap().to_owned();
    let (status, _) = outcome(
        &suite,
        &storefront,
        &again,
        &json!({"offer_id": french, "kind": "reject"}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, d) = decide(&suite, &storefront, &ask("offer-fr", 3)).await;
    assert!(!ids(&d).contains(&french), "{d}");
    assert!(
        d["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["offer_id"] == french.as_str() && e["reason"] == "suppressed_rejections"),
        "{d}"
    );

    // The customer's decisions and outcomes (the click implied the impression).
    let (status, mine) = suite
        .admin_call(Method::GET, &format!("/v1/customers/{fr}/decisions"), None)
        .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["decisions"].as_array().unwrap().len(), 3, "{mine}");
    let first: Vec<(&str, &str)> = mine["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["decision_id"] == decision.as_str())
        .map(|o| (o["kind"].as_str().unwrap(), o["source"].as_str().unwrap()))
        .collect();
    assert_eq!(first.len(), 2, "{mine}");
    assert!(first.contains(&("impression", "implied")) && first.contains(&("accept", "api")));

    // A tracked `Offer Clicked` event is an outcome too.
    suite
        .ingest(&json!({"kind": "track", "name": "Offer Clicked",
                        "identity": {"user_id": "offer-fr"},
                        "properties": {"decision_id": decision, "offer_id": french}}))
        .await;
    eventually("the tracked click is recorded", || async {
        let (_, mine) = suite
            .admin_call(Method::GET, &format!("/v1/customers/{fr}/decisions"), None)
            .await;
        mine["outcomes"]
            .as_array()?
            .iter()
            .any(|o| o["kind"] == "click" && o["source"] == "event")
            .then_some(())
    })
    .await;

    // Outcomes are on the customer's timeline (crm.interactions.v1).
    let timeline = format!("/v1/customers/{fr}/timeline?limit=100");
    eventually("decisions and outcomes on the timeline", || async {
        let (_, page) = suite.admin_call(Method::GET, &timeline, None).await;
        let kinds: Vec<String> = page["items"]
            .as_array()?
            .iter()
            .filter_map(|i| i["kind"].as_str().map(str::to_owned))
            .collect();
        let has = |k: &str| kinds.iter().any(|x| x == k);
        (has("offer.impression") && has("offer.accepted") && has("offer.rejected")).then_some(())
    })
    .await;

    // Another tenant sees none of it and cannot decide for this tenant's customers.
    let globex = suite.new_tenant("globex").await;
    let response = suite.get(Some(&globex), "/v1/offers").await;
    assert_eq!(response.status().as_u16(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(list["items"], json!([]), "{list}");
    for path in [
        format!("/v1/offers/{french}"),
        format!("/v1/decisions/{decision}"),
        format!("/v1/customers/{fr}/decisions"),
    ] {
        let r = suite.get(Some(&globex), &path).await;
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    let (status, r) = decide(&suite, &globex, &ask("offer-fr", 1)).await;
    assert_eq!(
        (status, r["code"].as_str()),
        (404, Some("customer_not_found")),
        "{r}"
    );
    let (status, _) = outcome(&suite, &globex, &decision, &accept).await;
    assert_eq!(status, 404);
    let (status, d) = suite
        .admin_call(Method::GET, &format!("/v1/decisions/{decision}"), None)
        .await;
    assert_eq!(
        (status, d["decision_id"].as_str()),
        (200, Some(decision.as_str()))
    );
    assert_ne!(de, fr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_group_gets_the_fallback_on_every_call_and_the_model_learns() {
    let suite = Suite::start().await;
    let storefront = suite.key_with("acme", &[Scope::Decide]).await;
    let (status, s) = suite
        .admin_call(
            Method::PUT,
            "/v1/decisions/settings",
            Some(&json!({"control_percent": 50, "ttl_seconds": 60,
                         "arbitration": {"explore": true, "max_rejections": 0}})),
        )
        .await;
    assert_eq!(status, 200, "{s}");
    let (status, bad) = suite
        .admin_call(
            Method::PUT,
            "/v1/decisions/settings",
            Some(&json!({"control_percent": 90})),
        )
        .await;
    assert_eq!(
        (status, bad["path"].as_str()),
        (422, Some("/control_percent")),
        "{bad}"
    );

    let good = offer(
        &suite,
        json!({"name": "Good", "placements": ["app"], "value": 5}),
    )
    .await;
    let poor = offer(
        &suite,
        json!({"name": "Poor", "placements": ["app"], "value": 5}),
    )
    .await;
    let fallback = offer(
        &suite,
        json!({"name": "Fallback", "placements": ["app"], "value": 1, "fallback": true}),
    )
    .await;

    // Customers on both sides of the control group, found by the same salted hash the part
    // uses; each gets the same side on every call. Ids are random, so customers are added
    // until both sides have at least two (six in a row on one side happen 3% of the time).
    let mut people = Vec::new();
    for n in 0..40 {
        let user = format!("ctl-{n}");
        let id = customer(&suite, &user, json!({"n": n}), "true").await;
        let control = crm_campaign::domain::offers::decide::in_control("acme", id, 50);
        people.push((user, control));
        let controls = people.iter().filter(|p| p.1).count();
        if people.len() >= 6 && controls >= 2 && people.len() - controls >= 2 {
            break;
        }
    }
    assert!(
        people.iter().filter(|p| p.1).count() >= 2 && people.iter().filter(|p| !p.1).count() >= 2,
        "{people:?}"
    );
    for (user, control) in &people {
        for _ in 0..10 {
            let (status, d) = decide(
                &suite,
                &storefront,
                &json!({"customer": {"user_id": user}, "placement": "app", "limit": 2}),
            )
            .await;
            assert_eq!(status, 201, "{d}");
            assert_eq!(d["control"], *control, "{user}: {d}");
            if *control {
                assert_eq!(ids(&d), std::slice::from_ref(&fallback), "{d}");
            } else {
                assert!(!ids(&d).contains(&fallback), "{d}");
            }
        }
    }

    // Simulated outcomes: the good offer is accepted when shown first 80% of the time, the
    // poor one 10%. With Thompson sampling the good one comes to lead.
    let (learner, _) = people.iter().find(|p| !p.1).unwrap();
    let mut good_first_late = 0;
    for round in 0..120 {
        let (_, d) = decide(
            &suite,
            &storefront,
            &json!({"customer": {"user_id": learner}, "placement": "app"}),
        )
        .await;
        let decision = d["decision_id"].as_str().unwrap();
        let shown = ids(&d)[0].clone();
        let accepted = if shown == good {
            round % 10 < 8
        } else {
            round % 10 == 0
        };
        let kind = if accepted { "accept" } else { "impression" };
        let (status, _) = outcome(
            &suite,
            &storefront,
            decision,
            &json!({"offer_id": shown, "kind": kind}),
        )
        .await;
        assert_eq!(status, 201);
        if round >= 90 && shown == good {
            good_first_late += 1;
        }
    }
    assert!(
        good_first_late >= 24,
        "the good offer led {good_first_late} of the last 30 decisions"
    );
    assert_ne!(good, poor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_assign_stably_count_goals_and_follow_merges() {
    let suite = Suite::start().await;
    let storefront = suite.key_with("acme", &[Scope::Decide]).await;
    let a = offer(
        &suite,
        json!({"name": "A", "placements": ["exp"], "value": 9}),
    )
    .await;
    let b = offer(
        &suite,
        json!({"name": "B", "placements": ["exp"], "value": 1}),
    )
    .await;
    let plan = |placement: &str| {
        json!({"name": "Only B", "subject": {"offers": {"placement": placement}},
               "arms": [{"key": "control", "weight": 1},
                        {"key": "b_only", "weight": 1, "offer_ids": [b]}],
               "goal": {"event": "Order Completed", "revenue_property": "revenue", "window_days": 14},
               "minimum_sample": 10})
    };
    let (status, bad) = suite
        .admin_call(
            Method::POST,
            "/v1/experiments",
            Some(&json!({"name": "x", "subject": "message",
            "arms": [{"key": "a", "weight": 1}, {"key": "a", "weight": 1}],
            "goal": {"event": "Order Completed", "window_days": 14}})),
        )
        .await;
    assert_eq!(
        (status, bad["path"].as_str()),
        (422, Some("/arms/1/key")),
        "{bad}"
    );
    let (status, exp) = suite
        .admin_call(Method::POST, "/v1/experiments", Some(&plan("exp")))
        .await;
    assert_eq!(status, 201, "{exp}");
    let exp = exp["id"].as_str().unwrap().to_owned();
    let (status, rival) = suite
        .admin_call(Method::POST, "/v1/experiments", Some(&plan("exp")))
        .await;
    assert_eq!(status, 201, "{rival}");
    let rival = rival["id"].as_str().unwrap().to_owned();
    let (status, started) = suite
        .admin_call(Method::POST, &format!("/v1/experiments/{exp}/start"), None)
        .await;
    assert_eq!(
        (status, started["status"].as_str()),
        (200, Some("running")),
        "{started}"
    );
    for (id, why) in [
        (&exp, "started twice"),
        (&rival, "a second on the placement"),
    ] {
        let (status, r) = suite
            .admin_call(Method::POST, &format!("/v1/experiments/{id}/start"), None)
            .await;
        assert_eq!(
            (status, r["code"].as_str()),
            (409, Some("invalid_state")),
            "{why}: {r}"
        );
    }
    let (status, r) = suite
        .admin_call(
            Method::PUT,
            &format!("/v1/experiments/{exp}"),
            Some(&plan("exp")),
        )
        .await;
    assert_eq!(status, 409, "a running experiment keeps its plan: {r}");

    // Decisions at the placement expose and assign: the same arm on every call; the b_only
    // arm is offered B only.
    let mut arms = Vec::new();
    for n in 0..8 {
        let user = format!("exp-{n}");
        let id = customer(&suite, &user, json!({"n": n}), "true").await;
        let ask = json!({"customer": {"id": id}, "placement": "exp", "limit": 2});
        let (_, first) = decide(&suite, &storefront, &ask).await;
        let (_, second) = decide(&suite, &storefront, &ask).await;
        let arm = first["experiment"]["arm"].as_str().unwrap().to_owned();
        assert_eq!(
            second["experiment"]["arm"],
            arm.as_str(),
            "{first} {second}"
        );
        assert_eq!(first["experiment"]["experiment_id"], exp.as_str());
        if arm == "b_only" {
            assert_eq!(ids(&first), std::slice::from_ref(&b), "{first}");
        } else {
            assert_eq!(ids(&first), [a.clone(), b.clone()], "{first}");
        }
        arms.push((user, arm));
    }

    // Goal events inside the window count, with their revenue.
    let buyers: Vec<&(String, String)> = arms.iter().take(3).collect();
    for (user, _) in &buyers {
        suite
            .ingest(&json!({"kind": "track", "name": "Order Completed",
                            "identity": {"user_id": user}, "properties": {"revenue": 30}}))
            .await;
    }
    let path = format!("/v1/experiments/{exp}/results");
    let results = eventually("three conversions", || async {
        let (status, r) = suite.admin_call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{r}");
        let conversions: u64 = r["results"]["arms"]
            .as_array()?
            .iter()
            .map(|a| a["conversions"].as_u64().unwrap_or(0))
            .sum();
        (conversions == 3).then_some(r)
    })
    .await;
    let r = &results["results"];
    let exposed: u64 = r["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["customers"].as_u64().unwrap())
        .sum();
    assert_eq!(exposed, 8, "{results}");
    let revenue: f64 = r["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["revenue_per_customer"].as_f64().unwrap() * a["customers"].as_f64().unwrap())
        .sum();
    assert!((revenue - 90.0).abs() < 1e-9, "{results}");
    // Eight customers are under the minimum sample: no uplift is shown yet.
    assert_eq!(r["enough_data"], false);
    assert!(r["arms"][1].get("conversion_uplift").is_none(), "{results}");

    // A merge during an experiment: the survivor keeps its arm, and the person counts once.
    let (status, msg) = suite
        .admin_call(
            Method::POST,
            "/v1/experiments",
            Some(&json!({"name": "Subject lines", "subject": "message",
                "arms": [{"key": "plain", "weight": 1, "variant": {"template": "plain"}},
                         {"key": "emoji", "weight": 1, "variant": {"template": "emoji"}}],
                "goal": {"event": "Order Completed", "window_days": 7}, "minimum_sample": 10})),
        )
        .await;
    assert_eq!(status, 201, "{msg}");
    let msg = msg["id"].as_str().unwrap().to_owned();
    suite
        .admin_call(Method::POST, &format!("/v1/experiments/{msg}/start"), None)
        .await;
    let survivor = customer(&suite, "merge-x", json!({}), "true").await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4());
    suite
        .ingest(
            &json!({"kind": "identify", "identity": {"email": email, "anonymous_id": "anon-y"}}),
        )
        .await;
    let merged = eventually("the second profile in campaign", || async {
        let found = suite.customer_by("email", &email).await?;
        let id: Uuid = found["id"].as_str()?.parse().ok()?;
        let campaign = suite.pool_of("campaign").await;
        sqlx::query_scalar::<_, i32>("SELECT 1 FROM contacts WHERE customer_id = $1")
            .bind(id)
            .fetch_optional(&campaign)
            .await
            .unwrap()
            .map(|_| id)
    })
    .await;
    let assign = |id: Uuid| json!({"customer": {"id": id}});
    let path = format!("/v1/experiments/{msg}/assignments");
    let x = suite
        .post(&storefront, &path, Some(&assign(survivor)))
        .await;
    assert_eq!(x.status().as_u16(), 201);
    let x: Value = x.json().await.unwrap();
    let y: Value = suite
        .post(&storefront, &path, Some(&assign(merged)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(y["customer_id"], merged.to_string());
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": "merge-x", "email": email}}))
        .await;
    let after = eventually("the merge reaches campaign", || async {
        let r: Value = suite
            .post(&storefront, &path, Some(&assign(merged)))
            .await
            .json()
            .await
            .ok()?;
        (r["customer_id"] == survivor.to_string()).then_some(r)
    })
    .await;
    assert_eq!(
        after["arm"], x["arm"],
        "the survivor's arm: {after} {x} {y}"
    );
    assert_eq!(after["first_exposure"], false);
    let (_, results) = suite
        .admin_call(Method::GET, &format!("/v1/experiments/{msg}/results"), None)
        .await;
    let exposed: u64 = results["results"]["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["customers"].as_u64().unwrap())
        .sum();
    assert_eq!(exposed, 1, "the person counts once: {results}");

    // Stopped: no more assignments; another tenant sees none of it.
    let (status, _) = suite
        .admin_call(Method::POST, &format!("/v1/experiments/{msg}/stop"), None)
        .await;
    assert_eq!(status, 200);
    let r = suite
        .post(&storefront, &path, Some(&assign(survivor)))
        .await;
    assert_eq!(r.status().as_u16(), 409);
    let globex = suite.new_tenant("globex").await;
    for p in [
        format!("/v1/experiments/{exp}"),
        format!("/v1/experiments/{exp}/results"),
    ] {
        assert_eq!(
            suite.get(Some(&globex), &p).await.status().as_u16(),
            404,
            "{p}"
        );
    }
    let r: Value = suite
        .get(Some(&globex), "/v1/experiments")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["items"], json!([]));
}
