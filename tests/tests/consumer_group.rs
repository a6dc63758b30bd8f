//! The consumer in a group with others and after failures: a rebalance while a batch is in
//! hand, and dead letters put back with `dlq replay`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::dlq::{self, ReplayOptions, ReplayOutcome};
use crm_kafka::{BatchItem, HandleError, Handler, MessageMeta};
use crm_service::Base;
use crm_tests::{
    eventually, part_config, redis_url, spawn_identity_consumer, spawn_identity_consumer_with,
    unique_id, Counted,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

async fn produce_identifies(base: &Base, range: std::ops::Range<usize>, prefix: &str) {
    let tenant = TenantId::parse("acme").unwrap();
    for i in range {
        let mut event = Envelope::domain(tenant.clone(), "identify", uuid::Uuid::nil(), "test");
        event.id = format!("{prefix}-{i}");
        event.customer_id = None;
        event.identity.user_id = Some(format!("{prefix}-user-{i}"));
        base.producer
            .send_envelope(Topic::Ingest, &event)
            .await
            .unwrap();
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Every event applied once: `n` customers of one event each, `n` resolved events enqueued.
async fn assert_applied_once(pool: &PgPool, n: i64) {
    let customers = count(pool, "SELECT count(*) FROM customers").await;
    let once = count(pool, "SELECT count(*) FROM customers WHERE event_count = 1").await;
    let resolved = count(
        pool,
        "SELECT count(*) FROM outbox_messages WHERE topic = 'crm.events.v1'",
    )
    .await;
    assert_eq!((customers, once, resolved), (n, n, n));
}

#[tokio::test]
async fn a_second_consumer_joining_mid_batch_leaves_both_consuming_with_nothing_lost_or_doubled() {
    crm_telemetry::init_for_tests();
    let id = unique_id();
    let config = part_config(&id, "identity", &redis_url());
    let base = Base::connect("identity", config.clone(), &crm_identity::MIGRATOR)
        .await
        .unwrap();
    // The first consumer collects a batch of up to 40 for as long as 12 s: it holds the first
    // wave (keyed over both partitions) while the second consumer joins (about 3 s on tansu),
    // so the rebalance revokes a partition whose messages it has in hand.
    let holding = crm_kafka::KafkaConfig {
        max_batch: 40,
        batch_linger: Duration::from_secs(12),
        ..config.kafka.clone()
    };
    produce_identifies(&base, 0..20, "wave0").await;
    let counter = || Arc::new(AtomicUsize::new(0));
    let (first_count, second_count) = (counter(), counter());
    let handler = |delivered: &Arc<AtomicUsize>| Counted {
        inner: crm_identity::IngestHandler::new(&base),
        delivered: Arc::clone(delivered),
    };
    let stop = CancellationToken::new();
    let first = spawn_identity_consumer_with(&base, holding, handler(&first_count), stop.clone());
    let lag = || async { count(&base.pool, "SELECT count(*) FROM processed_messages").await };
    // Give the first consumer its assignment and the first wave (nothing is applied yet: its
    // batch is still collecting).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lag().await, 0, "the first batch is still in hand");
    let second = spawn_identity_consumer(&base, handler(&second_count), stop.clone());
    // The second consumer owns a partition once it applies messages of its own.
    eventually("the second consumer consuming", || async {
        (second_count.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    // More messages fill the first consumer's batch; it applies it and finds one partition
    // gone: those offsets are skipped (the second consumer took the messages over), and it
    // goes on consuming.
    produce_identifies(&base, 0..200, "wave1").await;
    let skipped = || {
        base.metrics
            .offsets_skipped
            .with_label_values(&["crm.ingest.v1"])
            .get()
    };
    eventually("an offset of the revoked partition skipped", || async {
        (skipped() > 0).then_some(())
    })
    .await;
    eventually("both waves applied", || async {
        (lag().await == 220).then_some(())
    })
    .await;
    let (first_before, second_before) = (
        first_count.load(Ordering::SeqCst),
        second_count.load(Ordering::SeqCst),
    );
    produce_identifies(&base, 0..100, "wave2").await;
    eventually("the third wave applied", || async {
        (lag().await == 320).then_some(())
    })
    .await;
    assert!(
        !first.is_finished() && !second.is_finished(),
        "both consumers are still running"
    );
    assert!(
        first_count.load(Ordering::SeqCst) > first_before,
        "the first consumer kept consuming after the rebalance"
    );
    assert!(
        second_count.load(Ordering::SeqCst) > second_before,
        "the second consumer consumes its share"
    );
    eprintln!(
        "deliveries: first {}, second {}; offsets skipped for the revoked partition: {}",
        first_count.load(Ordering::SeqCst),
        second_count.load(Ordering::SeqCst),
        skipped()
    );
    stop.cancel();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_applied_once(&base.pool, 320).await;
}

/// Identity's handler that refuses every message until `fixed` is set (a bug shipped, then
/// fixed by a deploy).
struct RefuseUntilFixed {
    inner: crm_identity::IngestHandler,
    fixed: Arc<AtomicBool>,
}

impl Handler for RefuseUntilFixed {
    async fn handle(&self, envelope: &Envelope, meta: &MessageMeta) -> Result<(), HandleError> {
        if !self.fixed.load(Ordering::SeqCst) {
            return Err(HandleError::permanent(
                "not_supported_yet",
                "a bug, since fixed",
            ));
        }
        self.inner.handle(envelope, meta).await
    }

    async fn handle_batch(&self, batch: &[BatchItem]) -> Result<bool, HandleError> {
        if !self.fixed.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.inner.handle_batch(batch).await
    }
}

#[tokio::test]
async fn dlq_replay_puts_a_parts_dead_letters_back_once() {
    crm_telemetry::init_for_tests();
    let id = unique_id();
    let config = part_config(&id, "identity", &redis_url());
    let base = Base::connect("identity", config.clone(), &crm_identity::MIGRATOR)
        .await
        .unwrap();
    let dlq_topic = format!("t{id}.crm.ingest.v1.dlq");
    // Five events the buggy handler refuses, one that can never parse, and a dead letter that
    // another part's group wrote (not identity's to replay).
    produce_identifies(&base, 0..5, "refused").await;
    base.producer
        .send_raw(
            &format!("t{id}.crm.ingest.v1"),
            "acme:x",
            b"{not json",
            &HashMap::new(),
        )
        .await
        .unwrap();
    let other = HashMap::from([
        (
            "crm-dlq-consumer-group".to_owned(),
            format!("t{id}.crm-loyalty"),
        ),
        ("crm-dlq-error-code".to_owned(), "whatever".to_owned()),
    ]);
    base.producer
        .send_raw(&dlq_topic, "acme:y", b"{}", &other)
        .await
        .unwrap();

    let fixed = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let task = spawn_identity_consumer(
        &base,
        RefuseUntilFixed {
            inner: crm_identity::IngestHandler::new(&base),
            fixed: Arc::clone(&fixed),
        },
        stop.clone(),
    );
    let dead = || {
        base.metrics
            .dead_lettered
            .with_label_values(&["crm.ingest.v1"])
            .get()
    };
    eventually("six dead letters", || async { (dead() == 6).then_some(()) }).await;
    fixed.store(true, Ordering::SeqCst);

    let options = |since, dry_run| ReplayOptions {
        topic: Topic::Ingest,
        since,
        dry_run,
    };
    let replay = |options: ReplayOptions| {
        let (config, base) = (&config, &base);
        async move {
            dlq::replay(
                &config.kafka,
                "identity",
                &base.pool,
                &base.producer,
                &options,
            )
            .await
            .unwrap()
        }
    };
    let pool = &base.pool;

    // A dry run lists them and changes nothing; --since in the future selects none.
    let dry = replay(options(None, true)).await;
    assert_eq!(dry.count(ReplayOutcome::WouldReplay), 6);
    assert_eq!(dry.count(ReplayOutcome::OtherGroup), 1);
    let codes: Vec<&str> = dry.entries.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "not_supported_yet").count(),
        5
    );
    assert!(codes.contains(&"invalid_envelope"));
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let none = replay(options(Some(later), false)).await;
    assert_eq!(none.count(ReplayOutcome::BeforeSince), 6);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(pool, "SELECT count(*) FROM customers").await, 0);

    // The replay: the five are applied; the unparsable one is dead-lettered again.
    let first = replay(options(None, false)).await;
    assert_eq!(first.count(ReplayOutcome::Replayed), 6);
    assert_eq!(first.count(ReplayOutcome::OtherGroup), 1);
    eventually("the replayed events applied", || async {
        (count(pool, "SELECT count(*) FROM processed_messages").await == 5).then_some(())
    })
    .await;
    eventually("the unparsable one dead-lettered again", || async {
        (dead() == 7).then_some(())
    })
    .await;

    // Again: the six are skipped; only the new dead letter (the unparsable one's second) goes.
    let second = replay(options(None, false)).await;
    assert_eq!(second.count(ReplayOutcome::AlreadyReplayed), 6);
    assert_eq!(second.count(ReplayOutcome::Replayed), 1);
    eventually("the unparsable one dead-lettered a third time", || async {
        (dead() == 8).then_some(())
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let customers = count(pool, "SELECT count(*) FROM customers").await;
    let once = count(pool, "SELECT count(*) FROM customers WHERE event_count = 1").await;
    assert_eq!((customers, once), (5, 5));
}
