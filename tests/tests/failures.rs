//! What happens when things go wrong: contract-breaking messages on Kafka, a consumer killed
//! between its effect and its commit, Redis stopped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crm_envelope::{Envelope, Topic};
use crm_kafka::{HandleError, Handler, MessageMeta, Producer};
use crm_service::Base;
use crm_tests::{
    eventually, part_config, redis_url, spawn_identity_consumer, test_consumer, unique_id, Counted,
    Suite, SuiteOptions,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_breaks_the_contract_is_dead_lettered_and_the_consumer_goes_on() {
    let suite = Suite::start().await;
    let config = part_config(&suite.id, "probe", &suite.redis).kafka;
    let producer = Producer::connect(&config, crm_telemetry::Metrics::new("probe").unwrap())
        .await
        .unwrap();
    let topic = suite.topic("crm.ingest.v1");
    let key = "acme:dlq-user";
    let none = HashMap::new();
    producer
        .send_raw(&topic, key, b"{this is not json", &none)
        .await
        .unwrap();
    let no_identity = json!({"id": "no-id-1", "tenant_id": "acme", "kind": "track", "name": "X", "occurred_at": "2026-11-23T10:00:00Z", "received_at": "2026-11-23T10:00:00Z", "source": "kafka"});
    producer
        .send_raw(
            &topic,
            key,
            &serde_json::to_vec(&no_identity).unwrap(),
            &none,
        )
        .await
        .unwrap();
    let good = json!({"id": "good-1", "tenant_id": "acme", "kind": "identify", "occurred_at": "2026-11-23T10:00:00Z", "received_at": "2026-11-23T10:00:00Z", "source": "kafka", "identity": {"user_id": "dlq-user"}});
    producer
        .send_raw(&topic, key, &serde_json::to_vec(&good).unwrap(), &none)
        .await
        .unwrap();

    // The consumer went past both bad messages to the good one.
    suite.wait_for_customer("dlq-user", |_| true).await;

    let dlq = test_consumer(&suite.topic("crm.ingest.v1.dlq"));
    let mut dead: Vec<HashMap<String, String>> = Vec::new();
    while dead.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(30), dlq.recv())
            .await
            .expect("dead letters arrive")
            .unwrap();
        let headers = crm_tests::headers_of(&message);
        dead.push(headers);
    }
    assert_eq!(dead[0]["crm-dlq-error-code"], "invalid_envelope");
    assert_eq!(dead[1]["crm-dlq-error-code"], "missing_identity");
    for headers in &dead {
        assert_eq!(headers["crm-dlq-source-topic"], topic);
        assert_eq!(
            headers["crm-dlq-consumer-group"],
            format!("t{}.crm-identity", suite.id)
        );
        assert!(headers["crm-dlq-offset"].parse::<i64>().is_ok());
        assert!(headers["crm-dlq-partition"].parse::<i32>().is_ok());
        assert!(!headers["crm-dlq-error"].is_empty());
    }
    let metrics = suite.metrics_of(&suite.identity).await;
    assert_eq!(
        crm_tests::metric(
            &metrics,
            "crm_kafka_messages_dead_lettered_total",
            &[("topic", "crm.ingest.v1")]
        ),
        Some(2.0)
    );
    suite.stop().await;
}

/// Runs the real identity handler, then hangs forever on the first message: the process is
/// "killed" (the task aborted) after the effect committed and before the offset is stored.
struct HangAfterEffect {
    inner: crm_identity::IngestHandler,
    applied: Arc<AtomicUsize>,
}

