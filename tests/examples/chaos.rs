//! The chaos run: the whole suite as five real processes on a broker of its own (tansu with
//! sqlite storage) while seeded traffic flows through the gateway, a tenth of it re-sent by the
//! client, with faults injected in turn: each part killed with SIGKILL and restarted at once,
//! the broker restarted, PostgreSQL restarted. Afterwards it checks that nothing was lost or
//! applied twice and prints a table.
//!
//! Checks: every accepted event is on its customer's timeline exactly once; the "buyers"
//! segment holds exactly the customers with an order, and a full recompute of it changes
//! nothing; `crm-loyalty verify` exits 0 and every
//! balance equals the points of that customer's distinct orders; every outbox row is
//! published; the dead-letter topics hold exactly the malformed messages the run sent.
//!
//! Run `scripts/chaos` (100,000 events of 10,000 customers) or `scripts/chaos --short` (the
//! version `scripts/test` runs). Options: `--seed N`, `--customers N`, `--events N`,
//! `--budget S` (the run fails past it), `--no-postgres` (skip the PostgreSQL restart),
//! `--rate N` (events per second at most; tansu with sqlite storage on a 2-core machine stops
//! answering group requests when flooded, see docs/operations.md), `--fetch-wait-ms N` (the
//! parts' `CRM_KAFKA__FETCH_WAIT_MS`).
//! Traffic stays on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_tests::{postgres, unique_id, SERVICE_TOKEN};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::process::{Child, Command};

const PARTS: [&str; 5] = ["identity", "segmentation", "loyalty", "campaign", "gateway"];
const CONSUMING: [&str; 4] = ["identity", "segmentation", "loyalty", "campaign"];
const BATCH: usize = 100;
/// Malformed messages produced straight to the ingest topic: they must end in its DLQ, and
/// nothing else may.
const BAD_MESSAGES: usize = 5;

struct Args {
    seed: u64,
    customers: usize,
    events: usize,
    budget: Duration,
    postgres_restart: bool,
    /// Events per second the client sends at most (0: as fast as the gateway accepts; the long
    /// run's default 400, the short run's 0).
    rate: usize,
    /// `CRM_KAFKA__FETCH_WAIT_MS` of the parts (the long run's default 250, the short run's the
    /// parts' own default 10): tansu answers a fetch on a quiet partition only when this wait
    /// is over, so at 10 ms the consumers' idle fetches alone keep a core busy on its sqlite
    /// storage (docs/operations.md).
    fetch_wait_ms: u64,
}

fn args() -> Args {
    let mut a = Args {
        seed: 42,
        customers: 10_000,
        events: 100_000,
        budget: Duration::from_secs(1_800),
        postgres_restart: true,
        rate: 400,
        fetch_wait_ms: 250,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--seed" => a.seed = value().parse().expect("--seed N"),
            "--customers" => a.customers = value().parse().expect("--customers N"),
            "--events" => a.events = value().parse().expect("--events N"),
            "--budget" => a.budget = Duration::from_secs(value().parse().expect("--budget S")),
            "--short" => {
                a.customers = 300;
                a.events = 3_000;
                a.budget = Duration::from_secs(600);
                a.rate = 0;
                a.fetch_wait_ms = 10;
            }
            "--no-postgres" => a.postgres_restart = false,
            "--rate" => a.rate = value().parse().expect("--rate N"),
            "--fetch-wait-ms" => a.fetch_wait_ms = value().parse().expect("--fetch-wait-ms N"),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// A binary next to this example (`target/<profile>/<name>`).
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first (scripts/chaos does)",
        bin.display()
    );
    bin
}

/// A port nobody listens on, picked below the kernel's ephemeral range (32768 and up on
/// Linux): a port from that range can be taken again, between this check and the part's bind,
/// by any outgoing connection's source port.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = 20_000 + (std::process::id() % 500) as u16 * 20;
    let _ = NEXT.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "no free port below the ephemeral range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The last lines of a part's log, for a failure message.
fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The run's processes and where they listen.
struct World {
    id: String,
    dir: PathBuf,
    broker_port: u16,
    ports: HashMap<&'static str, u16>,
    children: HashMap<&'static str, Child>,
    broker: Option<Child>,
    fetch_wait_ms: u64,
}

impl World {
    fn prefix(&self) -> String {
        format!("c{}.", self.id)
    }

