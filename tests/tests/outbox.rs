//! The packed outbox against real PostgreSQL and a real broker: rows written by the release
//! before packing (migrations 1–2), by that release still running beside the new one during a
//! rolling deploy, and packed rows are all published, in one id order, each message once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;
use std::time::Duration;

use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::outbox::{enqueue_all, Outgoing, Relay};
use crm_kafka::{KafkaConfig, Producer};
use crm_tests::{brokers, postgres, test_consumer, unique_id};
use rdkafka::Message;
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::PgPool;
use uuid::Uuid;

/// A row as the release before packing wrote it.
async fn insert_single(pool: &PgPool, key: &str, payload: &Value) {
    sqlx::query(
        "INSERT INTO outbox (topic, message_key, payload, headers)
         VALUES ('crm.events.v1', $1, $2, '{\"traceparent\": \"00-old-release-01\"}')",
    )
    .bind(key)
    .bind(sqlx::types::Json(payload))
    .execute(pool)
    .await
    .unwrap();
}

fn event(tenant: &TenantId, customer: Uuid, n: u32) -> Envelope {
    let mut e = Envelope::domain(tenant.clone(), "track", customer, "test");
    e.name = Some(format!("step {n}"));
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_the_release_before_packing_and_packed_rows_are_published_in_one_order() {
    crm_telemetry::init_for_tests();
    let id = unique_id();
    let url = format!("{}/crm_test_{id}_outbox", postgres());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 2).await.unwrap();
    // The release before packing: crm-kafka's migrations 1 and 2 only.
    let before = Migrator {
        migrations: Cow::Owned(crm_kafka::MIGRATOR.migrations[..2].to_vec()),
        ..Migrator::DEFAULT
    };
    assert!(before.migrations.iter().all(|m| m.version < 3));
    before.run(&pool).await.unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let customer = Uuid::new_v4();
    let key = event(&tenant, customer, 0).partition_key();
    let old = |n: u32| serde_json::to_value(event(&tenant, customer, n)).unwrap();
    insert_single(&pool, &key, &old(1)).await;

    // The upgrade: migration 3 keeps the unsent row as it is.
    crm_service::db::migrate(&pool, &crm_kafka::MIGRATOR)
        .await
        .unwrap();
    let packed: Vec<Outgoing> = (2..=4)
        .map(|n| Outgoing::new(Topic::Events, &event(&tenant, customer, n)).unwrap())
        .collect();
    let mut tx = pool.begin().await.unwrap();
    enqueue_all(&mut tx, &packed).await.unwrap();
    tx.commit().await.unwrap();
    // A replica of the old release, still running, writes one more.
    insert_single(&pool, &key, &old(5)).await;
    let last = [Outgoing::new(Topic::Events, &event(&tenant, customer, 6)).unwrap()];
    let mut tx = pool.begin().await.unwrap();
    enqueue_all(&mut tx, &last).await.unwrap();
    tx.commit().await.unwrap();

    // Four rows: single, packed (3), single, packed (1); the view shows six messages in order.
    let forms: Vec<(Option<i32>, bool)> =
        sqlx::query_as("SELECT message_count, topic IS NOT NULL FROM outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        forms,
        vec![
            (None, true),
            (Some(3), false),
            (None, true),
            (Some(1), false)
        ]
    );
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT payload->>'name' FROM outbox_messages WHERE sent_at IS NULL ORDER BY id, position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<String> = (1..=6).map(|n| format!("step {n}")).collect();
    assert_eq!(names, expected);

    let config = KafkaConfig::local(&brokers(), &format!("t{id}."));
    crm_kafka::ensure_topics(&config).await.unwrap();
    let metrics = crm_telemetry::Metrics::new("outbox-test").unwrap();
    let producer = Producer::connect(&config, metrics.clone()).await.unwrap();
    let relay = Relay::new(
        pool.clone(),
        producer,
        metrics.clone(),
        Duration::from_secs(60),
    );
    let pass = relay.publish_batch().await.unwrap();
    assert_eq!((pass.published, pass.backlog), (6, 0));
    assert_eq!(metrics.outbox_backlog.get(), 0);
    assert_eq!(relay.publish_batch().await.unwrap().published, 0);
    assert_eq!(crm_tests::unsent_messages(&pool).await, 0);

    // On the topic: the six, in order (one key, so one partition), each with its key and the
    // trace header of the release that wrote it.
    let consumer = test_consumer(&format!("t{id}.crm.events.v1"));
    let mut got = Vec::new();
    while got.len() < 6 {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("the relay's messages arrive")
            .unwrap();
        let payload: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let traced_by_old = m.headers().is_some_and(|headers| {
            rdkafka::message::Headers::iter(headers)
                .any(|h| h.key == "traceparent" && h.value == Some(&b"00-old-release-01"[..]))
        });
        assert_eq!(m.key(), Some(key.as_bytes()));
        got.push((payload["name"].as_str().unwrap().to_owned(), traced_by_old));
    }
    let olds: Vec<bool> = got.iter().map(|(_, old)| *old).collect();
    assert_eq!(olds, vec![true, false, false, false, true, false]);
    let names: Vec<String> = got.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, expected);
}
