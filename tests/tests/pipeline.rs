//! The sales pipeline through the gateway, on the real parts: leads opened by the API are
//! assigned round robin within capacity, one open lead per customer and source, moved,
//! converted into an opportunity, whose stages are kept with their times; losing it needs a
//! reason of the pipeline's list; another tenant sees none of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crm_gateway::Scope;
use crm_tests::{eventually, part_config, test_consumer, unique_id, Suite};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

async fn call(
    suite: &Suite,
    key: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    suite.keyed_call(key, method, path, body).await
}

/// A customer known to campaign's mirror.
async fn customer(suite: &Suite, user: &str) -> Uuid {
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": user}, "traits": {"country": "ES"}}))
        .await;
    let profile = suite.wait_for_customer(user, |_| true).await;
    let id: Uuid = profile["id"].as_str().unwrap().parse().unwrap();
    let campaign = suite.pool_of("campaign").await;
    eventually(&format!("campaign's mirror of {user}"), || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT 1 FROM contacts WHERE customer_id = $1 AND traits_at IS NOT NULL",
        )
        .bind(id)
        .fetch_optional(&campaign)
        .await
        .unwrap()
    })
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_are_assigned_in_turn_converted_and_their_opportunity_keeps_its_stages() {
    let suite = Suite::start().await;
    let sales = suite.key_with("acme", &[Scope::Sales, Scope::Read]).await;
    let reader = suite.key_with("acme", &[Scope::Read]).await;

    let (status, settings) = suite
        .admin_call(
            Method::PUT,
            "/v1/leads/settings",
            Some(&json!({"assignment": [
                {"name": "Iberia", "when": {"trait": {"name": "country", "op": "in", "value": ["ES", "PT"]}},
                 "team": ["ana", "bo"], "capacity": 1}]})),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    let (status, bad) = suite
        .admin_call(
            Method::PUT,
            "/v1/leads/settings",
            Some(&json!({"assignment": [{"name": "x", "team": []}]})),
        )
        .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (422, Some("invalid_lead_settings"))
    );
    assert_eq!(bad["path"], "/assignment/0/team");

    let (status, pipeline) = suite
        .admin_call(
            Method::POST,
            "/v1/pipelines",
            Some(&json!({"name": "New business", "stages": [
                {"key": "qualify", "name": "Qualify", "probability": 10},
                {"key": "proposal", "name": "Proposal", "probability": 50},
                {"key": "won", "name": "Won", "probability": 100, "won": true},
                {"key": "lost", "name": "Lost", "probability": 0, "lost": true}],
                "lost_reasons": ["price", "competitor"]})),
        )
        .await;
    assert_eq!(status, 201, "{pipeline}");
    let (status, refused) = suite
        .admin_call(
            Method::POST,
            "/v1/pipelines",
            Some(&json!({"name": "Broken", "stages": [
                {"key": "a", "name": "A", "probability": 10},
                {"key": "won", "name": "Won", "probability": 90, "won": true},
                {"key": "lost", "name": "Lost", "probability": 0, "lost": true}],
                "lost_reasons": ["price"]})),
        )
        .await;
    assert_eq!(
        (status, refused["path"].as_str()),
        (422, Some("/stages/1/probability"))
    );

    // Three customers of the rule's territory: ana, then bo, then nobody (capacity 1 each).
    let mut owners = Vec::new();
    let mut leads = Vec::new();
    for i in 0..3 {
        let id = customer(&suite, &format!("lead-{i}")).await;
        let (status, lead) = call(
            &suite,
            &sales,
            Method::POST,
            "/v1/leads",
            Some(&json!({"customer_id": id, "source": "form", "campaign": "webinar"})),
        )
        .await;
        assert_eq!(status, 201, "{lead}");
        owners.push(lead["owner"].as_str().map(str::to_owned));
        leads.push((id, lead));
    }
    assert_eq!(
        owners,
        [Some("ana".to_owned()), Some("bo".to_owned()), None]
    );
    assert_eq!(leads[0].1["status"], "assigned");
    assert_eq!(leads[0].1["assigned_by"], "Iberia");
    assert_eq!(leads[2].1["status"], "new");

    // A lead left waiting past its first-touch SLA climbs when the refresh pass recomputes
    // its priority (here called at once rather than waiting for the pass).
    let campaign = suite.pool_of("campaign").await;
    let waiting: Uuid = leads[1].1["id"].as_str().unwrap().parse().unwrap();
    let before = leads[1].1["priority"].as_f64().unwrap();
    sqlx::query(
        "UPDATE leads SET waiting_since = now() - interval '1 day',
             priority_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(waiting)
    .execute(&campaign)
    .await
    .unwrap();
    let refreshed = crm_campaign::pipeline::leads::refresh_priorities(
        &campaign,
        chrono::Duration::minutes(5),
        500,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert!(refreshed >= 1);
    let (after,): (f64,) = sqlx::query_as("SELECT priority FROM leads WHERE id = $1")
        .bind(waiting)
        .fetch_one(&campaign)
        .await
        .unwrap();
    assert!(after >= before + 100.0, "breached SLA: {before} -> {after}");

    // One open lead per customer and source: asking again answers the open one.
    let (first, lead) = &leads[0];
    let (status, again) = call(
        &suite,
        &sales,
        Method::POST,
        "/v1/leads",
        Some(&json!({"customer_id": first, "source": "form"})),
    )
    .await;
    assert_eq!((status, &again["id"]), (200, &lead["id"]));

    // A read-only key cannot work leads.
    let (status, _) = call(
        &suite,
        &reader,
        Method::POST,
        "/v1/leads",
        Some(&json!({"customer_id": first, "source": "api"})),
    )
    .await;
    assert_eq!(status, 403);

    let lead_id = lead["id"].as_str().unwrap();
    let (status, worked) = call(
        &suite,
        &sales,
        Method::PATCH,
        &format!("/v1/leads/{lead_id}"),
        Some(&json!({"status": "working"})),
    )
    .await;
    assert_eq!(status, 200, "{worked}");
    assert!(
        worked["waiting_since"].is_null(),
        "the first touch ends the wait: {worked}"
    );
    let (status, refused) = call(
        &suite,
        &sales,
        Method::PATCH,
        &format!("/v1/leads/{lead_id}"),
        Some(&json!({"status": "disqualified", "reason": "rude"})),
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("invalid_state"))
    );

    let (status, detail) = call(
        &suite,
        &reader,
        Method::GET,
        &format!("/v1/leads/{lead_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{detail}");
    let statuses: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["assigned", "working"]);
    assert!(
        detail["priority_now"]["because"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["factor"] == "status_age"),
        "{detail}"
    );

    // The queue of ana: her lead; bo's has his.
    let (status, queue) = call(
        &suite,
        &reader,
        Method::GET,
        "/v1/lead-queue?owner=ana",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(queue["items"].as_array().unwrap().len(), 1);
    assert_eq!(queue["items"][0]["id"], lead["id"]);

    // Converting opens the opportunity at the first open stage, owned by the lead's owner.
    let (status, converted) = call(
        &suite,
        &sales,
        Method::POST,
        &format!("/v1/leads/{lead_id}/convert"),
        Some(&json!({"name": "Annual plan", "amount": 1200.456})),
    )
    .await;
    assert_eq!(status, 200, "{converted}");
    assert_eq!(converted["lead"]["status"], "converted");
    let opp = &converted["opportunity"];
    assert_eq!(
        (
            opp["stage"].as_str(),
            opp["owner"].as_str(),
            opp["currency"].as_str()
        ),
        (Some("qualify"), Some("ana"), Some("EUR"))
    );
    assert_eq!(opp["amount"], 1200.46);
    assert_eq!(opp["probability"], 10);
    let opp_id = opp["id"].as_str().unwrap();

    let path = format!("/v1/opportunities/{opp_id}");
    let (status, moved) = call(
        &suite,
        &sales,
        Method::PATCH,
        &path,
        Some(&json!({"stage": "proposal"})),
    )
    .await;
    assert_eq!(
        (status, moved["probability"].as_i64()),
        (200, Some(50)),
        "{moved}"
    );
    let (status, refused) = call(
        &suite,
        &sales,
        Method::PATCH,
        &path,
        Some(&json!({"stage": "lost"})),
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (422, Some("lost_reason_required")),
        "{refused}"
    );
    let (status, lost) = call(
        &suite,
        &sales,
        Method::PATCH,
        &path,
        Some(&json!({"stage": "lost", "lost_reason": "price"})),
    )
    .await;
    assert_eq!(status, 200, "{lost}");
    assert_eq!(
        (lost["status"].as_str(), lost["probability"].as_i64()),
        (Some("lost"), Some(0))
    );
    assert!(lost["closed_at"].is_string());

    let (status, detail) = call(&suite, &reader, Method::GET, &path, None).await;
    assert_eq!(status, 200);
    let stages: Vec<(&str, bool)> = detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["left_at"].is_string()))
        .collect();
    assert_eq!(
        stages,
        [("qualify", true), ("proposal", true), ("lost", false)]
    );

    // The reports: the lost opportunity counts against the owner; the webinar's three leads
    // converted one.
    let pipeline_id = pipeline["id"].as_str().unwrap();
    let (status, report) = call(
        &suite,
        &reader,
        Method::GET,
        &format!("/v1/pipelines/{pipeline_id}/report"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let results = report["results"].as_array().unwrap();
    let ana = results.iter().find(|r| r["owner"] == "ana").unwrap();
    assert_eq!(
        (
            ana["won"].as_i64(),
            ana["lost"].as_i64(),
            ana["win_rate"].as_f64()
        ),
        (Some(0), Some(1), Some(0.0))
    );
    assert!(report["stages"].as_array().unwrap().is_empty(), "{report}");
    let (status, conversion) = call(&suite, &reader, Method::GET, "/v1/leads/report", None).await;
    assert_eq!(status, 200, "{conversion}");
    let webinar = conversion["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["campaign"] == "webinar")
        .unwrap()
        .clone();
    assert_eq!(
        (webinar["leads"].as_i64(), webinar["converted"].as_i64()),
        (Some(3), Some(1)),
        "{webinar}"
    );
    assert!((webinar["conversion_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let (status, bad) = call(
        &suite,
        &reader,
        Method::GET,
        "/v1/leads/report?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid_period"))
    );

    // A call that came due is overdue, announced once as task.due, and done when completed;
    // a note stays with the opportunity.
    let due = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let (status, task) = call(&suite, &sales, Method::POST, "/v1/tasks",
        Some(&json!({"kind": "call", "subject": "Call back about pricing", "due_at": due, "opportunity_id": opp_id}))).await;
    assert_eq!(status, 201, "{task}");
    assert_eq!(
        (task["owner"].as_str(), task["overdue"].as_bool()),
        (Some("ana"), Some(true))
    );
    let (status, overdue) = call(
        &suite,
        &reader,
        Method::GET,
        "/v1/tasks?owner=ana&state=overdue",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(overdue["items"].as_array().unwrap().len(), 1, "{overdue}");
    let (status, both) = call(
        &suite,
        &sales,
        Method::POST,
        "/v1/tasks",
        Some(
            &json!({"kind": "todo", "subject": "x", "lead_id": lead_id, "opportunity_id": opp_id}),
        ),
    )
    .await;
    assert_eq!((status, both["code"].as_str()), (422, Some("invalid_task")));
    let task_path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
    let (status, done) = call(
        &suite,
        &sales,
        Method::PATCH,
        &task_path,
        Some(&json!({"completed": true})),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(
        done["completed_at"].is_string() && done["overdue"] == false,
        "{done}"
    );
    let (status, note) = call(
        &suite,
        &sales,
        Method::POST,
        &format!("{path}/notes"),
        Some(&json!({"body": "Price is the sticking point."})),
    )
    .await;
    assert_eq!(status, 201, "{note}");
    let (status, notes) = call(&suite, &reader, Method::GET, &format!("{path}/notes"), None).await;
    assert_eq!(
        (status, notes["items"][0]["body"].as_str()),
        (200, Some("Price is the sticking point."))
    );

    // The changes reached the customer's timeline.
    let (customer_id, _) = &leads[0];
    eventually("the pipeline's events on the timeline", || async {
        let r = suite
            .get(
                Some(&reader),
                &format!("/v1/customers/{customer_id}/timeline?limit=100"),
            )
            .await;
        let body: Value = r.json().await.unwrap();
        let kinds: Vec<String> = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["kind"].as_str().map(str::to_owned))
            .collect();
        [
            "lead.created",
            "lead.status_changed",
            "opportunity.created",
            "opportunity.lost",
        ]
        .iter()
        .all(|k| kinds.iter().any(|x| x == k))
        .then_some(())
    })
    .await;

    // Another tenant sees none of it.
    let other = suite.new_tenant("globex").await;
    let (status, _) = call(
        &suite,
        &other,
        Method::GET,
        &format!("/v1/leads/{lead_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&suite, &other, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let (status, list) = call(&suite, &other, Method::GET, "/v1/leads", None).await;
    assert_eq!(
        (status, list["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qualified_lead_score_opens_one_lead_and_replays_open_none() {
    let suite = Suite::start().await;
    let segments = test_consumer(&suite.topic("crm.segments.v1"));
    let (status, body) = suite
        .admin_call(
            Method::PUT,
            "/v1/segmentation/settings",
            Some(&json!({"lead_scoring": {
                "fit": [{"label": "director", "trait": "title", "op": "contains", "value": "director", "points": 15}],
                "half_life_days": 30, "qualified_at": 10}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let user = format!("dir-{}", unique_id());
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": user}, "traits": {"title": "Sales Director"}}))
        .await;
    let profile = suite.wait_for_customer(&user, |_| true).await;
    let id = profile["id"].as_str().unwrap().to_owned();

    let leads_of = |id: String| {
        let suite = &suite;
        async move {
            let (status, page) = call(
                suite,
                &suite.key,
                Method::GET,
                &format!("/v1/leads?customer_id={id}"),
                None,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            page["items"].as_array().unwrap().clone()
        }
    };
    let first = eventually("a lead from the qualification", || async {
        let items = leads_of(id.clone()).await;
        (items.len() == 1).then(|| items[0].clone())
    })
    .await;
    assert_eq!(
        (first["source"].as_str(), first["status"].as_str()),
        (Some("score"), Some("new"))
    );

    // The qualification itself, delivered again as it was and under a new id.
    let qualified: Value = eventually("lead.qualified on crm.segments.v1", || async {
        let m = tokio::time::timeout(std::time::Duration::from_millis(500), segments.recv())
            .await
            .ok()?
            .ok()?;
        let v: Value = serde_json::from_slice(rdkafka::Message::payload(&m)?).ok()?;
        (v["kind"] == "lead.qualified" && v["customer_id"] == id.as_str()).then_some(v)
    })
    .await;
    let config = part_config(&suite.id, "probe", &suite.redis).kafka;
    let producer =
        crm_kafka::Producer::connect(&config, crm_telemetry::Metrics::new("probe").unwrap())
            .await
            .unwrap();
    let topic = suite.topic("crm.segments.v1");
    let key = format!("acme:{id}");
    let mut again = qualified.clone();
    again["id"] = json!(unique_id());
    for message in [&qualified, &qualified, &again] {
        producer
            .send_raw(
                &topic,
                &key,
                &serde_json::to_vec(message).unwrap(),
                &std::collections::HashMap::new(),
            )
            .await
            .unwrap();
    }
    let campaign = suite.pool_of("campaign").await;
    eventually("the replay under a new id applied", || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT 1 FROM processed_messages WHERE consumer = 'campaign:crm.segments.v1' AND message_id = $1",
        )
        .bind(again["id"].as_str().unwrap())
        .fetch_optional(&campaign)
        .await
        .unwrap()
    })
    .await;
    let items = leads_of(id.clone()).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["id"], first["id"]);

    // Segmentation's predicted value (a scoring run's `value.predicted`) enters the priority,
    // explained with its input.
    let mut valued = qualified.clone();
    valued["id"] = json!(unique_id());
    valued["kind"] = json!("value.predicted");
    valued["properties"] = json!({"lifetime_value": 1234.5, "expected_purchases": 3.2,
                                  "probability_alive": 0.9, "run_id": 1});
    producer
        .send_raw(
            &topic,
            &key,
            &serde_json::to_vec(&valued).unwrap(),
            &std::collections::HashMap::new(),
        )
        .await
        .unwrap();
    let lead_id = first["id"].as_str().unwrap().to_owned();
    let part = eventually("the predicted value in the lead's priority", || async {
        let (status, detail) = call(
            &suite,
            &suite.key,
            Method::GET,
            &format!("/v1/leads/{lead_id}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{detail}");
        detail["priority_now"]["because"]
            .as_array()?
            .iter()
            .find(|c| c["factor"] == "predicted_value")
            .cloned()
    })
    .await;
    assert_eq!(part["input"], 1234.5, "{part}");
    assert!(
        (part["points"].as_f64().unwrap() - 12.345).abs() < 1e-9,
        "{part}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_won_opportunity_starts_its_journey_and_a_merge_keeps_one_open_lead() {
    let suite = Suite::start().await;
    let sales = suite.key_with("acme", &[Scope::Sales, Scope::Read]).await;
    let (status, body) = suite
        .admin_call(
            Method::POST,
            "/v1/pipelines",
            Some(&json!({"name": "Deals", "stages": [
                {"key": "open", "name": "Open", "probability": 30},
                {"key": "won", "name": "Won", "probability": 100, "won": true},
                {"key": "lost", "name": "Lost", "probability": 0, "lost": true}],
                "lost_reasons": ["price"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, journey) = suite
        .admin_call(
            Method::POST,
            "/v1/journeys",
            Some(&json!({"name": "Onboarding", "time_zone": "UTC",
                "trigger": {"event": {"name": "opportunity.won"}},
                "start": "lead",
                "nodes": {"lead": {"open_lead": {"campaign": "onboarding", "next": "wait"}},
                          "wait": {"wait": {"minutes": 1440, "next": "done"}}, "done": "exit"}})),
        )
        .await;
    assert_eq!(status, 201, "{journey}");
    let journey_id = journey["id"].as_str().unwrap();
    let (status, body) = suite
        .admin_call(
            Method::POST,
            &format!("/v1/journeys/{journey_id}/publish"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let run = unique_id();
    let user = format!("won-{run}");
    let known = customer(&suite, &user).await;
    let (status, opp) = call(&suite, &sales, Method::POST, "/v1/opportunities",
        Some(&json!({"customer_id": known, "name": "Fleet", "amount": 5000, "account": "Acme Logistics"}))).await;
    assert_eq!(status, 201, "{opp}");
    let path = format!("/v1/opportunities/{}", opp["id"].as_str().unwrap());
    let (status, won) = call(
        &suite,
        &sales,
        Method::PATCH,
        &path,
        Some(&json!({"stage": "won"})),
    )
    .await;
    assert_eq!(
        (status, won["status"].as_str()),
        (200, Some("won")),
        "{won}"
    );
    let campaign = suite.pool_of("campaign").await;
    let entered: Option<(String,)> =
        sqlx::query_as("SELECT status FROM journey_instances WHERE customer_id = $1")
            .bind(known)
            .fetch_optional(&campaign)
            .await
            .unwrap();
    assert_eq!(
        entered.map(|(s,)| s).as_deref(),
        Some("active"),
        "the won opportunity started the journey"
    );
    // Its first node opened a lead for the customer, attributed to the journey's campaign.
    let (status, leads) = call(
        &suite,
        &sales,
        Method::GET,
        &format!("/v1/leads?customer_id={known}&source=journey"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(leads["items"].as_array().unwrap().len(), 1, "{leads}");
    assert_eq!(leads["items"][0]["campaign"], "onboarding");

    // A visitor with an open lead from the same source signs in as the known customer: one
    // open lead stays (the survivor's), the other is closed as merged, and the opportunity
    // follows the survivor.
    let visitor = format!("v-{run}");
    suite
        .ingest(
            &json!({"kind": "track", "name": "Page Viewed", "identity": {"anonymous_id": visitor}}),
        )
        .await;
    let anonymous = eventually("the visitor", || {
        suite.customer_by("anonymous_id", &visitor)
    })
    .await;
    let anonymous: Uuid = anonymous["id"].as_str().unwrap().parse().unwrap();
    eventually("campaign's mirror of the visitor", || async {
        sqlx::query_scalar::<_, i32>("SELECT 1 FROM contacts WHERE customer_id = $1")
            .bind(anonymous)
            .fetch_optional(&campaign)
            .await
            .unwrap()
    })
    .await;
    for who in [known, anonymous] {
        let (status, lead) = call(
            &suite,
            &sales,
            Method::POST,
            "/v1/leads",
            Some(&json!({"customer_id": who, "source": "form", "owner": "ana"})),
        )
        .await;
        assert_eq!(status, 201, "{lead}");
    }
    suite
        .ingest(&json!({"kind": "track", "name": "Signed In", "identity": {"user_id": user, "anonymous_id": visitor}}))
        .await;
    let rows: Vec<(Uuid, String, Option<String>)> =
        eventually("the leads follow the merge", || async {
            let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
                "SELECT customer_id, status, disqualify_reason FROM leads WHERE source = 'form' ORDER BY created_at",
            )
            .fetch_all(&campaign)
            .await
            .unwrap();
            rows.iter().all(|r| r.0 == rows[0].0).then_some(rows)
        })
        .await;
    let open: Vec<_> = rows.iter().filter(|r| r.1 == "assigned").collect();
    let merged: Vec<_> = rows
        .iter()
        .filter(|r| r.2.as_deref() == Some("merged"))
        .collect();
    assert_eq!(
        (rows.len(), open.len(), merged.len()),
        (2, 1, 1),
        "{rows:?}"
    );
    let survivor = rows[0].0;
    let (owner,): (Uuid,) = sqlx::query_as("SELECT customer_id FROM opportunities")
        .fetch_one(&campaign)
        .await
        .unwrap();
    assert_eq!(owner, survivor);
}

/// The report as PostgreSQL aggregates the opportunities themselves (what the summary tables
/// must always agree with): open per stage and currency, won and lost per owner.
async fn live_report(campaign: &sqlx::PgPool, pipeline: &str) -> (Vec<Value>, Vec<Value>) {
    let stages: Vec<(String, String, i64, f64, f64)> = sqlx::query_as(
        "SELECT stage, currency, count(*), sum(amount)::float8, sum(amount * probability / 100.0)::float8
         FROM opportunities WHERE pipeline_id = $1::uuid AND status = 'open'
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(pipeline)
    .fetch_all(campaign)
    .await
    .unwrap();
    let results: Vec<(Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT owner, count(*) FILTER (WHERE status = 'won'), count(*) FILTER (WHERE status = 'lost')
         FROM opportunities WHERE pipeline_id = $1::uuid AND status <> 'open'
         GROUP BY 1 ORDER BY 1 NULLS LAST",
    )
    .bind(pipeline)
    .fetch_all(campaign)
    .await
    .unwrap();
    (
        stages
            .into_iter()
            .map(|(s, c, n, a, w)| json!([s, c, n, a, w]))
            .collect(),
        results
            .into_iter()
            .map(|(o, w, l)| json!([o, w, l]))
            .collect(),
    )
}

/// The report's figures in the shape of `live_report`.
fn report_figures(report: &Value) -> (Vec<Value>, Vec<Value>) {
    let mut stages: Vec<Value> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!([
                s["stage"],
                s["currency"],
                s["count"],
                s["amount"],
                s["weighted"]
            ])
        })
        .collect();
    stages.sort_by_key(|v| v.to_string());
    let results = report["results"].as_array().unwrap();
    let owners = results[..results.len() - 1]
        .iter()
        .map(|r| json!([r["owner"], r["won"], r["lost"]]))
        .collect();
    (stages, owners)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_report_agrees_with_its_opportunities_through_every_change() {
    let suite = Suite::start().await;
    let sales = suite.key_with("acme", &[Scope::Sales, Scope::Read]).await;
    let (status, pipeline) = suite
        .admin_call(
            Method::POST,
            "/v1/pipelines",
            Some(
                &json!({"name": format!("Report {}", unique_id()), "stages": [
                {"key": "qualify", "name": "Qualify", "probability": 10},
                {"key": "proposal", "name": "Proposal", "probability": 50},
                {"key": "won", "name": "Won", "probability": 100, "won": true},
                {"key": "lost", "name": "Lost", "probability": 0, "lost": true}],
                "lost_reasons": ["price"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{pipeline}");
    let pipeline_id = pipeline["id"].as_str().unwrap().to_owned();
    let buyer = customer(&suite, &format!("report-{}", unique_id())).await;

    // Twelve opportunities over two currencies, three owners (one nobody), four months.
    let owners = [Some("ana"), Some("bo"), None];
    let mut paths = Vec::new();
    for i in 0..12u32 {
        let (status, opp) = call(
            &suite,
            &sales,
            Method::POST,
            "/v1/opportunities",
            Some(&json!({"pipeline_id": pipeline_id, "customer_id": buyer,
                "name": format!("Deal {i}"), "amount": 1000.25 * f64::from(i + 1),
                "currency": if i % 3 == 0 { "USD" } else { "EUR" },
                "owner": owners[i as usize % 3],
                "expected_close": format!("2027-0{}-15", 1 + i % 4)})),
        )
        .await;
        assert_eq!(status, 201, "{opp}");
        paths.push(format!("/v1/opportunities/{}", opp["id"].as_str().unwrap()));
    }
    // Moves, an amount changed, three won, two lost, one moved back.
    let changes = [
        (0, json!({"stage": "proposal"})),
        (1, json!({"stage": "proposal", "amount": 77.5})),
        (2, json!({"stage": "won"})),
        (3, json!({"stage": "won"})),
        (4, json!({"stage": "lost", "lost_reason": "price"})),
        (5, json!({"stage": "proposal"})),
        (5, json!({"stage": "qualify"})),
        (6, json!({"stage": "won"})),
        (7, json!({"stage": "lost", "lost_reason": "price"})),
        (8, json!({"amount": 5.0, "expected_close": "2027-06-01"})),
    ];
    for (i, change) in changes {
        let (status, body) = call(&suite, &sales, Method::PATCH, &paths[i], Some(&change)).await;
        assert_eq!(status, 200, "{change}: {body}");
    }

    let campaign = suite.pool_of("campaign").await;
    let expected = live_report(&campaign, &pipeline_id).await;
    assert_eq!(
        expected.1.len(),
        3,
        "won and lost for each owner: {expected:?}"
    );
    let report_now = |period: String| {
        let (suite, sales, pipeline_id) = (&suite, &sales, &pipeline_id);
        async move {
            let (status, report) = call(
                suite,
                sales,
                Method::GET,
                &format!("/v1/pipelines/{pipeline_id}/report{period}"),
                None,
            )
            .await;
            assert_eq!(status, 200, "{report}");
            report
        }
    };
    // Today's closings read live (the default period ends now) and from whole days.
    let today = chrono::Utc::now().date_naive();
    let whole = format!(
        "?from={}T00:00:00Z&to={}T00:00:00Z",
        today.pred_opt().unwrap(),
        today.succ_opt().unwrap()
    );
    for round in ["before folding", "after folding"] {
        for period in [String::new(), whole.clone()] {
            let report = report_now(period.clone()).await;
            assert_eq!(
                report_figures(&report),
                expected,
                "{round} {period}: {report}"
            );
            let all = report["results"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .clone();
            assert_eq!(
                (all["won"].as_i64(), all["lost"].as_i64()),
                (Some(3), Some(2)),
                "{all}"
            );
        }
        // Fold every delta (the pass would, within seconds) and read again.
        while crm_campaign::store::sales_report::compact(&campaign, 3)
            .await
            .unwrap()
            > 0
        {}
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM opportunity_open_deltas WHERE pipeline_id = $1::uuid)
                  + (SELECT count(*) FROM opportunity_closed_deltas WHERE pipeline_id = $1::uuid)",
        )
        .bind(&pipeline_id)
        .fetch_one(&campaign)
        .await
        .unwrap();
        assert_eq!(left, 0);
    }
    // Forecast: the open amounts by month of expected close add up to the stages'.
    let report = report_now(String::new()).await;
    let by_month: f64 = report["forecast"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["amount"].as_f64().unwrap())
        .sum();
    let by_stage: f64 = expected.0.iter().map(|s| s[3].as_f64().unwrap()).sum();
    assert!((by_month - by_stage).abs() < 1e-6, "{report}");
    assert!(report["forecast"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["month"] == "2027-06-01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_form_opens_one_lead_with_its_campaign() {
    let suite = Suite::start().await;
    let (status, settings) = suite
        .admin_call(
            Method::PUT,
            "/v1/leads/settings",
            Some(&json!({"leads_from_events": [
                {"event": "Form Submitted", "source": "form"},
                {"event": "Survey Answered", "source": "survey", "campaign_property": "survey"}]})),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    let (status, refused) = suite
        .admin_call(
            Method::PUT,
            "/v1/leads/settings",
            Some(&json!({"leads_from_events": [{"event": "Scored", "source": "score"}]})),
        )
        .await;
    assert_eq!(
        (status, refused["path"].as_str()),
        (422, Some("/leads_from_events/0/source")),
        "{refused}"
    );
    let user = format!("form-{}", unique_id());
    let id = customer(&suite, &user).await;
    let campaign = suite.pool_of("campaign").await;
    let seen_before: i64 =
        sqlx::query_scalar("SELECT events_seen FROM contacts WHERE customer_id = $1")
            .bind(id)
            .fetch_one(&campaign)
            .await
            .unwrap();
    // Two forms and a survey answer; an event no rule names opens nothing.
    for (name, properties) in [
        ("Form Submitted", json!({"campaign": "spring-webinar"})),
        ("Form Submitted", json!({"campaign": "another"})),
        ("Survey Answered", json!({"survey": "nps-q4"})),
        ("Page Viewed", json!({"campaign": "spring-webinar"})),
    ] {
        suite
            .ingest(
                &json!({"kind": "track", "name": name, "identity": {"user_id": user},
                            "properties": properties}),
            )
            .await;
    }
    let items = eventually("leads from the form and the survey", || async {
        let (status, page) = call(
            &suite,
            &suite.key,
            Method::GET,
            &format!("/v1/leads?customer_id={id}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        (items.len() >= 2).then_some(items)
    })
    .await;
    // Let every event be applied, then count again.
    eventually("the four events applied", || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT events_seen FROM contacts WHERE customer_id = $1 AND events_seen >= $2",
        )
        .bind(id)
        .bind(seen_before + 4)
        .fetch_optional(&campaign)
        .await
        .unwrap()
    })
    .await;
    let (_, page) = call(
        &suite,
        &suite.key,
        Method::GET,
        &format!("/v1/leads?customer_id={id}"),
        None,
    )
    .await;
    let mut got: Vec<(String, String)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["source"].as_str().unwrap().to_owned(),
                l["campaign"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("form".to_owned(), "spring-webinar".to_owned()),
            ("survey".to_owned(), "nps-q4".to_owned())
        ],
        "{items:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_opens_each_lead_once_reports_bad_rows_and_answers_its_key_again() {
    let suite = Suite::start().await;
    let sales = suite.key_with("acme", &[Scope::Sales, Scope::Read]).await;
    let run = unique_id();
    let (ana, bo) = (format!("imp-a-{run}"), format!("imp-b-{run}"));
    let ana_id = customer(&suite, &ana).await;
    let bo_id = customer(&suite, &bo).await;
    let import = json!({"campaign": "trade-show", "leads": [
        {"customer": {"user_id": ana}},
        {"customer": {"id": bo_id}, "campaign": "referral", "owner": "carla"},
        {"customer": {"user_id": ana}},
        {"customer": {"email": format!("nobody-{run}@example.test")}},
        {"customer": {"user_id": bo}, "owner": " "}]});
    let post = |key: String| {
        let (suite, sales, import) = (&suite, &sales, &import);
        async move {
            let response = suite
                .http
                .post(format!("{}/v1/leads/imports", suite.gateway))
                .bearer_auth(sales)
                .header("Idempotency-Key", key)
                .json(import)
                .send()
                .await
                .unwrap();
            let response = suite
                .conforming("POST", "/v1/leads/imports", response)
                .await;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 202, "{body}");
            assert_eq!(location.as_deref(), body["url"].as_str(), "{body}");
            body
        }
    };
    let follow = |url: String| {
        let (suite, sales) = (&suite, &sales);
        async move {
            eventually("the import job ended", || async {
                let (status, job) = call(suite, sales, Method::GET, &url, None).await;
                assert_eq!(status, 200, "{job}");
                (job["status"] == "succeeded" || job["status"] == "failed").then_some(job)
            })
            .await
        }
    };
    let key = unique_id();
    let queued = post(key.clone()).await;
    assert!(
        queued["job_id"].as_str().unwrap().starts_with("campaign-"),
        "{queued}"
    );
    let job = follow(queued["url"].as_str().unwrap().to_owned()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let result = &job["result"];
    assert_eq!(
        (
            result["rows"].as_i64(),
            result["opened"].as_i64(),
            result["already_open"].as_i64(),
            result["rejected"].as_i64()
        ),
        (Some(5), Some(2), Some(1), Some(2)),
        "{job}"
    );
    let errors: Vec<(i64, &str)> = result["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_i64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [(3, "customer_not_found"), (4, "invalid_lead")],
        "{job}"
    );

    // The same key answers the same job; a new key runs again and opens nothing more.
    let again = post(key).await;
    assert_eq!(again["job_id"], queued["job_id"]);
    let second = post(unique_id()).await;
    assert_ne!(second["job_id"], queued["job_id"]);
    let job = follow(second["url"].as_str().unwrap().to_owned()).await;
    assert_eq!(
        (
            job["result"]["opened"].as_i64(),
            job["result"]["already_open"].as_i64()
        ),
        (Some(0), Some(3)),
        "{job}"
    );

    for (id, campaign, owner) in [
        (ana_id, "trade-show", None),
        (bo_id, "referral", Some("carla")),
    ] {
        let (status, page) = call(
            &suite,
            &sales,
            Method::GET,
            &format!("/v1/leads?customer_id={id}&source=import"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{page}");
        assert_eq!(items[0]["campaign"], campaign, "{page}");
        assert_eq!(items[0]["owner"].as_str(), owner, "{page}");
    }
    // Too many rows, or none, is refused whole with the field named.
    let (status, refused) = call(
        &suite,
        &sales,
        Method::POST,
        "/v1/leads/imports",
        Some(&json!({"leads": []})),
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str(), refused["path"].as_str()),
        (422, Some("invalid_lead"), Some("/leads")),
        "{refused}"
    );
}
