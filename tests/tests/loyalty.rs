//! Loyalty end to end: earning from events (orders, category multipliers, refunds, bonuses for
//! positive mentions), tiers, statements and liability; redemptions through the gateway with
//! Idempotency-Key (one key, one effect; never an overdraft); replays from the first offset;
//! expiry and reservation release; and a randomised sequence test of every ledger invariant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use chrono::Utc;
use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::{Handler, MessageMeta};
use crm_tests::{eventually, part_config, redis_url, test_consumer, unique_id, Suite};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

async fn call(
    suite: &Suite,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Vec<u8>) {
    let mut r = suite
        .http
        .request(method, format!("{}{path}", suite.gateway))
        .bearer_auth(&suite.key);
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

fn j(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

async fn loyalty_pool(suite: &Suite) -> PgPool {
    crm_service::db::connect(
        &part_config(&suite.id, "loyalty", &redis_url()).database_url,
        4,
    )
    .await
    .unwrap()
}

async fn set_programme(suite: &Suite, programme: Value) {
    let (status, body) = call(
        suite,
        reqwest::Method::PUT,
        "/v1/loyalty/programme",
        Some(&unique_id()),
        Some(&programme),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

async fn balance(suite: &Suite, customer: &str) -> i64 {
    let (status, body) = call(
        suite,
        reqwest::Method::GET,
        &format!("/v1/loyalty/customers/{customer}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    j(&body)["balance"].as_i64().unwrap()
}

async fn assert_verified(pool: &PgPool) {
    let violations = crm_loyalty::verify::verify(pool).await.unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
}

/// Messages read from `consumer` until `done` holds for them (60 s at most).
async fn collect(
    consumer: &StreamConsumer,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    while !done(&seen) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}: {seen:#?}"
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
    seen
}

fn track(user: &str, name: &str, properties: Value) -> Value {
    json!({"id": unique_id(), "kind": "track", "name": name, "identity": {"user_id": user}, "properties": properties})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_earn_once_with_multipliers_refunds_bonuses_and_tiers() {
    let suite = Suite::start().await;
    let loyalty_topic = test_consumer(&suite.topic("crm.loyalty.v1"));
    let (status, body) = call(
        &suite,
        reqwest::Method::PUT,
        "/v1/loyalty/programme",
        None,
        Some(&json!({})),
    )
    .await;
    assert_eq!(
        (status, j(&body)["code"].as_str()),
        (400, Some("idempotency_key_required"))
    );
    let (status, body) = call(
        &suite,
        reqwest::Method::PUT,
        "/v1/loyalty/programme",
        Some(&unique_id()),
        Some(&json!({"earn_rate": 1, "formula": "x"})),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    set_programme(&suite, json!({
        "earn_rate": 1, "category_multipliers": {"shoes": 2},
        "bonuses": {"sign_up": 50, "review": 20, "positive_mention": 30, "birthday": 10},
        "tiers": [{"name": "base", "threshold": 0}, {"name": "silver", "threshold": 150, "multiplier": 1.5}],
        "expiry_days": 365})).await;

    let user = format!("l-{}", unique_id());
    let order = json!({"order_id": "A-1", "revenue": 100, "products": [{"category": "shoes", "price": 50}, {"category": "bags", "price": 50}]});
    suite
        .ingest(&json!([
            track(&user, "Signed Up", json!({})),
            track(&user, "Order Completed", order.clone()),
            track(&user, "Order Completed", order), // the same order again, another event id
            track(
                &user,
                "Social Mention",
                json!({"sentiment": "positive", "network": "twitter"})
            ),
            track(&user, "Social Mention", json!({"sentiment": "negative"})),
            track(&user, "Review Posted", json!({"rating": 5})),
        ]))
        .await;
    let customer = suite.wait_for_customer(&user, |_| true).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // 50 sign-up + (50 × 2 + 50) order + 30 positive mention + 20 review; the repeat order and
    // the negative mention earn nothing.
    eventually("points earned", || async {
        (balance(&suite, &customer).await == 250).then_some(())
    })
    .await;
    let (_, body) = call(
        &suite,
        reqwest::Method::GET,
        &format!("/v1/loyalty/customers/{customer}"),
        None,
        None,
    )
    .await;
    assert_eq!(j(&body)["tier"]["name"], "silver", "{}", j(&body));

    // Half the order refunded: half its points back.
    suite
        .ingest(&json!([track(
            &user,
            "Order Refunded",
            json!({"order_id": "A-1", "revenue": 50})
        )]))
        .await;
    eventually("refund taken back", || async {
        (balance(&suite, &customer).await == 175).then_some(())
    })
    .await;

    let (_, body) = call(
        &suite,
        reqwest::Method::GET,
        &format!("/v1/loyalty/customers/{customer}/statement?limit=3"),
        None,
        None,
    )
    .await;
    let page = j(&body);
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_eq!(page["items"][0]["kind"], "refund");
    assert_eq!(page["items"][0]["points"], -75);
    assert!(page["items"][0]["source_event"].is_string());
    assert!(page["next"].is_i64());
    let (_, body) = call(
        &suite,
        reqwest::Method::GET,
        "/v1/loyalty/liability",
        None,
        None,
    )
    .await;
    let liability = j(&body);
    assert_eq!(liability["outstanding"], 175, "{liability}");
    assert_eq!(liability["reconciles"], true);

    // The rest of the order refunded: 100 qualifying points now, below silver's 150, but the
    // tier holds until its period ends; then the downgrade happens and is published.
    suite
        .ingest(&json!([track(
            &user,
            "Order Refunded",
            json!({"order_id": "A-1"})
        )]))
        .await;
    eventually("full refund", || async {
        (balance(&suite, &customer).await == 100).then_some(())
    })
    .await;
    let (_, body) = call(
        &suite,
        reqwest::Method::GET,
        &format!("/v1/loyalty/customers/{customer}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (
            j(&body)["tier"]["name"].as_str(),
            j(&body)["qualifying_points"].as_i64()
        ),
        (Some("silver"), Some(100)),
        "{}",
        j(&body)
    );
    let pool = loyalty_pool(&suite).await;
    sqlx::query("UPDATE tier_status SET period_end = now() WHERE customer_id = $1")
        .bind(Uuid::parse_str(&customer).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    eventually("downgrade at the period's end", || async {
        let (_, body) = call(
            &suite,
            reqwest::Method::GET,
            &format!("/v1/loyalty/customers/{customer}"),
            None,
            None,
        )
        .await;
        (j(&body)["tier"]["name"] == "base").then_some(())
    })
    .await;

    // A birthday bonus, once a year, on the first event of the birthday.
    let today = Utc::now().format("1990-%m-%d").to_string();
    let today = if today.ends_with("02-29") {
        "1992-02-29".to_owned()
    } else {
        today
    };
    suite.ingest(&json!([{"id": unique_id(), "kind": "identify", "identity": {"user_id": user}, "traits": {"birthday": today}}])).await;
    eventually("birthday known to loyalty", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM profiles WHERE birthday IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    suite
        .ingest(&json!([
            track(&user, "Product Viewed", json!({})),
            track(&user, "Product Viewed", json!({}))
        ]))
        .await;
    eventually("birthday bonus", || async {
        (balance(&suite, &customer).await == 110).then_some(())
    })
    .await;

    // Published: earnings, the reversals and the tier changes.
    collect(&loyalty_topic, "loyalty messages", |seen| {
        let count = |k: &str| seen.iter().filter(|m| m["kind"] == k).count();
        count("tier.changed") >= 2 && count("points.reversed") >= 2 && count("points.earned") >= 5
    })
    .await;
    assert_verified(&loyalty_pool(&suite).await).await;

    let spec: Value = suite.get(None, "/openapi.json").await.json().await.unwrap();
    for path in [
        "/v1/loyalty/programme",
        "/v1/loyalty/redemptions",
        "/v1/loyalty/customers/{id}/statement",
        "/v1/loyalty/liability",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }

    // Replaying crm.events.v1 from its first offset changes no balance: redelivered messages are
    // skipped by their ids, and even with the dedupe record cleared each source posts once.
    let before: Vec<(String, Uuid, i64)> =
        sqlx::query_as("SELECT kind, customer_id, balance FROM accounts ORDER BY 1, 2")
            .fetch_all(&pool)
            .await
            .unwrap();
    let events = test_consumer(&suite.topic("crm.events.v1"));
    let replayed: Vec<Envelope> =
        collect(&events, "every event read back", |seen| seen.len() >= 11)
            .await
            .into_iter()
            .map(|v| serde_json::from_value(v).unwrap())
            .collect();
    events.unsubscribe();
    let handler = crm_loyalty::LoyaltyHandler::new(pool.clone());
    let meta = MessageMeta {
        topic: Topic::Events,
        partition: 0,
        offset: 0,
        group: "replay".into(),
    };
    for round in 0..2 {
        if round == 1 {
            sqlx::query("DELETE FROM processed_messages WHERE consumer = 'loyalty:crm.events.v1'")
                .execute(&pool)
                .await
                .unwrap();
        }
        for e in &replayed {
            handler.handle(e, &meta).await.unwrap();
        }
        let after: Vec<(String, Uuid, i64)> =
            sqlx::query_as("SELECT kind, customer_id, balance FROM accounts ORDER BY 1, 2")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(before, after, "replay round {round} changed a balance");
    }
    assert_verified(&pool).await;
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redemptions_make_one_effect_per_key_and_never_overdraw() {
    let suite = Suite::start().await;
    set_programme(&suite, json!({"expiry_days": 30})).await;
    let customer = Uuid::now_v7().to_string();
    let (status, body) = call(
        &suite,
        reqwest::Method::POST,
        &format!("/v1/loyalty/customers/{customer}/adjustments"),
        Some("grant-1"),
        Some(&json!({"points": 100, "reason": "welcome"})),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let (status, body) = call(
        &suite,
        reqwest::Method::POST,
        "/v1/loyalty/rewards",
        Some(&unique_id()),
        Some(&json!({"name": "Tote bag", "cost": 30})),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let reward = j(&body)["id"].as_str().unwrap().to_owned();
    let redeem = json!({"customer_id": customer, "reward_id": reward});

    // 50 concurrent requests with one key: one reservation, the same answer for all.
    let key = unique_id();
    let answers = futures::future::join_all((0..50).map(|_| {
        call(
            &suite,
            reqwest::Method::POST,
            "/v1/loyalty/redemptions",
            Some(&key),
            Some(&redeem),
        )
    }))
    .await;
    let first = answers
        .iter()
        .find(|(s, _)| *s == 201)
        .expect("one reservation")
        .1
        .clone();
    for (status, body) in &answers {
        assert!(*status == 201 || *status == 409, "{status}");
        if *status == 201 {
            assert_eq!(body, &first, "a replay is the first answer byte for byte");
        } else {
            assert_eq!(j(body)["code"], "idempotency_key_in_progress");
        }
    }
    let pool = loyalty_pool(&suite).await;
    let (reserves,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM ledger_transactions WHERE kind = 'reserve' AND customer_id = $1",
    )
    .bind(Uuid::parse_str(&customer).unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reserves, 1);
    assert_eq!(balance(&suite, &customer).await, 70);
    // After they settle, a replay is byte for byte the first answer.
    let (status, again) = call(
        &suite,
        reqwest::Method::POST,
        "/v1/loyalty/redemptions",
        Some(&key),
        Some(&redeem),
    )
    .await;
    assert_eq!((status, &again), (201, &first));
    // The same key with other parameters is refused.
    let other = json!({"customer_id": customer, "reward_id": Uuid::now_v7()});
    let (status, body) = call(
        &suite,
        reqwest::Method::POST,
        "/v1/loyalty/redemptions",
        Some(&key),
        Some(&other),
    )
    .await;
    assert_eq!(
        (status, j(&body)["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );

    // 20 concurrent redemptions with different keys and 70 points: two succeed, never less than 0.
    let answers = futures::future::join_all((0..20).map(|_| async {
        call(
            &suite,
            reqwest::Method::POST,
            "/v1/loyalty/redemptions",
            Some(&unique_id()),
            Some(&redeem),
        )
        .await
    }))
    .await;
    let ok: Vec<Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| j(b))
        .collect();
    assert_eq!(ok.len(), 2, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(
            (*status, j(body)["code"].as_str()),
            (409, Some("insufficient_points"))
        );
    }
    assert_eq!(balance(&suite, &customer).await, 10);

    // Confirm one (coupon issued), cancel another (points back).
    let first_id = j(&first)["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &suite,
        reqwest::Method::POST,
        &format!("/v1/loyalty/redemptions/{first_id}/confirm"),
        Some(&unique_id()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let coupon = j(&body)["coupon_code"].as_str().unwrap().to_owned();
    assert!(coupon.starts_with("RW-"));
    let second = ok[0]["id"].as_str().unwrap();
    let (status, _) = call(
        &suite,
        reqwest::Method::POST,
        &format!("/v1/loyalty/redemptions/{second}/cancel"),
        Some(&unique_id()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(balance(&suite, &customer).await, 40);
    let (status, body) = call(
        &suite,
        reqwest::Method::POST,
        &format!("/v1/loyalty/redemptions/{second}/confirm"),
        Some(&unique_id()),
        None,
    )
    .await;
    assert_eq!(
        (status, j(&body)["code"].as_str()),
        (409, Some("invalid_state"))
    );

    // An unconfirmed reservation is released after the timeout (moved to now here).
    let third = ok[1]["id"].as_str().unwrap();
    sqlx::query("UPDATE redemptions SET expires_at = now() WHERE id = $1")
        .bind(Uuid::parse_str(third).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    eventually("reservation released", || async {
        (balance(&suite, &customer).await == 70).then_some(())
    })
    .await;
    let (_, body) = call(
        &suite,
        reqwest::Method::GET,
        &format!("/v1/loyalty/redemptions/{third}"),
        None,
        None,
    )
    .await;
    assert_eq!(j(&body)["status"], "released");

    // Points expire in lots, oldest first (the oldest lot's date is moved past its expiry).
    sqlx::query("UPDATE lots SET expires_at = now() - interval '1 second' WHERE id = (SELECT min(id) FROM lots WHERE customer_id = $1 AND remaining > 0)")
        .bind(Uuid::parse_str(&customer).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    eventually("oldest lot expired", || async {
        (balance(&suite, &customer).await < 70).then_some(())
    })
    .await;
    let (_, body) = call(
        &suite,
        reqwest::Method::GET,
        "/v1/loyalty/liability",
        None,
        None,
    )
    .await;
    assert!(j(&body)["expired"].as_i64().unwrap() > 0);
    assert_eq!(j(&body)["reconciles"], true);
    assert_verified(&pool).await;
    suite.stop().await;
}

/// Random sequences of earns, refunds, adjustments, reservations, confirmations,
/// cancellations and expiries, on the real tables: every invariant holds after each sequence,
/// and no customer balance ever goes below zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_ledger_sequences_keep_every_invariant() {
    let url = format!("{}/crm_test_{}_ledger", crm_tests::postgres(), unique_id());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 4).await.unwrap();
    crm_service::db::migrate(&pool, &crm_loyalty::MIGRATOR)
        .await
        .unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let programme: crm_loyalty::domain::programme::Programme = serde_json::from_value(json!({
        "category_multipliers": {"shoes": 2}, "caps": [{"period": "day", "max_points": 400}],
        "expiry_days": 10, "tiers": [{"name": "base", "threshold": 0}, {"name": "gold", "threshold": 300, "multiplier": 2}]})).unwrap();
    crm_loyalty::store::programmes::save(
        &mut pool.acquire().await.unwrap(),
        &crm_envelope::TenantId::parse("acme").unwrap(),
        &programme,
        "test",
    )
    .await
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let reward: Uuid = sqlx::query_scalar("INSERT INTO rewards (tenant_id, id, name, cost, stock) VALUES ('acme', $1, 'r', 40, 5) RETURNING id")
        .bind(Uuid::now_v7())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let customers: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    for seed in 0..12u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut orders: Vec<(Uuid, String)> = Vec::new();
        let mut reserved: Vec<Uuid> = Vec::new();
        for step in 0..40 {
            let c = customers[rng.random_range(0..customers.len())];
            let now = Utc::now();
            let mut tx = pool.begin().await.unwrap();
            match rng.random_range(0..7) {
                0 | 1 => {
                    let order_id = format!("o-{seed}-{step}");
                    let mut e = Envelope::domain(tenant.clone(), "track", c, "test");
                    e.name = Some("Order Completed".into());
                    e.properties = json!({"order_id": order_id, "revenue": rng.random_range(1..300),
                        "products": [{"category": if rng.random_bool(0.5) { "shoes" } else { "bags" }, "price": 10}]}).as_object().cloned().unwrap();
                    let (m, programme) =
                        crm_loyalty::earn::apply(&mut tx, &tenant, &[(&e, c)], now)
                            .await
                            .unwrap();
                    crm_kafka::outbox::enqueue_all(&mut tx, &m).await.unwrap();
                    programme.settle(&mut tx).await.unwrap();
                    orders.push((c, order_id));
                }
                2 if !orders.is_empty() => {
                    let (oc, order_id) = orders[rng.random_range(0..orders.len())].clone();
                    let mut e = Envelope::domain(tenant.clone(), "track", oc, "test");
                    e.name = Some("Order Refunded".into());
                    e.properties =
                        json!({"order_id": order_id, "revenue": rng.random_range(1..200)})
                            .as_object()
                            .cloned()
                            .unwrap();
                    let (_, programme) =
                        crm_loyalty::earn::apply(&mut tx, &tenant, &[(&e, oc)], now)
                            .await
                            .unwrap();
                    programme.settle(&mut tx).await.unwrap();
                }
                3 => {
                    let points = rng.random_range(-80..120i64);
                    if points != 0 {
                        match crm_loyalty::store::rewards::adjust(
                            &mut tx,
                            &tenant,
                            &programme,
                            c,
                            crm_loyalty::domain::ledger::Points::adjustment(points).unwrap(),
                            "random",
                            &unique_id(),
                            now,
                        )
                        .await
                        {
                            Ok(_)
                            | Err(crm_loyalty::store::rewards::OpError::Insufficient { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                4 => match crm_loyalty::store::rewards::reserve(
                    &mut tx,
                    &tenant,
                    &programme,
                    c,
                    reward,
                    &unique_id(),
                    now,
                )
                .await
                {
                    Ok(r) => reserved.push(r.id),
                    Err(
                        crm_loyalty::store::rewards::OpError::Insufficient { .. }
                        | crm_loyalty::store::rewards::OpError::Unavailable(_),
                    ) => {}
                    Err(e) => panic!("{e}"),
                },
                5 if !reserved.is_empty() => {
                    let id = reserved.swap_remove(rng.random_range(0..reserved.len()));
                    if rng.random_bool(0.5) {
                        crm_loyalty::store::rewards::confirm(&mut tx, &tenant, &programme, id, now)
                            .await
                            .unwrap();
                    } else {
                        crm_loyalty::store::rewards::cancel(
                            &mut tx,
                            &tenant,
                            &programme,
                            id,
                            "cancelled",
                            now,
                        )
                        .await
                        .unwrap();
                    }
                }
                _ => {
                    sqlx::query("UPDATE lots SET expires_at = now() - interval '1 second' WHERE id = (SELECT min(id) FROM lots WHERE customer_id = $1 AND remaining > 0)")
                        .bind(c)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    crm_loyalty::store::rewards::expire_customer(
                        &mut tx, &tenant, &programme, c, now,
                    )
                    .await
                    .unwrap();
                }
            }
            tx.commit().await.unwrap();
        }
        let violations = crm_loyalty::verify::verify(&pool).await.unwrap();
        assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
    }
    // The check can fail: a balance changed behind the ledger's back is reported.
    sqlx::query(
        "UPDATE accounts SET balance = balance + 1 WHERE kind = 'customer' AND customer_id = $1",
    )
    .bind(customers[0])
    .execute(&pool)
    .await
    .unwrap();
    let violations = crm_loyalty::verify::verify(&pool).await.unwrap();
    assert!(
        violations.iter().any(|v| v.invariant == "balance_mismatch"),
        "{violations:#?}"
    );
    pool.close().await;
}

/// A merge moves the merged customer's points to the survivor in a balanced transaction; an
/// erasure clears reasons but keeps the balanced entries; rewards outside their validity are
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merges_move_points_erasure_keeps_the_books_and_validity_is_enforced() {
    let suite = Suite::start().await;
    set_programme(&suite, json!({"expiry_days": 30})).await;
    let user = format!("m-{}", unique_id());
    let email = format!("{}@example.com", unique_id());
    suite
        .ingest(&json!([track(
            &user,
            "Order Completed",
            json!({"order_id": unique_id(), "revenue": 40})
        )]))
        .await;
    let survivor = suite.wait_for_customer(&user, |_| true).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    suite.ingest(&json!([{"id": unique_id(), "kind": "track", "name": "Order Completed", "identity": {"email": email, "anonymous_id": unique_id()},
        "properties": {"order_id": unique_id(), "revenue": 25}}])).await;
    let merged = eventually("second customer", || async {
        suite
            .customer_by("email", &email)
            .await
            .and_then(|c| c["id"].as_str().map(str::to_owned))
            .filter(|id| *id != survivor)
    })
    .await;
    eventually("second customer's points", || async {
        (balance(&suite, &merged).await == 25).then_some(())
    })
    .await;
    eventually("first customer's points", || async {
        (balance(&suite, &survivor).await == 40).then_some(())
    })
    .await;
    suite.ingest(&json!([{"id": unique_id(), "kind": "identify", "identity": {"user_id": user, "email": email}}])).await;
    eventually("points moved to the survivor", || async {
        (balance(&suite, &survivor).await == 65).then_some(())
    })
    .await;
    assert_eq!(balance(&suite, &merged).await, 0);
    let pool = loyalty_pool(&suite).await;
    assert_verified(&pool).await;

    let r = suite
        .post(&suite.key, &format!("/v1/customers/{survivor}/erase"), None)
        .await;
    assert!(r.status().is_success());
    eventually("reasons cleared", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_transactions WHERE customer_id = $1 AND reason <> 'erased'")
            .bind(Uuid::parse_str(&survivor).unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
        (n == 0).then_some(())
    })
    .await;
    assert_verified(&pool).await;

    let later = (Utc::now() + chrono::Duration::days(7)).to_rfc3339();
    let (status, body) = call(
        &suite,
        reqwest::Method::POST,
        "/v1/loyalty/rewards",
        Some(&unique_id()),
        Some(&json!({"name": "Soon", "cost": 5, "valid_from": later})),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let reward = j(&body)["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &suite,
        reqwest::Method::POST,
        "/v1/loyalty/redemptions",
        Some(&unique_id()),
        Some(&json!({"customer_id": merged, "reward_id": reward})),
    )
    .await;
    assert_eq!(
        (status, j(&body)["code"].as_str()),
        (409, Some("reward_unavailable")),
        "{}",
        j(&body)
    );
    suite.stop().await;
}

/// A write whose answer never reached the client (the gateway timed out while loyalty was
/// still applying it) keeps its key: a retry with other parameters is refused, and the retry
/// with the same ones, once loyalty has applied the first, gets loyalty's stored answer with
/// no second effect. A key held by a live request makes others wait; a key whose holder died
/// is taken over once its lease has run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_whose_answer_never_came_applies_once_when_retried() {
    let suite = Suite::start().await;
    set_programme(&suite, json!({"expiry_days": 30})).await;
    let customer = Uuid::now_v7();
    // A second gateway replica, on the same database, that gives each part only 300 ms.
    let impatient = crm_gateway::build(crm_gateway::Config {
        common: part_config(&suite.id, "gateway", &suite.redis),
        identity_url: suite.identity.clone(),
        segmentation_url: suite.segmentation.clone(),
        loyalty_url: suite.loyalty.clone(),
        campaign_url: suite.campaign.clone(),
        upstream_timeout: Duration::from_millis(300),
        webhooks: crm_tests::test_webhook_settings(),
        survey_answers_per_minute: 20,
    })
    .await
    .unwrap();
    let impatient_url = format!("http://127.0.0.1:{}", impatient.port());
    let stop = tokio_util::sync::CancellationToken::new();
    let replica = tokio::spawn(impatient.run(stop.clone()));
    let post = |base: String, key: &'static str, points: i64| {
        let http = suite.http.clone();
        let api_key = suite.key.clone();
        async move {
            let r = http
                .post(format!(
                    "{base}/v1/loyalty/customers/{customer}/adjustments"
                ))
                .bearer_auth(api_key)
                .header("Idempotency-Key", key)
                .json(&json!({"points": points, "reason": "goodwill"}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), j(&r.bytes().await.unwrap()))
        }
    };

    // Loyalty is held up on this key (a test session holds its transaction lock), so the
    // impatient replica times out with the effect still to come.
    let pool = loyalty_pool(&suite).await;
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1 || E'\\n' || $2, 7))")
        .bind(&suite.tenant)
        .bind("slow-1")
        .execute(&mut *holder)
        .await
        .unwrap();
    let (status, body) = post(impatient_url.clone(), "slow-1", 40).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (504, Some("upstream_timeout")),
        "{body}"
    );
    let kept: Option<Option<i16>> = sqlx::query_scalar(
        "SELECT status FROM idempotency_keys WHERE tenant_id = $1 AND key = 'slow-1'",
    )
    .bind(&suite.tenant)
    .fetch_optional(&suite.gateway_pool)
    .await
    .unwrap();
    assert_eq!(kept, Some(None), "the key is kept, unanswered");
    let (status, body) = post(suite.gateway.clone(), "slow-1", 41).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );

    // Loyalty goes on. Whether the first forward was applied depends on where the timeout
    // cut it; the write the client asked for must end up applied exactly once either way. As
    // the first forward would have, it reaches loyalty with the same key.
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1 || E'\\n' || $2, 7))")
        .bind(&suite.tenant)
        .bind("slow-1")
        .execute(&mut *holder)
        .await
        .unwrap();
    drop(holder);
    let direct = suite
        .http
        .post(format!(
            "{}/internal/v1/tenants/{}/loyalty/customers/{customer}/adjustments",
            suite.loyalty, suite.tenant
        ))
        .header(crm_service::SERVICE_TOKEN_HEADER, crm_tests::SERVICE_TOKEN)
        .header("Idempotency-Key", "slow-1")
        .header("content-type", "application/json")
        .body(r#"{ "reason": "goodwill", "points": 40 }"#)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status().as_u16(), 201);
    let applied = j(&direct.bytes().await.unwrap());
    assert_eq!(balance(&suite, &customer.to_string()).await, 40);
    let (status, retried) = post(suite.gateway.clone(), "slow-1", 40).await;
    assert_eq!(status, 201, "{retried}");
    assert_eq!(
        retried, applied,
        "loyalty's stored answer, not a second effect"
    );
    assert_eq!(balance(&suite, &customer.to_string()).await, 40);
    let (adjustments,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM ledger_transactions WHERE kind = 'adjust' AND customer_id = $1",
    )
    .bind(customer)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(adjustments, 1);

    // A key held under a live lease: a second request waits, then is told to retry.
    let (status, _) = post(suite.gateway.clone(), "held-1", 5).await;
    assert_eq!(status, 201);
    sqlx::query("UPDATE idempotency_keys SET status = NULL, body = NULL, lease_until = now() + interval '1 hour' WHERE tenant_id = $1 AND key = 'held-1'")
        .bind(&suite.tenant)
        .execute(&suite.gateway_pool)
        .await
        .unwrap();
    let (status, body) = post(suite.gateway.clone(), "held-1", 5).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("idempotency_key_in_progress"))
    );
    // Its holder died: once the lease has run out, the retry takes the key over and loyalty
    // answers from its own record.
    sqlx::query("UPDATE idempotency_keys SET lease_until = now() - interval '1 second' WHERE tenant_id = $1 AND key = 'held-1'")
        .bind(&suite.tenant)
        .execute(&suite.gateway_pool)
        .await
        .unwrap();
    let (status, body) = post(suite.gateway.clone(), "held-1", 5).await;
    assert_eq!((status, &body["balance"]), (201, &json!(45)), "{body}");
    assert_eq!(balance(&suite, &customer.to_string()).await, 45);
    let attempts: i32 = sqlx::query_scalar(
        "SELECT attempts FROM idempotency_keys WHERE tenant_id = $1 AND key = 'held-1'",
    )
    .bind(&suite.tenant)
    .fetch_one(&suite.gateway_pool)
    .await
    .unwrap();
    assert_eq!(attempts, 2);

    stop.cancel();
    replica.await.unwrap().unwrap();
    assert_verified(&pool).await;
    suite.stop().await;
}