    fn database_url(&self, part: &str) -> String {
        format!("{}/crm_chaos_{}_{part}", postgres(), self.id)
    }

    fn url(&self, part: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports[part])
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.broker_port)
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .unwrap()
    }

    fn start_broker(&mut self) {
        let log = self.log("broker");
        let url = format!("tcp://127.0.0.1:{}", self.broker_port);
        let child = Command::new("tansu")
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .arg("--storage-engine")
            .arg(format!("sqlite://{}", self.dir.join("tansu.db").display()))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("tansu starts (scripts/chaos installs it)");
        self.broker = Some(child);
    }

    fn command(&self, part: &str) -> Command {
        let upper = part.to_ascii_uppercase();
        let mut c = Command::new(binary(&format!("crm-{part}")));
        c.env("CRM_KAFKA__BROKERS", self.brokers())
            .env("CRM_KAFKA__TOPIC_PREFIX", self.prefix())
            .env("CRM_KAFKA__PARTITIONS", "3")
            .env("CRM_KAFKA__INSTANCE_ID", format!("chaos-{part}"))
            .env("CRM_KAFKA__FETCH_WAIT_MS", self.fetch_wait_ms.to_string())
            .env("CRM_SERVICE_TOKEN", SERVICE_TOKEN)
            .env("CRM_REDIS__PREFIX", format!("c{}", self.id))
            .env(
                format!("CRM_{upper}__DATABASE_URL"),
                self.database_url(part),
            )
            .env(
                format!("CRM_{upper}__LISTEN"),
                format!("127.0.0.1:{}", self.ports[part]),
            )
            .env("CRM_LOYALTY__SCHEDULER_TICK_MS", "1000")
            .env("CRM_GATEWAY__IDENTITY_URL", self.url("identity"))
            .env("CRM_GATEWAY__SEGMENTATION_URL", self.url("segmentation"))
            .env("CRM_GATEWAY__LOYALTY_URL", self.url("loyalty"))
            .env("CRM_GATEWAY__CAMPAIGN_URL", self.url("campaign"))
            .env("CRM_GATEWAY__UPSTREAM_TIMEOUT_MS", "5000")
            .env("RUST_LOG", "info")
            .kill_on_drop(true);
        c
    }

    fn start(&mut self, part: &'static str) {
        let log = self.log(part);
        let child = self
            .command(part)
            .arg("serve")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.children.insert(part, child);
    }

    async fn kill(&mut self, part: &str) {
        if let Some(mut c) = self.children.remove(part) {
            c.start_kill().unwrap(); // SIGKILL
            let _ = c.wait().await;
        }
    }

    async fn ready(&self, http: &reqwest::Client, part: &str) -> bool {
        http.get(format!("{}/readyz", self.url(part)))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        parts: &[&str],
        limit: Duration,
    ) -> Duration {
        let started = Instant::now();
        for part in parts {
            while !self.ready(http, part).await {
                // A part that exited will never be ready: say so at once, with its last words.
                if let Some(child) = self.children.get_mut(*part) {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "{part} exited ({status}) before it was ready; its log ends:\n{}",
                            log_tail(&self.dir.join(format!("{part}.log")), 30)
                        );
                    }
                }
                assert!(
                    started.elapsed() < limit,
                    "{part} not ready after {limit:?}; its log ends:\n{}",
                    log_tail(&self.dir.join(format!("{part}.log")), 30)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        started.elapsed()
    }
}

/// The seeded traffic: events with the facts needed to check the outcome.
struct Traffic {
    batches: Vec<Vec<Value>>,
    /// user → revenue of each distinct order.
    orders: BTreeMap<String, BTreeMap<String, i64>>,
    /// Distinct event ids, with the user each belongs to.
    events: BTreeMap<String, String>,
}