impl Handler for HangAfterEffect {
    async fn handle(&self, envelope: &Envelope, meta: &MessageMeta) -> Result<(), HandleError> {
        self.inner.handle(envelope, meta).await?;
        self.applied.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_between_effect_and_commit_gets_the_message_again_and_makes_no_second_effect(
) {
    crm_telemetry::init_for_tests();
    let id = unique_id();
    let config = part_config(&id, "identity", &redis_url());
    let base = Base::connect("identity", config.clone(), &crm_identity::MIGRATOR)
        .await
        .unwrap();
    let mut event = Envelope::domain(
        crm_envelope::TenantId::parse("acme").unwrap(),
        "identify",
        uuid::Uuid::nil(),
        "test",
    );
    event.customer_id = None;
    event.identity.user_id = Some("crash-user".into());
    event.traits.insert("plan".into(), json!("gold"));
    base.producer
        .send_envelope(Topic::Ingest, &event)
        .await
        .unwrap();

    // First run: applies the effect, then hangs before its offset is stored; then killed.
    let applied = Arc::new(AtomicUsize::new(0));
    let first = spawn_identity_consumer(
        &base,
        HangAfterEffect {
            inner: crm_identity::IngestHandler::new(&base),
            applied: Arc::clone(&applied),
        },
        CancellationToken::new(),
    );
    eventually("the first effect", || async {
        (applied.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    first.abort();
    let _ = first.await;

    // Restart: same group, same database. The message comes again and is skipped.
    let delivered = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let second = spawn_identity_consumer(
        &base,
        Counted {
            inner: crm_identity::IngestHandler::new(&base),
            delivered: Arc::clone(&delivered),
        },
        stop.clone(),
    );
    eventually("the redelivery", || async {
        (delivered.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    stop.cancel();
    second.await.unwrap().unwrap();

    let pool = &base.pool;
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(pool)
        .await
        .unwrap();
    let (events, version): (i64, i64) =
        sqlx::query_as("SELECT event_count, version FROM customers")
            .fetch_one(pool)
            .await
            .unwrap();
    let resolved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox_messages WHERE topic = 'crm.events.v1'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(customers, 1);
    assert_eq!(
        (events, version),
        (1, 1),
        "the redelivered message made no second effect"
    );
    assert_eq!(resolved, 1, "the resolved event was enqueued once");
}

/// A Redis server of the test's own on a free port, and its URL.
async fn private_redis() -> (tokio::process::Child, String) {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("crm-redis-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let redis = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(&dir)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    eventually("private redis", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    (redis, format!("redis://127.0.0.1:{port}"))
}

/// Sends `signal` (`STOP`, `CONT`) to `child`.
fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Starts the suite on `redis`, ingests an identify of `user_id` (with `traits`) and waits until
/// its profile is served from the cache; the suite, the customer's id and profile path.
async fn cached_customer(redis: String, user_id: &str, identity: Value) -> (Suite, String, String) {
    let suite = Suite::start_with(SuiteOptions {
        redis: Some(redis),
        ..Default::default()
    })
    .await;
    suite.ingest(&identity).await;
    let id = suite.wait_for_customer(user_id, |_| true).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/customers/{id}");
    eventually("a cache hit", || async {
        (suite.get(Some(&suite.key), &path).await.headers()["x-cache"] == "hit").then_some(())
    })
    .await;
    (suite, id, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_reads_fall_back_to_identity_and_ingest_still_works() {
    let (mut redis, url) = private_redis().await;
    let (suite, _, path) = cached_customer(
        url,
        "r-1",
        json!({"kind": "identify", "identity": {"user_id": "r-1"}, "traits": {"tier": "a"}}),
    )
    .await;

    redis.kill().await.unwrap();
    let _ = redis.wait().await;

    let read = suite.get(Some(&suite.key), &path).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["x-cache"], "miss");
    assert_eq!(read.json::<Value>().await.unwrap()["traits"]["tier"], "a");

    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": "r-2"}}))
        .await;
    let second = suite.wait_for_customer("r-2", |_| true).await;
    let read = suite
        .get(
            Some(&suite.key),
            &format!("/v1/customers/{}", second["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(read.status(), 200);

    let ready = suite
        .http
        .get(format!("{}/readyz", suite.gateway))
        .send()
        .await
        .unwrap();
    // Redis is a cache: the part is degraded, not unready.
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["checks"]["redis"], "degraded");
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_while_redis_hangs_never_brings_the_profile_back_and_writes_keep_the_newest() {
    let (redis, url) = private_redis().await;
    let (suite, id, path) = cached_customer(
        url,
        "hang-1",
        json!({"kind": "identify", "identity": {"user_id": "hang-1", "email": "hang@example.com"}}),
    )
    .await;

    // Redis hangs (keeps its data, answers nothing) while the customer is erased: the
    // evictions time out, and reads answer from identity.
    signal(&redis, "STOP");
    let erased = suite
        .post(&suite.key, &format!("/v1/customers/{id}/erase"), None)
        .await;
    assert_eq!(erased.status(), 200);
    assert_eq!(suite.get(Some(&suite.key), &path).await.status(), 404);
    let identity = suite.identity_pool().await;
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM cache_repairs")
        .fetch_one(&identity)
        .await
        .unwrap();
    assert!(pending >= 1, "the failed eviction is recorded for repair");

    // Redis answers again: the stale copy is dropped and tombstoned, and stays gone.
    signal(&redis, "CONT");
    let cache = suite.profile_cache();
    let key = cache.key(
        &crm_envelope::TenantId::parse("acme").unwrap(),
        id.parse().unwrap(),
    );
    eventually("the stale copy repaired", || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM cache_repairs")
            .fetch_one(&identity)
            .await
            .unwrap();
        (left == 0).then_some(())
    })
    .await;
    assert!(cache.get(&key).await.unwrap().is_none());
    for _ in 0..3 {
        assert_eq!(suite.get(Some(&suite.key), &path).await.status(), 404);
    }
    // A late fill of the erased id (a read that raced the erasure) is refused by the tombstone.
    let late =
        json!({"id": id, "version": 99, "traits": {"email": "hang@example.com"}}).to_string();
    assert!(!cache.fill(&key, &late).await.unwrap());
    assert!(!cache.put(&key, &late).await.unwrap());
    assert!(cache.get(&key).await.unwrap().is_none());

    // Compare-and-set on versions: an older write never replaces a newer copy.
    let other = cache.key(
        &crm_envelope::TenantId::parse("acme").unwrap(),
        uuid::Uuid::new_v4(),
    );
    let at = |v: i64| json!({"version": v, "traits": {"n": v}}).to_string();
    assert!(cache.put(&other, &at(5)).await.unwrap());
    assert!(!cache.put(&other, &at(3)).await.unwrap());
    assert!(
        !cache.fill(&other, &at(5)).await.unwrap(),
        "a fill keeps an equal version"
    );
    assert!(cache.put(&other, &at(6)).await.unwrap());
    assert_eq!(cache.get(&other).await.unwrap().unwrap(), at(6));
    suite.stop().await;
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_and_a_restart_resumes_where_it_stopped() {
    let suite = Suite::start().await;
    for i in 0..20 {
        let body = json!({"id": format!("drain-{i}"), "kind": "track", "name": "Product Viewed", "identity": {"user_id": "drain-user"}});
        suite.ingest(&body).await;
    }
    suite
        .wait_for_customer("drain-user", |p| p["event_count"] == 20)
        .await;
    let id = suite.id.clone();
    suite.stop().await;

    // Everything identity committed was relayed before it stopped.
    let pool =
        crm_service::db::connect(&part_config(&id, "identity", &redis_url()).database_url, 1)
            .await
            .unwrap();
    assert_eq!(crm_tests::unsent_messages(&pool).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_applied_in_batches_exactly_once_and_a_bad_message_in_it_is_dead_lettered() {
    crm_telemetry::init_for_tests();
    let id = unique_id();
    let mut config = part_config(&id, "identity", &redis_url());
    // The whole backlog is on the topic before the consumer starts; a generous linger lets the
    // first poll's batch take what librdkafka fetches after the first message, however loaded
    // the machine is, instead of depending on how much it holds at that instant.
    config.kafka.batch_linger = Duration::from_secs(2);
    let base = Base::connect("identity", config.clone(), &crm_identity::MIGRATOR)
        .await
        .unwrap();
    let tenant = crm_envelope::TenantId::parse("acme").unwrap();
    // 300 events of 100 customers waiting on the topic, one unreadable message among them,
    // and event 7 sent twice (the copy must change nothing).
    for i in (0..300).chain([7]) {
        let mut event = Envelope::domain(tenant.clone(), "identify", uuid::Uuid::nil(), "test");
        event.id = format!("burst-{i}");
        event.customer_id = None;
        event.identity.user_id = Some(format!("burst-user-{}", i % 100));
        event.traits.insert("n".into(), json!(i));
        base.producer
            .send_envelope(Topic::Ingest, &event)
            .await
            .unwrap();
        if i == 150 {
            base.producer
                .send_raw(
                    &format!("t{id}.crm.ingest.v1"),
                    "acme:burst-user-50",
                    b"{not json",
                    &HashMap::new(),
                )
                .await
                .unwrap();
        }
    }

    let stop = CancellationToken::new();
    let task =
        spawn_identity_consumer(&base, crm_identity::IngestHandler::new(&base), stop.clone());
    let pool = &base.pool;
    eventually("the backlog applied", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_messages")
            .fetch_one(pool)
            .await
            .unwrap();
        (n == 300).then_some(())
    })
    .await;
    eventually("the bad message dead-lettered", || async {
        let dead = base
            .metrics
            .dead_lettered
            .with_label_values(&["crm.ingest.v1"])
            .get();
        (dead == 1).then_some(())
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();

    let (customers, events): (i64, i64) =
        sqlx::query_as("SELECT count(*), sum(event_count)::bigint FROM customers")
            .fetch_one(pool)
            .await
            .unwrap();
    let resolved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox_messages WHERE topic = 'crm.events.v1'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((customers, events, resolved), (100, 300, 300));
    // Each customer's last event (n = 200..299) is the trait that stays: order kept in batches.
    let last: Vec<i64> =
        sqlx::query_scalar("SELECT (traits->>'n')::bigint FROM customers ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(last, (200..300).collect::<Vec<i64>>());
    let batched = base
        .metrics
        .batched
        .with_label_values(&["crm.ingest.v1"])
        .get();
    assert!(batched > 0, "the backlog went through the batch path");
}
