//! Measurement: how long a part's consumer takes to consume again after the part is killed
//! with SIGKILL (it never leaves its consumer group) and restarted at once, and whether
//! anything was lost or applied twice.
//!
//! The real binary (`crm-identity` or `crm-loyalty`, next to this example in the target
//! folder) runs as a child process on a topic prefix and database of its own, while events
//! arrive at a steady rate. It is killed three times: 3 s after its first start (while it is
//! still joining or on its first batch, where the local broker used to wait 5 to 11 minutes),
//! then twice in the middle of the stream. Each time the time from the restart to the first
//! message applied is printed. At the end every event must be applied exactly once.
//!
//! Run: `scripts/recovery` (builds the binaries, then runs this for identity and loyalty, with
//! and without static group membership). Options: `--part identity|loyalty`, `--events N`,
//! `--rate N` (per second), `--dynamic` (no `group.instance.id`), `--give-up S`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::{KafkaConfig, Producer};
use crm_tests::{brokers, postgres, unique_id};
use sqlx::PgPool;
use tokio::process::{Child, Command};

struct Args {
    part: String,
    events: usize,
    rate: usize,
    dynamic: bool,
    give_up: Duration,
}

fn args() -> Args {
    let mut args = Args {
        part: "identity".into(),
        events: 6_000,
        rate: 300,
        dynamic: false,
        give_up: Duration::from_secs(180),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--part" => args.part = value(),
            "--events" => args.events = value().parse().expect("--events N"),
            "--rate" => args.rate = value().parse().expect("--rate N"),
            "--give-up" => {
                args.give_up = Duration::from_secs(value().parse().expect("--give-up S"))
            }
            "--dynamic" => args.dynamic = true,
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        matches!(args.part.as_str(), "identity" | "loyalty"),
        "--part identity or loyalty"
    );
    args
}

/// The part's binary, next to this example (`target/<profile>/crm-<part>`).
fn binary(part: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join(format!("crm-{part}"));
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release -p crm-{part}",
        bin.display()
    );
    bin
}

struct Run {
    args: Args,
    prefix: String,
    database_url: String,
    log: PathBuf,
}