fn traffic(args: &Args) -> Traffic {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut orders: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut events = BTreeMap::new();
    let mut all = Vec::with_capacity(args.events);
    for i in 0..args.events {
        let c = rng.random_range(0..args.customers);
        let user = format!("chaos-user-{c}");
        let id = format!("chaos-{}-{i}", args.seed);
        let roll: f64 = rng.random();
        let event = if roll < 0.3 {
            json!({"id": id, "kind": "identify", "identity": {"user_id": user, "email": format!("chaos{c}@example.com")},
                   "traits": {"plan": if c % 3 == 0 { "gold" } else { "basic" }}})
        } else if roll < 0.7 {
            let revenue = rng.random_range(1..100i64);
            let order = format!("order-{}-{i}", args.seed);
            orders
                .entry(user.clone())
                .or_default()
                .insert(order.clone(), revenue);
            json!({"id": id, "kind": "track", "name": "Order Completed", "identity": {"user_id": user},
                   "properties": {"order_id": order, "revenue": revenue}})
        } else {
            json!({"id": id, "kind": "page", "name": "Home", "identity": {"user_id": user}})
        };
        events.insert(id, user);
        all.push(event);
    }
    let batches = all.chunks(BATCH).map(<[Value]>::to_vec).collect();
    Traffic {
        batches,
        orders,
        events,
    }
}

