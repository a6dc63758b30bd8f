//! Segmentation's poll-at-once path against a real PostgreSQL: random sequences of events,
//! orders, campaign interactions, trait and tier changes, merges and erasures, applied one
//! message at a time for one tenant and in polls of random sizes for another, leave the same
//! activity, daily counts, retained events and memberships.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Duration, Utc};
use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::{BatchItem, Handler, MessageMeta};
use crm_segmentation::engine::Catalog;
use crm_segmentation::recompute::recompute;
use crm_segmentation::SegmentationHandler;
use crm_tests::{postgres, unique_id};
use proptest::prelude::*;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

/// The file's database.
static POOL_URL: LazyLock<String> =
    LazyLock::new(|| format!("{}/crm_test_{}_segbatch", postgres(), unique_id()));

static POOL: LazyLock<PgPool> = LazyLock::new(|| {
    RUNTIME.block_on(async {
        let url = POOL_URL.as_str();
        crm_service::db::ensure_database(url).await.unwrap();
        let pool = crm_service::db::connect(url, 4).await.unwrap();
        crm_service::db::migrate(&pool, &crm_segmentation::MIGRATOR)
            .await
            .unwrap();
        pool
    })
});

/// One message of a generated sequence, about customers 0 to 3.
#[derive(Debug, Clone)]
enum Op {
    Event {
        who: usize,
        name: &'static str,
        amount: u32,
        category: &'static str,
        days_ago: i64,
    },
    Interaction {
        who: usize,
    },
    Traits {
        who: usize,
        plan: &'static str,
    },
    Tier {
        who: usize,
        tier: &'static str,
    },
    Merge {
        survivor: usize,
        merged: usize,
    },
    Erase {
        who: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0usize..4;
    prop_oneof![
        6 => (who.clone(), prop::sample::select(vec!["Order Completed", "Product Viewed", "Order Completed"]),
              0u32..200, prop::sample::select(vec!["shoes", "bags"]), 0i64..150)
            .prop_map(|(who, name, amount, category, days_ago)| Op::Event { who, name, amount, category, days_ago }),
        2 => who.clone().prop_map(|who| Op::Interaction { who }),
        2 => (who.clone(), prop::sample::select(vec!["gold", "silver"])).prop_map(|(who, plan)| Op::Traits { who, plan }),
        2 => (who.clone(), prop::sample::select(vec!["gold", "silver"])).prop_map(|(who, tier)| Op::Tier { who, tier }),
        1 => (who.clone(), who.clone()).prop_filter("two customers", |(a, b)| a != b)
            .prop_map(|(survivor, merged)| Op::Merge { survivor, merged }),
        1 => who.prop_map(|who| Op::Erase { who }),
    ]
}

/// The message `op` stands for, for `tenant`, as a batch item (topic and envelope).
fn item(tenant: &TenantId, customers: &[Uuid], now: DateTime<Utc>, n: usize, op: &Op) -> BatchItem {
    let (topic, mut e) = match op {
        Op::Event {
            who,
            name,
            amount,
            category,
            days_ago,
        } => {
            let mut e = Envelope::domain(tenant.clone(), "track", customers[*who], "test");
            e.name = Some((*name).to_owned());
            e.occurred_at = now - Duration::days(*days_ago) - Duration::seconds(n as i64);
            e.properties = json!({"revenue": f64::from(*amount) / 3.0, "category": category})
                .as_object()
                .unwrap()
                .clone();
            (Topic::Events, e)
        }
        Op::Interaction { who } => (
            Topic::Interactions,
            Envelope::domain(
                tenant.clone(),
                "message.opened",
                customers[*who],
                "campaign",
            ),
        ),
        Op::Traits { who, plan } => {
            let mut e = Envelope::domain(
                tenant.clone(),
                "profile.updated",
                customers[*who],
                "identity",
            );
            e.traits = json!({"plan": plan}).as_object().unwrap().clone();
            (Topic::Profiles, e)
        }
        Op::Tier { who, tier } => {
            let mut e =
                Envelope::domain(tenant.clone(), "tier.changed", customers[*who], "loyalty");
            e.properties = json!({"tier": tier}).as_object().unwrap().clone();
            (Topic::Loyalty, e)
        }
        Op::Merge { survivor, merged } => {
            let mut e = Envelope::domain(
                tenant.clone(),
                "profile.merged",
                customers[*survivor],
                "identity",
            );
            e.properties =
                json!({"survivor_id": customers[*survivor], "merged_id": customers[*merged]})
                    .as_object()
                    .unwrap()
                    .clone();
            (Topic::Profiles, e)
        }
        Op::Erase { who } => {
            let mut e = Envelope::domain(
                tenant.clone(),
                "profile.erased",
                customers[*who],
                "identity",
            );
            e.properties = json!({"erased_ids": [customers[*who]]})
                .as_object()
                .unwrap()
                .clone();
            (Topic::Profiles, e)
        }
    };
    // The same message id and times in both tenants keep what is stored comparable.
    e.id = format!("m{n}");
    e.received_at = now;
    if topic != Topic::Events {
        e.occurred_at = now - Duration::seconds(n as i64);
    }
    BatchItem {
        envelope: e,
        meta: MessageMeta {
            topic,
            partition: 0,
            offset: n as i64,
            group: "test".into(),
        },
        headers: Default::default(),
    }
}

async fn segments(pool: &PgPool, tenant: &TenantId) {
    let mut conn = pool.acquire().await.unwrap();
    for (name, rule) in [
        (
            "buyers",
            json!({"aggregate": {"metric": "orders", "op": "gte", "value": 1}}),
        ),
        (
            "recent shoes",
            json!({"event": {"name": "Order Completed",
                "where": [{"property": "category", "op": "eq", "value": "shoes"}],
                "at_least": 1, "within_days": 90}}),
        ),
        ("bags", json!({"bought_category": {"any_of": ["bags"]}})),
        (
            "gold plan",
            json!({"trait": {"name": "plan", "op": "eq", "value": "gold"}}),
        ),
        ("gold tier", json!({"loyalty_tier": {"in": ["gold"]}})),
        (
            "opened",
            json!({"aggregate": {"metric": "count", "event": "message.opened", "op": "gte", "value": 1}}),
        ),
        (
            "big spenders",
            json!({"aggregate": {"metric": "revenue", "op": "gt", "value": 100}}),
        ),
    ] {
        crm_segmentation::store::segments::create(&mut conn, tenant, name, "", rule, "test")
            .await
            .unwrap();
    }
}

/// What a tenant's tables hold, with the tenant left out so that two tenants compare.
async fn stored(pool: &PgPool, tenant: &TenantId) -> Vec<String> {
    let queries = [
        "SELECT customer_id::text || ' ' || events_total || ' ' || orders_total || ' ' || revenue_total
             || ' ' || coalesce(first_seen_at::text, '-') || ' ' || coalesce(last_seen_at::text, '-')
             || ' ' || coalesce(last_order_at::text, '-') || ' ' || last_order_value
             || ' ' || ARRAY(SELECT unnest(categories) ORDER BY 1)::text || ' ' || traits::text
             || ' ' || coalesce(loyalty_tier, '-') || ' ' || coalesce(stage, '-')
         FROM customer_activity WHERE tenant_id = $1 ORDER BY customer_id",
        "SELECT customer_id::text || ' ' || name || ' ' || day || ' ' || events || ' ' || round(total::numeric, 6)
         FROM daily_activity WHERE tenant_id = $1 ORDER BY customer_id, name, day",
        "SELECT customer_id::text || ' ' || event_id || ' ' || name || ' ' || occurred_at
         FROM customer_events WHERE tenant_id = $1 ORDER BY customer_id, event_id",
        "SELECT s.name || ' ' || m.customer_id FROM memberships m
             JOIN segments s ON s.tenant_id = m.tenant_id AND s.id = m.segment_id
         WHERE m.tenant_id = $1 ORDER BY 1",
        "SELECT merged_id::text || ' ' || survivor_id FROM aliases WHERE tenant_id = $1 ORDER BY 1",
        "SELECT customer_id::text FROM erased WHERE tenant_id = $1 ORDER BY 1",
    ];
    let mut out = Vec::new();
    for q in queries {
        let rows: Vec<(String,)> = sqlx::query_as(q)
            .bind(tenant)
            .fetch_all(pool)
            .await
            .unwrap();
        out.push(format!("-- {}", &q[..40]));
        out.extend(rows.into_iter().map(|(r,)| r));
    }
    out
}

async fn check(pool: PgPool, ops: Vec<Op>, cuts: Vec<usize>) {
    let run = unique_id();
    let one = TenantId::parse(&format!("one{run}")).unwrap();
    let polled = TenantId::parse(&format!("poll{run}")).unwrap();
    segments(&pool, &one).await;
    segments(&pool, &polled).await;
    let customers: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let now = Utc::now();
    let catalog = Arc::new(Catalog::default());
    let handler = SegmentationHandler::new(pool.clone(), Arc::clone(&catalog));

    for (n, op) in ops.iter().enumerate() {
        let b = item(&one, &customers, now, n, op);
        handler.handle(&b.envelope, &b.meta).await.unwrap();
    }
    let items: Vec<BatchItem> = ops
        .iter()
        .enumerate()
        .map(|(n, op)| item(&polled, &customers, now, n, op))
        .collect();
    let mut at = 0;
    let mut sizes = cuts.iter().cycle();
    while at < items.len() {
        let size = (*sizes.next().unwrap()).min(items.len() - at);
        let done = handler.handle_batch(&items[at..at + size]).await.unwrap();
        assert!(done, "segmentation applies polls at once");
        at += size;
    }
    // A poll delivered again changes nothing.
    assert!(handler.handle_batch(&items).await.unwrap());

    let (a, b) = (stored(&pool, &one).await, stored(&pool, &polled).await);
    assert_eq!(a, b, "one at a time (left) and in polls (right) differ");
    // And both agree with a full recompute: it finds nothing to change.
    for tenant in [&one, &polled] {
        let applied = recompute(&pool, &catalog, tenant, None, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            (applied.entered, applied.exited),
            (0, 0),
            "{tenant}: a recompute changed memberships ({applied:?})"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn streaming_in_polls_equals_one_at_a_time(
        ops in prop::collection::vec(op(), 1..50),
        cuts in prop::collection::vec(1usize..15, 1..8),
    ) {
        let pool = POOL.clone();
        RUNTIME.block_on(check(pool, ops, cuts));
    }
}

/// A recompute job killed mid-way (its task dropped between chunks or inside one, as SIGKILL
/// would) is taken over after its lease by another worker, which goes on from the last
/// committed chunk: every member entered once, one message each, progress complete.
#[test]
fn a_recompute_job_taken_over_after_a_crash_resumes_where_it_stopped() {
    let pool = POOL.clone();
    RUNTIME.block_on(async move {
        let tenant = TenantId::parse(&format!("job{}", unique_id())).unwrap();
        let customers = 3 * crm_segmentation::recompute::CHUNK + 1_234;
        sqlx::query(
            "INSERT INTO customer_activity (tenant_id, customer_id, orders_total, traits)
             SELECT $1, ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, g % 3,
                    jsonb_build_object('plan', CASE WHEN g % 4 = 0 THEN 'gold' ELSE 'free' END)
             FROM generate_series(1, $2::int) g",
        )
        .bind(&tenant)
        .bind(i32::try_from(customers).unwrap())
        .execute(&pool)
        .await
        .unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let gold = crm_segmentation::store::segments::create(
            &mut conn,
            &tenant,
            "gold",
            "",
            json!({"trait": {"name": "plan", "op": "eq", "value": "gold"}}),
            "test",
        )
        .await
        .unwrap()
        .id;
        // Back to the pool of 4: the blocker, the job's two chunks in flight (one written, the
        // next evaluated) and the test's own reads need the rest.
        drop(conn);
        let expected = (1..=customers).filter(|g| g % 4 == 0).count() as u64;
        let mut tx = pool.begin().await.unwrap();
        let id = crm_segmentation::recompute::enqueue(
            &mut tx,
            &tenant,
            Some(std::collections::BTreeSet::from([gold])),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let catalog = Arc::new(Catalog::default());
        let relay = Arc::new(tokio::sync::Notify::new());

        // The first holder dies inside its second chunk, after the first committed: a row of
        // the second chunk is held locked, so the job waits there until it is killed.
        let mut blocker = pool.begin().await.unwrap();
        sqlx::query(
            "SELECT 1 FROM customer_activity WHERE tenant_id = $1 AND customer_id = $2 FOR UPDATE",
        )
        .bind(&tenant)
        .bind(
            uuid::Uuid::parse_str(&format!(
                "00000000-0000-7000-8000-{:012x}",
                crm_segmentation::recompute::CHUNK + 10
            ))
            .unwrap(),
        )
        .execute(&mut *blocker)
        .await
        .unwrap();
        let lease = std::time::Duration::from_millis(1_500);
        let first = crm_service::jobs::claim(&pool, &[crm_segmentation::recompute::JOB], "a", lease)
            .await
            .unwrap()
            .expect("the job is there to take");
        assert_eq!(first.id, id);
        // The first holder has connections of its own, named, so that its death can end them
        // as a process's death would: aborting its task alone leaves them in the pool, one of
        // them perhaps inside a transaction that holds the second chunk's row locks.
        let holder = format!("recompute-holder-{}", unique_id());
        let holder_pool = crm_service::db::connect(
            &format!("{}?application_name={holder}", POOL_URL.as_str()),
            3,
        )
        .await
        .unwrap();
        let running = tokio::spawn({
            let (pool, catalog, relay) =
                (holder_pool.clone(), Arc::clone(&catalog), Arc::clone(&relay));
            async move { crm_segmentation::recompute::run_job(&pool, &catalog, &relay, &first).await }
        });
        let done_at_crash = crm_tests::eventually("a first chunk committed", || async {
            let job = crm_service::jobs::get(&pool, &tenant, id).await.unwrap()?;
            let done = job.progress?.0["done"].as_u64()?;
            (done > 0).then_some(done)
        })
        .await;
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
            .bind(&holder)
            .execute(&pool)
            .await
            .unwrap();
        drop(holder_pool);
        blocker.rollback().await.unwrap();
        assert_eq!(
            done_at_crash,
            crm_segmentation::recompute::CHUNK as u64,
            "killed after its first chunk"
        );

        // Another replica takes it over after the lease and finishes it.
        let worker = crm_service::jobs::Worker {
            lease,
            poll: std::time::Duration::from_millis(100),
            ..crm_service::jobs::Worker::new(pool.clone(), &[crm_segmentation::recompute::JOB])
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let runner = tokio::spawn({
            let (pool, catalog, relay, stop) =
                (pool.clone(), Arc::clone(&catalog), Arc::clone(&relay), stop.clone());
            worker.run(stop, move |job| {
                let (pool, catalog, relay) = (pool.clone(), Arc::clone(&catalog), Arc::clone(&relay));
                async move { crm_segmentation::recompute::run_job(&pool, &catalog, &relay, &job).await }
            })
        });
        let started = std::time::Instant::now();
        let job = loop {
            let job = crm_service::jobs::get(&pool, &tenant, id).await.unwrap().unwrap();
            if job.status == "succeeded" {
                break job;
            }
            if started.elapsed() > std::time::Duration::from_secs(60) {
                // Where it stood, and who waits on whom, to say why.
                let waits: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT application_name, wait_event_type, left(query, 80) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                panic!("the job was not taken over and finished within 60 s: {job:?}; sessions: {waits:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        stop.cancel();
        runner.await.unwrap();
        assert_eq!(job.attempts, 2, "{job:?}");
        let progress = job.progress.unwrap().0;
        assert_eq!(progress["done"], customers as u64, "{progress}");
        assert_eq!(progress["of"], customers as u64, "{progress}");
        assert_eq!(progress["entered"], expected, "{progress}");
        let members: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM memberships WHERE tenant_id = $1 AND segment_id = $2",
        )
        .bind(&tenant)
        .bind(gold)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(members as u64, expected);
        let messages: Vec<(String, i64)> = sqlx::query_as(
            "SELECT payload->>'customer_id', count(*) FROM outbox_messages
             WHERE payload->>'tenant_id' = $1 AND payload->>'kind' = 'segment.entered'
             GROUP BY 1",
        )
        .bind(&tenant)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(messages.len() as u64, expected, "one entry message per member");
        assert!(messages.iter().all(|(_, n)| *n == 1), "no message twice");
    });
}