impl Run {
    fn start(&self) -> Child {
        let upper = self.args.part.to_ascii_uppercase();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let instance = if self.args.dynamic {
            String::new()
        } else {
            format!("{}-recovery-0", self.args.part)
        };
        Command::new(binary(&self.args.part))
            .arg("serve")
            .env("CRM_KAFKA__BROKERS", brokers())
            .env("CRM_KAFKA__TOPIC_PREFIX", &self.prefix)
            .env("CRM_KAFKA__INSTANCE_ID", instance)
            .env("CRM_SERVICE_TOKEN", crm_tests::SERVICE_TOKEN)
            .env("CRM_REDIS__PREFIX", self.prefix.trim_end_matches('.'))
            .env(format!("CRM_{upper}__DATABASE_URL"), &self.database_url)
            .env(format!("CRM_{upper}__LISTEN"), "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// The event `i`: an identify on the ingest topic for identity, a page view of a known
    /// customer on `crm.events.v1` for loyalty.
    fn event(&self, i: usize) -> (Topic, Envelope) {
        let tenant = TenantId::parse("acme").unwrap();
        let customer = uuid::Uuid::from_u128(1 + (i % 500) as u128);
        if self.args.part == "identity" {
            let mut e = Envelope::domain(tenant, "identify", uuid::Uuid::nil(), "recovery");
            e.customer_id = None;
            e.identity.user_id = Some(format!("rec-user-{}", i % 500));
            e.id = format!("rec-{i}");
            (Topic::Ingest, e)
        } else {
            let mut e = Envelope::domain(tenant, "track", customer, "recovery");
            e.name = Some("page_viewed".into());
            e.id = format!("rec-{i}");
            (Topic::Events, e)
        }
    }
}

async fn applied(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM processed_messages")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// Waits until more than `above` messages are applied; the time it took, or `None` after
/// `limit`.
async fn wait_above(pool: &PgPool, above: i64, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if applied(pool).await > above {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn seconds(d: Option<Duration>, limit: Duration) -> String {
    d.map_or(format!("> {} (gave up)", limit.as_secs()), |d| {
        format!("{:.1}", d.as_secs_f64())
    })
}

#[tokio::main]
async fn main() {
    crm_telemetry::init_for_tests();
    let args = args();
    let id = unique_id();
    std::fs::create_dir_all(".run").unwrap();
    let run = Run {
        prefix: format!("r{id}."),
        database_url: format!("{}/crm_rec_{id}_{}", postgres(), args.part),
        log: PathBuf::from(format!(".run/recovery-{}-{id}.log", args.part)),
        args,
    };
    let kafka = KafkaConfig::local(&brokers(), &run.prefix);
    crm_kafka::ensure_topics(&kafka).await.unwrap();
    let producer = Producer::connect(&kafka, crm_telemetry::Metrics::new("recovery").unwrap())
        .await
        .unwrap();
    crm_service::db::ensure_database(&run.database_url)
        .await
        .unwrap();
    let pool = crm_service::db::connect(&run.database_url, 2)
        .await
        .unwrap();

    // Events at a steady rate, for the whole run.
    let (events, rate) = (run.args.events, run.args.rate);
    let sends: Vec<(Topic, Envelope)> = (0..events).map(|i| run.event(i)).collect();
    let feeder = tokio::spawn(async move {
        let tick = Duration::from_secs_f64(1.0 / rate as f64);
        let mut next = Instant::now();
        for (topic, e) in sends {
            producer.send_envelope(topic, &e).await.unwrap();
            next += tick;
            tokio::time::sleep_until(next.into()).await;
        }
    });

    let limit = run.args.give_up;
    let mut child = run.start();
    let started = Instant::now();
    let mut rows = Vec::new();
    for kill in 0..3 {
        let killed_after = if kill == 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            started.elapsed()
        } else {
            // Mid-stream: once the part has applied a few hundred messages since its restart.
            let base = applied(&pool).await;
            wait_above(&pool, base + 300, limit).await;
            started.elapsed()
        };
        child.start_kill().unwrap(); // SIGKILL
        let _ = child.wait().await;
        let at_kill = applied(&pool).await;
        child = run.start();
        let recovered = wait_above(&pool, at_kill, limit).await;
        println!(
            "kill {}: at {:.1} s, {at_kill} applied; consuming again {} s after the restart",
            kill + 1,
            killed_after.as_secs_f64(),
            seconds(recovered, limit)
        );
        rows.push(recovered);
    }
    feeder.await.unwrap();
    let all = wait_above(&pool, events as i64 - 1, limit).await;
    let done = applied(&pool).await;
    child.start_kill().unwrap();
    let _ = child.wait().await;

    let membership = if run.args.dynamic {
        "dynamic"
    } else {
        "static"
    };
    let worst = rows
        .iter()
        .map(|r| r.map_or(f64::INFINITY, |d| d.as_secs_f64()))
        .fold(0.0, f64::max);
    println!(
        "{} ({membership} membership): {events} events, {done} applied ({}), worst recovery {} s",
        run.args.part,
        if all.is_some() && done == events as i64 {
            "none lost"
        } else {
            "SOME NOT APPLIED"
        },
        if worst.is_finite() {
            format!("{worst:.1}")
        } else {
            format!("> {}", limit.as_secs())
        }
    );
    if run.args.part == "identity" {
        let counted: i64 =
            sqlx::query_scalar("SELECT coalesce(sum(event_count), 0)::bigint FROM customers")
                .fetch_one(&pool)
                .await
                .unwrap();
        println!(
            "identity: customers' event counts add up to {counted} ({})",
            if counted == events as i64 {
                "each event applied once"
            } else {
                "MISMATCH"
            }
        );
    }
    println!("part log: {}", run.log.display());
}