/// Posts `batch` until the gateway accepts it (it may be down, or the broker may be): an
/// at-least-once client, as an SDK is.
async fn send(http: &reqwest::Client, gateway: &str, key: &str, batch: &[Value]) -> usize {
    let mut tries = 0;
    loop {
        tries += 1;
        let answer = http
            .post(format!("{gateway}/v1/events"))
            .bearer_auth(key)
            .json(batch)
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().as_u16() == 202 => return tries,
            Ok(r) if r.status().is_client_error() => {
                panic!(
                    "the gateway refused a good batch: {}",
                    r.text().await.unwrap_or_default()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Messages in every partition of `topic`, from the watermarks.
fn messages_in(brokers: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "chaos-watermarks")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut total = 0;
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap();
            total += high - low;
        }
    }
    total
}

struct Fault {
    what: String,
    recovered: Duration,
}

#[tokio::main]
async fn main() {
    crm_telemetry::init_for_tests();
    let args = args();
    let run_started = Instant::now();
    let id = unique_id();
    let dir = PathBuf::from(format!(".run/chaos-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut world = World {
        id: id.clone(),
        dir: dir.clone(),
        broker_port: free_port(),
        ports: PARTS.iter().map(|p| (*p, free_port())).collect(),
        children: HashMap::new(),
        broker: None,
        fetch_wait_ms: args.fetch_wait_ms,
    };
    let http = reqwest::Client::new();
    println!(
        "chaos run {id}: seed {}, {} events of {} customers, logs in {}",
        args.seed,
        args.events,
        args.customers,
        dir.display()
    );

    world.start_broker();
    // tansu 0.6's sqlite schema has no index on the headers of records, so each fetch scans
    // every header stored so far and the broker slows to a halt as topics grow
    // (scripts/tansu-sqlite-index says more). The index is the broker's business, not the
    // suite's; without it the long run measures the broker's scans.
    let indexed = Command::new(
        std::env::current_dir()
            .unwrap()
            .join("scripts/tansu-sqlite-index"),
    )
    .arg(dir.join("tansu.db"))
    .status()
    .await
    .expect("python3 runs scripts/tansu-sqlite-index");
    assert!(indexed.success(), "the broker's sqlite index");
    for part in PARTS {
        let status = world.command(part).arg("migrate").status().await.unwrap();
        assert!(status.success(), "crm-{part} migrate");
    }
    for part in PARTS {
        world.start(part);
    }
    world
        .wait_ready(&http, &PARTS, Duration::from_secs(120))
        .await;
    let created = world
        .command("gateway")
        .args(["create-tenant", "--id", "acme"])
        .output()
        .await
        .unwrap();
    let tenant: Value = serde_json::from_slice(&created.stdout).expect("create-tenant prints JSON");
    let key = tenant["api_key"].as_str().unwrap().to_owned();
    let gateway = world.url("gateway");
    let r = http
        .put(format!("{gateway}/v1/loyalty/programme"))
        .bearer_auth(&key)
        .header("Idempotency-Key", unique_id())
        .json(&json!({"earn_rate": 1, "expiry_days": 3650}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "programme");
    let r = http
        .post(format!("{gateway}/v1/segments"))
        .bearer_auth(&key)
        .json(&json!({"name": "buyers", "rule": {"event": {"name": "Order Completed", "at_least": 1, "within_days": 365}}}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let segment: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "segment: {segment}");
    let segment_id = segment["segment"]["id"].as_str().unwrap().to_owned();

    // Malformed messages straight to the ingest topic: the only dead letters allowed.
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", world.brokers())
        .create()
        .unwrap();
    let ingest = format!("{}crm.ingest.v1", world.prefix());
    for n in 0..BAD_MESSAGES {
        let payload = format!("{{\"not an envelope\": {n}");
        raw.send(
            FutureRecord::to(&ingest).key("bad").payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    }
    drop(raw);

    // Traffic in the background: every batch until accepted; every tenth batch sent twice. It
    // keeps in step with the faults: fault k starts once step × (k + 1) batches are in, and the
    // sender does not go past the next boundary before fault k is over, so traffic flows
    // through every fault and after it.
    let traffic = traffic(&args);
    let total_batches = traffic.batches.len();
    let mut faults: Vec<Fault> = Vec::new();
    let mut plan: Vec<String> = PARTS.iter().map(|p| format!("kill -9 {p}")).collect();
    plan.insert(3, "restart the broker".into());
    if args.postgres_restart {
        plan.insert(5, "restart PostgreSQL".into());
    }
    let step = total_batches / (plan.len() + 1);
    let sent = Arc::new(AtomicUsize::new(0));
    let resent = Arc::new(AtomicUsize::new(0));
    let faults_done = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (http, key, gateway) = (http.clone(), key.clone(), gateway.clone());
        let (sent, resent, done) = (
            Arc::clone(&sent),
            Arc::clone(&resent),
            Arc::clone(&faults_done),
        );
        let batches = traffic.batches.clone();
        let planned = plan.len();
        let pause =
            (args.rate > 0).then(|| Duration::from_secs_f64(BATCH as f64 / args.rate as f64));
        tokio::spawn(async move {
            let mut next = Instant::now();
            for (n, batch) in batches.iter().enumerate() {
                if let Some(pause) = pause {
                    next += pause;
                    tokio::time::sleep_until(next.into()).await;
                }
                let needed = (n / step).saturating_sub(1).min(planned);
                while done.load(Ordering::Relaxed) < needed {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                send(&http, &gateway, &key, batch).await;
                if n % 10 == 0 {
                    send(&http, &gateway, &key, batch).await;
                    resent.fetch_add(batch.len(), Ordering::Relaxed);
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // Faults, spread over the traffic.
    for (n, fault) in plan.iter().enumerate() {
        while sent.load(Ordering::Relaxed) < step * (n + 1) {
            assert!(
                !sender.is_finished(),
                "the sender stopped before fault {}",
                n + 1
            );
            assert!(run_started.elapsed() < args.budget, "over the time budget");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let started = Instant::now();
        if let Some(part) = fault.strip_prefix("kill -9 ") {
            let part = PARTS.into_iter().find(|p| *p == part).unwrap();
            world.kill(part).await;
            world.start(part);
            world
                .wait_ready(&http, &[part], Duration::from_secs(120))
                .await;
            if CONSUMING.contains(&part) {
                // Consuming again: its count of applied messages grows.
                let pool = crm_service::db::connect(&world.database_url(part), 1)
                    .await
                    .unwrap();
                let base: i64 = count(&pool, "SELECT count(*) FROM processed_messages").await;
                while count(&pool, "SELECT count(*) FROM processed_messages").await <= base {
                    assert!(
                        started.elapsed() < Duration::from_secs(300),
                        "{part} consumes nothing after its restart"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                pool.close().await;
            }
        } else if fault == "restart the broker" {
            if let Some(mut b) = world.broker.take() {
                b.start_kill().unwrap();
                let _ = b.wait().await;
            }
            world.start_broker();
            let before = sent.load(Ordering::Relaxed);
            while sent.load(Ordering::Relaxed) <= before {
                assert!(
                    !sender.is_finished(),
                    "the sender stopped during the broker restart"
                );
                assert!(
                    started.elapsed() < Duration::from_secs(300),
                    "no batch accepted after the broker restart"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            let version = std::fs::read_dir("/etc/postgresql")
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .expect("a Debian PostgreSQL cluster under /etc/postgresql");
            let status = Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &version, "main", "restart"])
                .status()
                .await
                .unwrap();
            assert!(status.success(), "pg_ctlcluster restart");
            world
                .wait_ready(&http, &PARTS, Duration::from_secs(300))
                .await;
        }
        let recovered = started.elapsed();
        println!(
            "fault {}: {fault}; recovered in {:.1} s",
            n + 1,
            recovered.as_secs_f64()
        );
        faults.push(Fault {
            what: fault.clone(),
            recovered,
        });
        faults_done.fetch_add(1, Ordering::Relaxed);
        assert!(run_started.elapsed() < args.budget, "over the time budget");
    }
    sender.await.unwrap();
    let sending_done = run_started.elapsed();

    // Quiescence: every event on a timeline, every order earned.
    let pools: HashMap<&str, PgPool> = {
        let mut m = HashMap::new();
        for part in PARTS {
            m.insert(
                part,
                crm_service::db::connect(&world.database_url(part), 2)
                    .await
                    .unwrap(),
            );
        }
        m
    };
    let expected_events = traffic.events.len() as i64;
    let expected_points: i64 = traffic.orders.values().flat_map(|o| o.values()).sum();
    loop {
        let on_timeline = count(
            &pools["identity"],
            "SELECT count(DISTINCT event_id) FROM timeline",
        )
        .await;
        let points = count(
            &pools["loyalty"],
            "SELECT coalesce(sum(balance), 0)::int8 FROM accounts WHERE kind = 'customer'",
        )
        .await;
        let unsent: i64 = {
            let mut n = 0;
            for part in PARTS {
                n += count(
                    &pools[part],
                    "SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL",
                )
                .await;
            }
            n
        };
        if on_timeline == expected_events && points == expected_points && unsent == 0 {
            break;
        }
        assert!(
            run_started.elapsed() < args.budget,
            "not settled within the budget: {on_timeline}/{expected_events} events on timelines, {points}/{expected_points} points, {unsent} outbox messages unsent"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Give the segment's consumer a moment past the points (it is a separate part).
    let buyers = traffic.orders.len() as i64;
    let members_sql =
        format!("SELECT count(*) FROM memberships WHERE segment_id = '{segment_id}'::uuid");
    while count(&pools["segmentation"], &members_sql).await != buyers {
        assert!(run_started.elapsed() < args.budget, "segment not settled");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = run_started.elapsed();

    // The checks.
    let mut failures = Vec::new();
    let duplicated = count(
        &pools["identity"],
        "SELECT count(*) FROM (SELECT event_id FROM timeline GROUP BY event_id HAVING count(*) > 1) d",
    )
    .await;
    let on_timeline = count(
        &pools["identity"],
        "SELECT count(DISTINCT event_id) FROM timeline",
    )
    .await;
    let lost = expected_events - on_timeline;
    if duplicated != 0 || lost != 0 {
        failures.push(format!(
            "timeline: {lost} events lost, {duplicated} duplicated"
        ));
    }
    // Each customer's balance is the sum of its distinct orders.
    let users: Vec<(String, uuid::Uuid)> =
        sqlx::query_as("SELECT value, customer_id FROM identifiers WHERE kind = 'user_id'")
            .fetch_all(&pools["identity"])
            .await
            .unwrap();
    let customer_of: HashMap<String, uuid::Uuid> = users.into_iter().collect();
    // ... and each on its own customer's timeline.
    let entries: Vec<(String, uuid::Uuid)> =
        sqlx::query_as("SELECT event_id, customer_id FROM timeline")
            .fetch_all(&pools["identity"])
            .await
            .unwrap();
    let misplaced = entries
        .iter()
        .filter(|(event, customer)| {
            traffic
                .events
                .get(event)
                .and_then(|user| customer_of.get(user))
                != Some(customer)
        })
        .count();
    if misplaced != 0 {
        failures.push(format!(
            "{misplaced} timeline entries on another customer's timeline"
        ));
    }
    let balances: Vec<(uuid::Uuid, i64)> =
        sqlx::query_as("SELECT customer_id, balance FROM accounts WHERE kind = 'customer'")
            .fetch_all(&pools["loyalty"])
            .await
            .unwrap();
    let balance_of: HashMap<uuid::Uuid, i64> = balances.into_iter().collect();
    let mut wrong_balances = 0;
    for (user, orders) in &traffic.orders {
        let expected: i64 = orders.values().sum();
        let got = customer_of
            .get(user)
            .and_then(|c| balance_of.get(c))
            .copied()
            .unwrap_or(0);
        if got != expected {
            wrong_balances += 1;
        }
    }
    if wrong_balances != 0 {
        failures.push(format!(
            "{wrong_balances} balances differ from their orders' points"
        ));
    }
    let verify = world
        .command("loyalty")
        .arg("verify")
        .output()
        .await
        .unwrap();
    if !verify.status.success() {
        failures.push(format!(
            "crm-loyalty verify: {}",
            String::from_utf8_lossy(&verify.stdout)
        ));
    }
    // The segment: exactly the buyers.
    let members: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
        "SELECT customer_id FROM memberships WHERE segment_id = '{segment_id}'::uuid"
    ))
    .fetch_all(&pools["segmentation"])
    .await
    .unwrap();
    let members: BTreeSet<uuid::Uuid> = members.into_iter().collect();
    let expected_members: BTreeSet<uuid::Uuid> = traffic
        .orders
        .keys()
        .filter_map(|u| customer_of.get(u).copied())
        .collect();
    if members != expected_members {
        failures.push(format!(
            "segment: {} members, {} buyers",
            members.len(),
            expected_members.len()
        ));
    }
    // A full recompute of the segment agrees with what the stream kept: it changes nothing.
    // The recompute is a job: queued, then followed until it ends.
    let queued: Value = http
        .post(format!(
            "{}/internal/v1/tenants/acme/segments/{segment_id}/recompute",
            world.url("segmentation")
        ))
        .header(crm_service::SERVICE_TOKEN_HEADER, SERVICE_TOKEN)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = queued["job_id"]
        .as_str()
        .and_then(|j| j.strip_prefix("segmentation-"))
        .unwrap_or_else(|| panic!("the recompute was not queued: {queued}"))
        .to_owned();
    let started = Instant::now();
    let recomputed: Value = loop {
        let view: Value = http
            .get(format!(
                "{}/internal/v1/tenants/acme/jobs/{job}",
                world.url("segmentation")
            ))
            .header(crm_service::SERVICE_TOKEN_HEADER, SERVICE_TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["status"] == "succeeded" || view["status"] == "failed" {
            break view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the recompute job did not end in 300 s: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (entered, exited) = (
        recomputed["result"]["entered"].as_u64(),
        recomputed["result"]["exited"].as_u64(),
    );
    if recomputed["status"] != "succeeded" || entered != Some(0) || exited != Some(0) {
        failures.push(format!(
            "a full recompute changed the segment: {recomputed}"
        ));
    }
    let mut unsent = 0;
    for part in PARTS {
        unsent += count(
            &pools[part],
            "SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL",
        )
        .await;
    }
    if unsent != 0 {
        failures.push(format!("{unsent} outbox messages unpublished"));
    }
    let mut dead = BTreeMap::new();
    for topic in [
        "crm.ingest.v1",
        "crm.events.v1",
        "crm.profiles.v1",
        "crm.segments.v1",
        "crm.loyalty.v1",
        "crm.interactions.v1",
    ] {
        let name = format!("{}{topic}.dlq", world.prefix());
        let n = messages_in(&world.brokers(), &name);
        if n > 0 {
            dead.insert(topic, n);
        }
    }
    let expected_dead = BTreeMap::from([("crm.ingest.v1", BAD_MESSAGES as i64)]);
    if dead != expected_dead {
        failures.push(format!("dead letters {dead:?}, expected {expected_dead:?}"));
    }

    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| events accepted (distinct) | {expected_events} |");
    println!(
        "| events re-sent by the client | {} |",
        resent.load(Ordering::Relaxed)
    );
    println!("| events lost | {lost} |");
    println!("| events duplicated | {duplicated} |");
    println!("| events on the wrong customer's timeline | {misplaced} |");
    println!(
        "| balances wrong | {wrong_balances} of {} buyers |",
        traffic.orders.len()
    );
    println!("| dead letters | {dead:?} (the {BAD_MESSAGES} malformed sent) |");
    println!(
        "| full recompute of the segment: entered / exited | {} / {} |",
        entered.map_or("?".into(), |n| n.to_string()),
        exited.map_or("?".into(), |n| n.to_string())
    );
    println!("| faults injected | {} |", faults.len());
    for f in &faults {
        println!(
            "| recovery: {} | {:.1} s |",
            f.what,
            f.recovered.as_secs_f64()
        );
    }
    println!("| sending took | {:.1} s |", sending_done.as_secs_f64());
    println!("| settled after | {:.1} s |", settled.as_secs_f64());
    for part in PARTS {
        world.kill(part).await;
    }
    if let Some(mut b) = world.broker.take() {
        let _ = b.start_kill();
        let _ = b.wait().await;
    }
    if failures.is_empty() {
        println!("chaos run passed");
    } else {
        for f in &failures {
            println!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}
