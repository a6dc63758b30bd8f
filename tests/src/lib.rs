//! Test harness: starts the five parts in-process on port 0, each test with its own databases
//! (`crm_test_<id>_<part>`), topic prefix and consumer groups (`t<id>.`), and Redis prefix, so
//! tests run in parallel against one PostgreSQL, Redis and broker.
//!
//! The broker is `CRM_TEST_KAFKA_BROKERS` (default `127.0.0.1:9092`), PostgreSQL
//! `CRM_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432`), Redis
//! `CRM_TEST_REDIS` (default `redis://127.0.0.1:6379`). `scripts/test` starts a broker when none runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

/// The parts' allocator (their `main.rs`), so that the suites and benchmarks that run parts in
/// this process measure what a deployment runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod conformance;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_cache::{CacheConfig, ProfileCache};
use crm_kafka::KafkaConfig;
use crm_service::CommonConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn brokers() -> String {
    std::env::var("CRM_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn postgres() -> String {
    std::env::var("CRM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn redis_url() -> String {
    std::env::var("CRM_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The campaign part as the tests run it: mail to the local SMTP server
/// (`CRM_TEST_SMTP_URL`, default `smtp://127.0.0.1:2525`), tracking links under
/// [`TRACKING_BASE`], private webhook targets allowed (local receivers), fast ticks.
fn campaign_config(common: crm_service::CommonConfig) -> crm_campaign::Config {
    crm_campaign::Config {
        smtp_url: std::env::var("CRM_TEST_SMTP_URL")
            .unwrap_or_else(|_| "smtp://127.0.0.1:2525".to_owned()),
        public_url: TRACKING_BASE.to_owned(),
        allow_private_targets: true,
        tick: Duration::from_millis(100),
        profile_grace: Duration::from_secs(2),
        ..crm_campaign::Config::with_defaults(common)
    }
}

/// The gateway's webhook settings in tests: local receivers allowed, a short retry schedule
/// (50 ms, 100 ms, 200 ms, then failed), endpoints disabled after failing for 3 s, a quick
/// tick.
pub fn test_webhook_settings() -> crm_gateway::webhooks::Settings {
    crm_gateway::webhooks::Settings {
        allow_private_targets: true,
        timeout: Duration::from_secs(5),
        retry_schedule: vec![
            Duration::from_millis(50),
            Duration::from_millis(100),
            Duration::from_millis(200),
        ],
        tick: Duration::from_millis(100),
        disable_after: Duration::from_secs(3),
        ..crm_gateway::webhooks::Settings::default()
    }
}

/// Every message the local SMTP server received for `to` (raw, headers and body).
pub fn mail_to(to: &str) -> Vec<String> {
    let dir = std::env::var("CRM_TEST_MAIL_DIR")
        .expect("CRM_TEST_MAIL_DIR: run through scripts/test, which starts the SMTP server");
    mail_in(std::path::Path::new(&dir), to)
}

/// Every message an SMTP server writing to `dir` (scripts/smtp-sink) received for `to`.
pub fn mail_in(dir: &std::path::Path, to: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter(|m| {
            m.lines()
                .next()
                .is_some_and(|l| l.strip_prefix("X-Sink-Rcpt: ") == Some(to))
        })
        .collect()
}

/// A header's value in a raw message.
pub fn mail_header<'m>(mail: &'m str, name: &str) -> Option<&'m str> {
    mail.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

/// The base of tracking links in the tests' mail (replace it with the gateway's address).
pub const TRACKING_BASE: &str = "http://tracking.crm.test";

/// Settings of one part for test `id`.
pub fn part_config(id: &str, part: &str, redis: &str) -> CommonConfig {
    let mut kafka = KafkaConfig {
        session_timeout: Duration::from_secs(6),
        ..KafkaConfig::local(&brokers(), &format!("t{id}."))
    };
    // A benchmark compares lanes by setting it; the parts' default otherwise.
    if let Some(lanes) = std::env::var("CRM_KAFKA__LANES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        kafka.lanes = lanes;
    }
    CommonConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: format!("{}/crm_test_{id}_{part}", postgres()),
        database_pool: 5,
        migrate_on_start: true,
        outbox_poll: Duration::from_millis(50),
        http: crm_service::limits::HttpLimits::default(),
        kafka,
        redis: CacheConfig {
            url: redis.to_owned(),
            prefix: format!("t{id}"),
            ttl: Duration::from_secs(3600),
            timeout: Duration::from_millis(250),
            tombstone_ttl: Duration::from_secs(600),
        },
        service_token: Some(crm_service::ServiceToken::new(SERVICE_TOKEN).unwrap()),
    }
}

/// The service token of every test deployment.
pub const SERVICE_TOKEN: &str = "test-service-token-0123456789abcdef";

/// Messages in a part's outbox not yet published (the `outbox_messages` view, whichever form
/// holds them).
pub async fn unsent_messages(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A short unique id for one test's resources.
pub fn unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Options for [`Suite::start_with`].
#[derive(Default)]
pub struct SuiteOptions {
    /// Redis URL for every part (default: the shared one).
    pub redis: Option<String>,
    /// Run campaign as its own process (the `crm-campaign` binary), so a test can kill it
    /// with SIGKILL ([`Suite::kill_campaign`]) and start it again ([`Suite::start_campaign`]).
    pub campaign_process: Option<CampaignProcess>,
}

/// How the campaign process runs.
#[derive(Debug, Clone)]
pub struct CampaignProcess {
    /// Its SMTP relay.
    pub smtp_url: String,
    /// `CRM_CAMPAIGN__SEND_LEASE_SECS`.
    pub send_lease_secs: u64,
}

/// The campaign part as a child process: its command (same port, database and consumer
/// group every start) and the running child.
struct CampaignChild {
    command: std::process::Command,
    url: String,
    child: Option<tokio::process::Child>,
    log: std::path::PathBuf,
}

impl CampaignChild {
    fn new(id: &str, redis: &str, options: &CampaignProcess) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        // The binary beside the test's own (`target/<profile>/crm-campaign`): cargo builds it
        // for the campaign package's integration tests.
        let exe = std::env::current_exe().unwrap();
        let bin = exe
            .parent()
            .and_then(|deps| deps.parent())
            .unwrap()
            .join("crm-campaign");
        assert!(
            bin.exists(),
            "{} is missing: `cargo build -p crm-campaign` first",
            bin.display()
        );
        let mut command = std::process::Command::new(bin);
        command
            .arg("serve")
            .env(
                "CRM_CAMPAIGN__DATABASE_URL",
                format!("{}/crm_test_{id}_campaign", postgres()),
            )
            .env("CRM_CAMPAIGN__LISTEN", format!("127.0.0.1:{port}"))
            .env("CRM_CAMPAIGN__DATABASE_POOL", "5")
            .env("CRM_CAMPAIGN__SMTP_URL", &options.smtp_url)
            .env("CRM_CAMPAIGN__PUBLIC_URL", TRACKING_BASE)
            .env("CRM_CAMPAIGN__ALLOW_PRIVATE_TARGETS", "true")
            .env("CRM_CAMPAIGN__TICK_MS", "100")
            .env("CRM_CAMPAIGN__PROFILE_GRACE_MS", "2000")
            .env(
                "CRM_CAMPAIGN__SEND_LEASE_SECS",
                options.send_lease_secs.to_string(),
            )
            .env("CRM_KAFKA__BROKERS", brokers())
            .env("CRM_KAFKA__TOPIC_PREFIX", format!("t{id}."))
            // Static membership, with the parts' default session timeout (at 6 s, tansu 0.6
            // was seen rebalancing a lone static member every 6 s).
            .env("CRM_KAFKA__INSTANCE_ID", format!("t{id}-campaign"))
            // As the in-process parts made the topics (a different count would make the
            // process see partitions appear and disappear).
            .env("CRM_KAFKA__PARTITIONS", "2")
            .env("CRM_KAFKA__FETCH_WAIT_MS", "10")
            .env("CRM_REDIS__URL", redis)
            .env("CRM_REDIS__PREFIX", format!("t{id}"))
            .env("CRM_SERVICE_TOKEN", SERVICE_TOKEN)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null());
        let log = std::env::temp_dir().join(format!("crm-test-{id}-campaign.log"));
        eprintln!("the campaign process logs to {}", log.display());
        CampaignChild {
            command,
            url: format!("http://127.0.0.1:{port}"),
            child: None,
            log,
        }
    }

    async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.command.stdout(log.try_clone().unwrap()).stderr(log);
        let mut command = tokio::process::Command::from(std::mem::replace(
            &mut self.command,
            std::process::Command::new("true"),
        ));
        self.child = Some(command.kill_on_drop(true).spawn().unwrap());
        self.command = command.into_std();
        let http = reqwest::Client::new();
        eventually_within(
            "the campaign process is ready",
            Duration::from_secs(60),
            || {
                let (http, url) = (http.clone(), self.url.clone());
                async move {
                    http.get(format!("{url}/readyz"))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ())
                }
            },
        )
        .await;
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap(); // SIGKILL
            child.wait().await.unwrap();
        }
    }
}

