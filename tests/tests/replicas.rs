//! Two replicas of every part at once, on the same databases and consumer groups: events go in
//! through both gateways (a tenth of them sent twice, once through each), both replicas of each
//! consuming part take a share of the partitions, every effect happens once (one timeline entry
//! per event, one contact per customer, the points of one order per customer, one membership
//! per customer, the ledger verified), and the schedulers run each tick on one replica only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use crm_tests::{eventually_within, unique_id, Suite};
use serde_json::{json, Value};

const CUSTOMERS: usize = 200;

/// The sum of a metric family's samples on the part at `base`.
async fn sum_of(suite: &Suite, base: &str, family: &str) -> f64 {
    let text = suite.metrics_of(base).await;
    text.lines()
        .filter(|l| l.starts_with(family))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn consumed(suite: &Suite, base: &str) -> f64 {
    sum_of(suite, base, "crm_kafka_messages_consumed_total").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_of_every_part_apply_everything_once() {
    let started = Instant::now();
    let suite = Suite::start().await;
    let replicas = suite.start_replicas().await;
    let put = suite
        .http
        .put(format!("{}/v1/loyalty/programme", suite.gateway))
        .bearer_auth(&suite.key)
        .header("Idempotency-Key", unique_id())
        .json(&json!({"earn_rate": 1, "expiry_days": 365}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let segment = suite
        .post(
            &suite.key,
            "/v1/segments",
            Some(&json!({"name": "buyers", "rule": {"event": {"name": "Order Completed", "at_least": 1, "within_days": 30}}})),
        )
        .await;
    assert_eq!(segment.status().as_u16(), 201);
    let segment: Value = segment.json().await.unwrap();
    let segment_id = segment["segment"]["id"].as_str().unwrap().to_owned();
    // The segment is live (its first computation is over) before the traffic starts: one
    // customer's order must reach it. The traffic then tests the replicas, not the creation.
    let probe = vec![
        json!({"id": "rep-id-probe", "kind": "identify", "identity": {"user_id": "rep-probe", "email": "rep-probe@example.com"}}),
        json!({"id": "rep-order-probe", "kind": "track", "name": "Order Completed", "identity": {"user_id": "rep-probe"},
               "properties": {"order_id": "o-probe", "revenue": 20}}),
    ];
    assert_eq!(
        suite
            .post_events(&suite.key, &json!(probe))
            .await
            .status()
            .as_u16(),
        202
    );
    let segmentation_pool = suite.pool_of("segmentation").await;
    eventually_within("the segment is live", Duration::from_secs(120), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM memberships WHERE tenant_id = 'acme' AND segment_id = $1::uuid",
        )
        .bind(&segment_id)
        .fetch_one(&segmentation_pool)
        .await
        .unwrap();
        (n == 1).then_some(())
    })
    .await;

    // Both replicas of each consuming part are in their group and hold a share of its
    // partitions before the traffic: a group rebalances a few seconds after a member joins,
    // and traffic sent before that would all go to the first replica.
    for (part, first, second) in [
        ("identity", &suite.identity, &replicas.identity),
        ("segmentation", &suite.segmentation, &replicas.segmentation),
        ("loyalty", &suite.loyalty, &replicas.loyalty),
        ("campaign", &suite.campaign, &replicas.campaign),
    ] {
        eventually_within(
            &format!("both {part} replicas hold partitions"),
            Duration::from_secs(120),
            || async {
                let a = sum_of(&suite, first, "crm_kafka_assigned_partitions").await;
                let b = sum_of(&suite, second, "crm_kafka_assigned_partitions").await;
                (a > 0.0 && b > 0.0).then_some(())
            },
        )
        .await;
    }

    // Every customer: an identify with an email and one order of 20. Batches alternate between
    // the two gateways; every tenth batch is sent again through the other one.
    let gateways = [suite.gateway.clone(), replicas.gateway.clone()];
    let mut events = 0usize;
    for (n, chunk) in (0..CUSTOMERS).collect::<Vec<_>>().chunks(10).enumerate() {
        let batch: Vec<Value> = chunk
            .iter()
            .flat_map(|i| {
                let user = format!("rep-{i}");
                [
                    json!({"id": format!("rep-id-{i}"), "kind": "identify", "identity": {"user_id": user, "email": format!("rep{i}@example.com")}}),
                    json!({"id": format!("rep-order-{i}"), "kind": "track", "name": "Order Completed", "identity": {"user_id": user},
                           "properties": {"order_id": format!("o-{i}"), "revenue": 20}}),
                ]
            })
            .collect();
        events += batch.len();
        let sends = if n % 10 == 0 { 2 } else { 1 };
        for s in 0..sends {
            let r = suite
                .http
                .post(format!("{}/v1/events", gateways[(n + s) % 2]))
                .bearer_auth(&suite.key)
                .json(&batch)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 202);
        }
    }
    assert_eq!(events, 2 * CUSTOMERS);
    // With the probe customer.
    let (customers_in_all, events) = (CUSTOMERS + 1, events + 2);

    let loyalty_pool = suite.pool_of("loyalty").await;
    eventually_within("every customer's points", Duration::from_secs(180), || async {
        let (n, wrong): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE balance <> 20) FROM accounts WHERE tenant_id = 'acme' AND kind = 'customer'",
        )
        .fetch_one(&loyalty_pool)
        .await
        .unwrap();
        assert_eq!(wrong, 0, "a balance other than one order's 20 points");
        (n as usize == customers_in_all).then_some(())
    })
    .await;
    let identity_pool = suite.identity_pool().await;
    eventually_within(
        "every event on a timeline",
        Duration::from_secs(120),
        || async {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM timeline WHERE tenant_id = 'acme'")
                    .fetch_one(&identity_pool)
                    .await
                    .unwrap();
            assert!(
                n as usize <= events,
                "{n} timeline entries for {events} events"
            );
            (n as usize == events).then_some(())
        },
    )
    .await;
    let segmentation_pool = suite.pool_of("segmentation").await;
    eventually_within(
        "every buyer in the segment",
        Duration::from_secs(120),
        || async {
            let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM memberships WHERE tenant_id = 'acme' AND segment_id = $1::uuid",
        )
        .bind(&segment_id)
        .fetch_one(&segmentation_pool)
        .await
        .unwrap();
            (n as usize == customers_in_all).then_some(())
        },
    )
    .await;
    let campaign_pool = suite.pool_of("campaign").await;
    eventually_within(
        "every customer a contact",
        Duration::from_secs(120),
        || async {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM contacts WHERE tenant_id = 'acme'")
                    .fetch_one(&campaign_pool)
                    .await
                    .unwrap();
            (n as usize == customers_in_all).then_some(())
        },
    )
    .await;

    // Once each.
    let customers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM customers WHERE tenant_id = 'acme' AND status = 'active'",
    )
    .fetch_one(&identity_pool)
    .await
    .unwrap();
    assert_eq!(customers as usize, customers_in_all);
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT event_id FROM timeline GROUP BY event_id HAVING count(*) > 1) d",
    )
    .fetch_one(&identity_pool)
    .await
    .unwrap();
    assert_eq!(twice, 0);
    let earns: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ledger_transactions WHERE tenant_id = 'acme' AND kind = 'earn'",
    )
    .fetch_one(&loyalty_pool)
    .await
    .unwrap();
    assert_eq!(earns as usize, customers_in_all);
    let violations = crm_loyalty::verify::verify(&loyalty_pool).await.unwrap();
    assert!(violations.is_empty(), "{violations:#?}");

    // Both replicas of each consuming part took a share.
    for (part, first, second) in [
        ("identity", &suite.identity, &replicas.identity),
        ("segmentation", &suite.segmentation, &replicas.segmentation),
        ("loyalty", &suite.loyalty, &replicas.loyalty),
        ("campaign", &suite.campaign, &replicas.campaign),
    ] {
        let (a, b) = (
            consumed(&suite, first).await,
            consumed(&suite, second).await,
        );
        assert!(
            a > 0.0 && b > 0.0,
            "{part}: replicas consumed {a} and {b} messages"
        );
    }

    // The 200 ms schedulers ran about once a tick, not once a tick per replica.
    let elapsed = started.elapsed().as_secs_f64();
    for (pool, name) in [
        (&loyalty_pool, "loyalty.passes"),
        (&segmentation_pool, "segmentation.recheck"),
    ] {
        let runs = crm_service::schedule::runs(pool, name).await.unwrap() as f64;
        let ticks = elapsed / 0.2;
        assert!(runs >= 3.0, "{name}: {runs} runs");
        assert!(
            runs <= ticks * 1.1 + 2.0,
            "{name}: {runs} runs in {elapsed:.1} s of 200 ms ticks: more than one replica per tick"
        );
    }
    replicas.stop().await;
    suite.stop().await;
}