/// The five parts, running.
pub struct Suite {
    pub id: String,
    pub tenant: String,
    /// Admin key of `tenant`.
    pub key: String,
    pub gateway: String,
    pub identity: String,
    pub segmentation: String,
    pub campaign: String,
    pub loyalty: String,
    pub redis: String,
    pub http: reqwest::Client,
    pub gateway_pool: sqlx::PgPool,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    campaign_child: Option<tokio::sync::Mutex<CampaignChild>>,
    /// The gateway's `/openapi.json`: every answer through the helpers is checked against it.
    conformance: Arc<conformance::Conformance>,
}

fn spawn<F>(tasks: &mut Vec<JoinHandle<()>>, f: F)
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tasks.push(tokio::spawn(async move {
        if let Err(e) = f.await {
            eprintln!("part failed: {e:#}");
        }
    }));
}

impl Suite {
    pub async fn start() -> Suite {
        Self::start_with(SuiteOptions::default()).await
    }

    pub async fn start_with(options: SuiteOptions) -> Suite {
        crm_telemetry::init_for_tests();
        let id = unique_id();
        let redis = options.redis.unwrap_or_else(redis_url);
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let url = |port: u16| format!("http://127.0.0.1:{port}");

        let identity = crm_identity::build(crm_identity::Config {
            common: part_config(&id, "identity", &redis),
        })
        .await
        .expect("identity starts");
        let identity_url = url(identity.port());
        spawn(&mut tasks, identity.run(shutdown.clone()));

        let segmentation = crm_segmentation::build(crm_segmentation::Config {
            common: part_config(&id, "segmentation", &redis),
            recheck_tick: Duration::from_millis(200),
            scoring_interval: None,
        })
        .await
        .expect("segmentation starts");
        let segmentation_url = url(segmentation.port());
        spawn(&mut tasks, segmentation.run(shutdown.clone()));

        let loyalty = crm_loyalty::build(crm_loyalty::Config {
            common: part_config(&id, "loyalty", &redis),
            scheduler_tick: Duration::from_millis(200),
        })
        .await
        .expect("loyalty starts");
        let loyalty_url = url(loyalty.port());
        spawn(&mut tasks, loyalty.run(shutdown.clone()));

        let (campaign_url, campaign_child) = match &options.campaign_process {
            Some(process) => {
                let mut child = CampaignChild::new(&id, &redis, process);
                child.start().await;
                (child.url.clone(), Some(tokio::sync::Mutex::new(child)))
            }
            None => {
                let config = campaign_config(part_config(&id, "campaign", &redis));
                let campaign = crm_campaign::build(config).await.expect("campaign starts");
                let campaign_url = url(campaign.port());
                spawn(&mut tasks, campaign.run(shutdown.clone()));
                (campaign_url, None)
            }
        };

        let gateway_config = crm_gateway::Config {
            common: part_config(&id, "gateway", &redis),
            identity_url: identity_url.clone(),
            segmentation_url: segmentation_url.clone(),
            loyalty_url: loyalty_url.clone(),
            campaign_url: campaign_url.clone(),
            upstream_timeout: Duration::from_secs(2),
            webhooks: test_webhook_settings(),
            survey_answers_per_minute: 20,
        };
        let gateway_pool_url = gateway_config.common.database_url.clone();
        let gateway = crm_gateway::build(gateway_config)
            .await
            .expect("gateway starts");
        let gateway_url = url(gateway.port());
        spawn(&mut tasks, gateway.run(shutdown.clone()));

        let gateway_pool = crm_service::db::connect(&gateway_pool_url, 2)
            .await
            .unwrap();
        let tenant = "acme".to_owned();
        let key = crm_gateway::tenants::create_tenant(
            &gateway_pool,
            &crm_envelope::TenantId::parse(&tenant).unwrap(),
            "Acme",
        )
        .await
        .unwrap()
        .api_key;
        // A bounded wait: a call the suite never answers fails the test naming the call,
        // instead of holding it until the runner's limit.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let doc: Value = http
            .get(format!("{gateway_url}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Suite {
            id,
            tenant,
            key,
            gateway: gateway_url,
            identity: identity_url,
            segmentation: segmentation_url,
            campaign: campaign_url,
            loyalty: loyalty_url,
            redis,
            http,
            gateway_pool,
            shutdown,
            tasks,
            campaign_child,
            conformance: Arc::new(conformance::Conformance::new(doc)),
        }
    }

    /// A customer with an email and marketing consent, known to campaign (whose database is
    /// `campaign`): identified through the gateway, then waited for in campaign's mirror, since
    /// profiles and events travel on different topics.
    pub async fn mailable_customer(
        &self,
        campaign: &sqlx::PgPool,
        user: &str,
        email: &str,
    ) -> uuid::Uuid {
        self.ingest(&serde_json::json!({"kind": "identify",
            "identity": {"user_id": user, "email": email},
            "traits": {"first_name": "Ana",
                       "consent": [{"purpose": "marketing", "channel": "email", "granted": true}]}}))
            .await;
        let profile = self.wait_for_customer(user, |_| true).await;
        let id: uuid::Uuid = profile["id"].as_str().unwrap().parse().unwrap();
        eventually(&format!("campaign knows {user}"), || async {
            let row: Option<(Option<String>, sqlx::types::Json<Value>)> =
                sqlx::query_as("SELECT email, consents FROM contacts WHERE customer_id = $1")
                    .bind(id)
                    .fetch_optional(campaign)
                    .await
                    .unwrap();
            row.filter(|(e, c)| e.is_some() && c.0.get("marketing:email").is_some())
        })
        .await;
        id
    }

    /// Kills the campaign process with SIGKILL (a suite started with
    /// [`SuiteOptions::campaign_process`]).
    pub async fn kill_campaign(&self) {
        let child = self
            .campaign_child
            .as_ref()
            .expect("campaign runs as a process");
        child.lock().await.kill().await;
    }

    /// Starts the campaign process again and waits until it is ready.
    pub async fn start_campaign(&self) {
        let child = self
            .campaign_child
            .as_ref()
            .expect("campaign runs as a process");
        child.lock().await.start().await;
    }

    /// POSTs to the gateway's `path` with `key` (and a JSON body, if any).
    pub async fn post(&self, key: &str, path: &str, body: Option<&Value>) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.gateway))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.conforming("POST", path, request.send().await.unwrap())
            .await
    }

    /// `response` to `method path`, after checking it against `/openapi.json`
    /// ([`conformance`]); panics when it does not conform.
    pub async fn conforming(
        &self,
        method: &str,
        path: &str,
        response: reqwest::Response,
    ) -> reqwest::Response {
        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        self.conformance
            .check(method, path, status.as_u16(), &bytes);
        let mut rebuilt = http::Response::builder().status(status).version(version);
        if let Some(h) = rebuilt.headers_mut() {
            *h = headers;
        }
        reqwest::Response::from(rebuilt.body(bytes).unwrap())
    }

    /// Another tenant with its own admin key.
    pub async fn new_tenant(&self, tenant: &str) -> String {
        crm_gateway::tenants::create_tenant(
            &self.gateway_pool,
            &crm_envelope::TenantId::parse(tenant).unwrap(),
            tenant,
        )
        .await
        .unwrap()
        .api_key
    }

    /// A key of `tenant` with `scopes`.
    pub async fn key_with(&self, tenant: &str, scopes: &[crm_gateway::Scope]) -> String {
        crm_gateway::tenants::create_key(
            &self.gateway_pool,
            &crm_envelope::TenantId::parse(tenant).unwrap(),
            "test",
            scopes,
        )
        .await
        .unwrap()
        .api_key
    }

    /// `method path` on the gateway with the admin key and a fresh `Idempotency-Key`: the
    /// status and the JSON body (null when there is none).
    pub async fn admin_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.gateway))
            .bearer_auth(&self.key)
            .header("Idempotency-Key", unique_id());
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        self.conformance
            .check(method.as_str(), path, status, &bytes);
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A call through the gateway with `key` and a fresh `Idempotency-Key`, its answer checked
    /// against `/openapi.json`: the status and the JSON body (null when none).
    pub async fn keyed_call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.gateway))
            .bearer_auth(key)
            .header("Idempotency-Key", unique_id());
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = self
            .conforming(method.as_str(), path, request.send().await.unwrap())
            .await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_events(&self, key: &str, body: &Value) -> reqwest::Response {
        let response = self
            .http
            .post(format!("{}/v1/events", self.gateway))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        self.conforming("POST", "/v1/events", response).await
    }

    pub async fn get(&self, key: Option<&str>, path: &str) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.gateway));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        self.conforming("GET", path, request.send().await.unwrap())
            .await
    }

    /// The profile of `user_id`, once identity has it.
    pub async fn customer_by_user(&self, user_id: &str) -> Option<Value> {
        self.customer_by("user_id", user_id).await
    }

    /// The profile holding identifier `kind` = `value` (`user_id`, `anonymous_id`, `email`).
    pub async fn customer_by(&self, kind: &str, value: &str) -> Option<Value> {
        let body: Value = self
            .http
            .post(format!("{}/v1/customers/lookup", self.gateway))
            .json(&serde_json::json!({ kind: value }))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["items"]
            .as_array()
            .and_then(|items| items.first().cloned())
    }

    /// A connection pool on identity's database, to check what it stored.
    pub async fn identity_pool(&self) -> sqlx::PgPool {
        self.pool_of("identity").await
    }

    /// A pool on `part`'s own database.
    pub async fn pool_of(&self, part: &str) -> sqlx::PgPool {
        let url = part_config(&self.id, part, &self.redis).database_url;
        crm_service::db::connect(&url, 2).await.unwrap()
    }

    /// Waits (up to 60 s) for `user_id`'s profile to satisfy `check`.
    pub async fn wait_for_customer(&self, user_id: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(&format!("profile of {user_id}"), || async {
            self.customer_by_user(user_id).await.filter(|p| check(p))
        })
        .await
    }

    /// The suite's hot-profile cache, as the parts see it.
    pub fn profile_cache(&self) -> ProfileCache {
        ProfileCache::new(CacheConfig {
            url: self.redis.clone(),
            prefix: format!("t{}", self.id),
            ttl: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
            tombstone_ttl: Duration::from_secs(600),
        })
        .unwrap()
    }

    /// Posts `body` with the admin key and checks the gateway accepted it (202).
    pub async fn ingest(&self, body: &Value) {
        let response = self.post_events(&self.key, body).await;
        assert_eq!(response.status(), 202);
    }

    /// The Prometheus text of the part at `base`.
    pub async fn metrics_of(&self, base: &str) -> String {
        self.http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn topic(&self, logical: &str) -> String {
        format!("t{}.{logical}", self.id)
    }

    /// A second replica of every part, on the same databases, topics and consumer groups.
    pub async fn start_replicas(&self) -> Replicas {
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let identity = crm_identity::build(crm_identity::Config {
            common: part_config(&self.id, "identity", &self.redis),
        })
        .await
        .expect("identity replica starts");
        let identity_url = url(identity.port());
        spawn(&mut tasks, identity.run(shutdown.clone()));
        let segmentation = crm_segmentation::build(crm_segmentation::Config {
            common: part_config(&self.id, "segmentation", &self.redis),
            recheck_tick: Duration::from_millis(200),
            scoring_interval: None,
        })
        .await
        .expect("segmentation replica starts");
        let segmentation_url = url(segmentation.port());
        spawn(&mut tasks, segmentation.run(shutdown.clone()));
        let loyalty = crm_loyalty::build(crm_loyalty::Config {
            common: part_config(&self.id, "loyalty", &self.redis),
            scheduler_tick: Duration::from_millis(200),
        })
        .await
        .expect("loyalty replica starts");
        let loyalty_url = url(loyalty.port());
        spawn(&mut tasks, loyalty.run(shutdown.clone()));
        let campaign = crm_campaign::build(campaign_config(part_config(
            &self.id,
            "campaign",
            &self.redis,
        )))
        .await
        .expect("campaign replica starts");
        let campaign_url = url(campaign.port());
        spawn(&mut tasks, campaign.run(shutdown.clone()));
        let gateway = crm_gateway::build(crm_gateway::Config {
            common: part_config(&self.id, "gateway", &self.redis),
            identity_url: identity_url.clone(),
            segmentation_url: segmentation_url.clone(),
            loyalty_url: loyalty_url.clone(),
            campaign_url: campaign_url.clone(),
            upstream_timeout: Duration::from_secs(2),
            webhooks: test_webhook_settings(),
            survey_answers_per_minute: 20,
        })
        .await
        .expect("gateway replica starts");
        let gateway_url = url(gateway.port());
        spawn(&mut tasks, gateway.run(shutdown.clone()));
        Replicas {
            gateway: gateway_url,
            identity: identity_url,
            segmentation: segmentation_url,
            campaign: campaign_url,
            loyalty: loyalty_url,
            shutdown,
            tasks,
        }
    }

    /// Stops every part and waits for them to drain.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

/// Second replicas of the five parts ([`Suite::start_replicas`]).
pub struct Replicas {
    pub gateway: String,
    pub identity: String,
    pub segmentation: String,
    pub campaign: String,
    pub loyalty: String,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Replicas {
    /// Stops the replicas and waits for them to drain.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

/// Identity's handler, counting the messages it applied (batched or one at a time; a
/// redelivery that its dedupe skips counts too).
pub struct Counted {
    pub inner: crm_identity::IngestHandler,
    pub delivered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl crm_kafka::Handler for Counted {
    async fn handle(
        &self,
        envelope: &crm_envelope::Envelope,
        meta: &crm_kafka::MessageMeta,
    ) -> Result<(), crm_kafka::HandleError> {
        self.inner.handle(envelope, meta).await?;
        self.delivered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn handle_batch(
        &self,
        batch: &[crm_kafka::BatchItem],
    ) -> Result<bool, crm_kafka::HandleError> {
        let done = self.inner.handle_batch(batch).await?;
        if done {
            self.delivered
                .fetch_add(batch.len(), std::sync::atomic::Ordering::SeqCst);
        }
        Ok(done)
    }
}

/// Runs identity's consumer loop over `base` with `handler`, as identity's own binary would.
pub fn spawn_identity_consumer<H: crm_kafka::Handler>(
    base: &crm_service::Base,
    handler: H,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    spawn_identity_consumer_with(base, base.config.kafka.clone(), handler, stop)
}

/// [`spawn_identity_consumer`] with Kafka settings of its own (a replica tuned apart).
pub fn spawn_identity_consumer_with<H: crm_kafka::Handler>(
    base: &crm_service::Base,
    kafka: KafkaConfig,
    handler: H,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let (producer, metrics) = (base.producer.clone(), base.metrics.clone());
    tokio::spawn(async move {
        crm_kafka::consumer::run(
            &kafka,
            crm_identity::subscription(),
            handler,
            producer,
            metrics,
            stop,
        )
        .await
    })
}

/// Polls `f` until it returns `Some`, for up to 60 s; panics naming `what` otherwise.
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(what, Duration::from_secs(60), f).await
}

/// [`eventually`] for work whose length grows with the machine's load (an import of a
/// thousand records and its clean-up on a busy 2-core machine): up to `limit`.
pub async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A consumer of physical `topic` from the beginning, in a group of its own.
/// The next message on `consumer` whose envelope `kind` is `kind` (others are skipped), within
/// 60 s.
pub async fn next_of_kind(consumer: &StreamConsumer, kind: &str) -> Value {
    eventually(kind, || async {
        let m = tokio::time::timeout(Duration::from_secs(5), consumer.recv())
            .await
            .ok()?
            .ok()?;
        let v: Value = serde_json::from_slice(m.payload()?).ok()?;
        (v["kind"] == kind).then_some(v)
    })
    .await
}

pub fn test_consumer(topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("test-reader-{}", unique_id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// The value of metric `name` whose labels include every one of `labels`, in Prometheus text.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A Kafka message's UTF-8 headers.
pub fn headers_of<M: Message>(message: &M) -> HashMap<String, String> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .filter_map(|h| {
                    Some((h.key.to_owned(), String::from_utf8(h.value?.to_vec()).ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// PostgreSQL's own `pgbench` TPC-B-like transactions per second on this server (scale 10,
/// 2 clients, 2 threads, 15 s, no TLS), the reference of the throughput benchmarks; `None`
/// when `psql` or `pgbench` is missing.
pub fn pgbench_tps() -> Option<f64> {
    let server = postgres();
    let admin = |sql: &str| {
        std::process::Command::new("psql")
            .args([&format!("{server}/postgres"), "-qc", sql])
            .status()
            .ok()
    };
    admin("DROP DATABASE IF EXISTS crm_bench_pgbench")?;
    admin("CREATE DATABASE crm_bench_pgbench")?;
    // Without TLS, like the parts' own connections.
    let db = format!("{server}/crm_bench_pgbench?sslmode=disable");
    std::process::Command::new("pgbench")
        .args(["-i", "-q", "-s", "10", &db])
        .output()
        .ok()?;
    let out = std::process::Command::new("pgbench")
        .args(["-c", "2", "-j", "2", "-T", "15", "-n", &db])
        .output()
        .ok()?;
    admin("DROP DATABASE IF EXISTS crm_bench_pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Produces `envelopes` to `topic`, at most 2,000 in flight, and returns the seconds it took.
pub async fn produce_all(
    producer: &crm_kafka::Producer,
    topic: crm_envelope::Topic,
    envelopes: impl IntoIterator<Item = crm_envelope::Envelope>,
) -> f64 {
    let started = Instant::now();
    let mut sends = Vec::new();
    for envelope in envelopes {
        let producer = producer.clone();
        sends.push(tokio::spawn(async move {
            producer.send_envelope(topic, &envelope).await.unwrap();
        }));
        if sends.len() >= 2_000 {
            for s in sends.drain(..) {
                s.await.unwrap();
            }
        }
    }
    for s in sends {
        s.await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

/// Starts a part (`run` given its shutdown token), waits until it has applied `n` more
/// messages ([`wait_applied`]), then stops it (30 s at most).
pub async fn run_until_applied<F>(
    pool: &sqlx::PgPool,
    consumer: Option<&str>,
    n: usize,
    verb: &str,
    run: impl FnOnce(CancellationToken) -> F,
) -> Applied
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(shutdown.clone()));
    let applied = wait_applied(pool, consumer, n, verb).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    applied
}

/// How a backlog was applied: the whole wait, and the rate from the first message applied to
/// the last (the consumer's start and group join left out).
#[derive(Debug, Clone, Copy)]
pub struct Applied {
    /// Seconds from the call to the last message applied.
    pub seconds: f64,
    /// Messages per second once the first was applied.
    pub steady_per_s: f64,
}

/// Waits until `processed_messages` holds `n` rows (of `consumer`, or of every consumer) more
/// than when called, printing progress every 2 s with `verb`.
pub async fn wait_applied(
    pool: &sqlx::PgPool,
    consumer: Option<&str>,
    n: usize,
    verb: &str,
) -> Applied {
    let count = || async {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM processed_messages WHERE $1::text IS NULL OR consumer = $1",
        )
        .bind(consumer)
        .fetch_one(pool)
        .await
        .unwrap();
        done as usize
    };
    let before = count().await;
    let started = Instant::now();
    let mut first: Option<(Instant, usize)> = None;
    let mut last_report = Instant::now();
    loop {
        let done = count().await - before;
        if done > 0 && first.is_none() {
            first = Some((Instant::now(), done));
        }
        if done >= n {
            let (at, already) = first.unwrap_or((started, 0));
            let steady = (n - already) as f64 / at.elapsed().as_secs_f64().max(1e-3);
            return Applied {
                seconds: started.elapsed().as_secs_f64(),
                steady_per_s: steady,
            };
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "stuck at {done}"
        );
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            println!(
                "  {:>5.1} s: {done} {verb}",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
