//! Campaign: journeys and the channels that carry them (Interact). It mirrors what journeys
//! read about each customer from the topics, runs journeys on events, segment and stage
//! changes and timers, passes every message through the send gate, delivers it over SMTP, an
//! HTTP provider or a signed webhook, and publishes every contact on `crm.interactions.v1`.
//! It also decides offers for each customer in real time and records their outcomes
//! (Personalize).

#![forbid(unsafe_code)]

mod api;
pub mod channels;
pub mod cli;
mod consumer;
pub mod conversations;
pub mod domain;
pub mod engine;
pub mod interactions;
pub mod journeys;
pub mod offers;
pub mod pipeline;
mod schedule;
pub mod send_gate;
pub mod store;
pub mod surveys;
pub mod test_sends;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use channels::deliver::{Delivery, Tracking};
use channels::guard::Guard;
use channels::smtp::Smtp;
use domain::tracking::TrackingKey;

use crm_config::{ConfigError, Env};
use crm_envelope::Topic;
use crm_kafka::consumer::Subscription;
use crm_service::{Base, CommonConfig, ConsumerApp, PartConfig, PartServer};

pub use api::bodies;
pub use consumer::CampaignHandler;

/// The part's name: database `crm_campaign`, group `crm-campaign`, `CRM_CAMPAIGN__*`.
pub const PART: &str = "campaign";
/// Default HTTP port.
pub const DEFAULT_PORT: u16 = 8083;
/// The part's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The part's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address, database, Kafka, Redis.
    pub common: CommonConfig,
    /// The SMTP relay (`CRM_CAMPAIGN__SMTP_URL`, default `smtp://127.0.0.1:2525`; `smtps://`
    /// or `?tls=required` for TLS).
    pub smtp_url: String,
    /// The gateway's public address, which tracking links point at
    /// (`CRM_CAMPAIGN__PUBLIC_URL`, default `http://127.0.0.1:8080`).
    pub public_url: String,
    /// The key that signs tracking links (`CRM_CAMPAIGN__TRACKING_KEY`, at least 32
    /// characters; default: derived from the service token).
    pub tracking_key: Option<String>,
    /// Days a tracking link stays valid (`CRM_CAMPAIGN__TRACKING_TTL_DAYS`, default 90).
    pub tracking_ttl_days: u32,
    /// Whether webhooks and providers may reach private and loopback addresses
    /// (`CRM_CAMPAIGN__ALLOW_PRIVATE_TARGETS`, default false; true only for local receivers).
    pub allow_private_targets: bool,
    /// Timer workers per replica (`CRM_CAMPAIGN__TIMER_WORKERS`, default 4).
    pub timer_workers: usize,
    /// Due timers fired per transaction (`CRM_CAMPAIGN__TIMER_BATCH`, default 200).
    pub timer_batch: i64,
    /// How often timers and queued messages are looked for when idle
    /// (`CRM_CAMPAIGN__TICK_MS`, default 1000).
    pub tick: Duration,
    /// Messages sent at once per replica (`CRM_CAMPAIGN__SEND_CONCURRENCY`, default 16).
    pub send_concurrency: usize,
    /// How long a send waits for a customer's profile that its trigger event overtook on
    /// another topic (`CRM_CAMPAIGN__PROFILE_GRACE_MS`, default 30000).
    pub profile_grace: Duration,
    /// How long a message may stay `sending` before a crash is assumed and it is recorded as
    /// `send_interrupted`, never sent again (`CRM_CAMPAIGN__SEND_LEASE_SECS`, default 120; keep
    /// it above the 30 s SMTP and 10 s HTTP timeouts, so a slow send is not taken for a crash).
    pub send_lease: Duration,
    /// How long a replica keeps a tenant's offer catalogue in memory before reading it again
    /// (`CRM_CAMPAIGN__CATALOGUE_TTL_MS`, default 5000): a change made through another
    /// replica reaches decisions here within this time.
    pub catalogue_ttl: Duration,
    /// How long a replica keeps a tenant's offer statistics (each offer's impressions and
    /// acceptances per cohort, the propensity model's evidence) before reading them again
    /// (`CRM_CAMPAIGN__OFFER_STATS_TTL_MS`, default 1000): the model learns from outcomes at
    /// most this late. Caps, budgets and suppression are always counted exactly.
    pub offer_stats_ttl: Duration,
    /// How old an open lead's stored priority (the work queue's order) may grow before a pass
    /// recomputes it (`CRM_CAMPAIGN__PRIORITY_REFRESH_SECS`, default 300).
    pub priority_refresh: Duration,
}

impl Config {
    /// The defaults of every setting but the common ones (what `from_env` gives with no
    /// `CRM_CAMPAIGN__*` variable set).
    pub fn with_defaults(common: CommonConfig) -> Self {
        Self {
            common,
            smtp_url: "smtp://127.0.0.1:2525".to_owned(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            tracking_key: None,
            tracking_ttl_days: 90,
            allow_private_targets: false,
            timer_workers: 4,
            timer_batch: 200,
            tick: Duration::from_millis(1_000),
            send_concurrency: 16,
            profile_grace: Duration::from_secs(30),
            send_lease: Duration::from_secs(120),
            catalogue_ttl: Duration::from_secs(5),
            offer_stats_ttl: Duration::from_secs(1),
            priority_refresh: Duration::from_secs(300),
        }
    }
}

impl PartConfig for Config {
    /// Reads `CRM_CAMPAIGN__*`, `CRM_KAFKA__*`, `CRM_REDIS__*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env(env, PART, DEFAULT_PORT)?,
            smtp_url: env.url_or(
                "CRM_CAMPAIGN__SMTP_URL",
                "smtp://127.0.0.1:2525",
                &["smtp", "smtps"],
            )?,
            public_url: env.string_or("CRM_CAMPAIGN__PUBLIC_URL", "http://127.0.0.1:8080"),
            tracking_key: env.raw("CRM_CAMPAIGN__TRACKING_KEY").map(str::to_owned),
            tracking_ttl_days: env.ranged_or("CRM_CAMPAIGN__TRACKING_TTL_DAYS", 90, 1..=3650)?,
            allow_private_targets: env.get_or("CRM_CAMPAIGN__ALLOW_PRIVATE_TARGETS", false)?,
            timer_workers: env.ranged_or("CRM_CAMPAIGN__TIMER_WORKERS", 4, 1..=64)?,
            timer_batch: env.ranged_or("CRM_CAMPAIGN__TIMER_BATCH", 200, 1..=10_000)?,
            tick: env.millis_or("CRM_CAMPAIGN__TICK_MS", 1_000)?,
            send_concurrency: env.ranged_or("CRM_CAMPAIGN__SEND_CONCURRENCY", 16, 1..=256)?,
            profile_grace: env.millis_or("CRM_CAMPAIGN__PROFILE_GRACE_MS", 30_000)?,
            send_lease: Duration::from_secs(env.ranged_or(
                "CRM_CAMPAIGN__SEND_LEASE_SECS",
                120,
                1..=86_400,
            )?),
            catalogue_ttl: env.millis_or("CRM_CAMPAIGN__CATALOGUE_TTL_MS", 5_000)?,
            offer_stats_ttl: env.millis_or("CRM_CAMPAIGN__OFFER_STATS_TTL_MS", 1_000)?,
            priority_refresh: Duration::from_secs(env.ranged_or(
                "CRM_CAMPAIGN__PRIORITY_REFRESH_SECS",
                300,
                1..=86_400,
            )?),
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// The part, connected and bound: `port()`, then `run(shutdown)`.
pub type Application = ConsumerApp<CampaignHandler>;

/// Connects, migrates (when configured), creates topics and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let tracking_key = tracking_key(&config)?;
    let smtp = Smtp::new(&config.smtp_url).map_err(anyhow::Error::msg)?;
    let base = Base::connect(PART, config.common.clone(), &MIGRATOR).await?;
    let (relay, sends) = (base.relay.waker(), Arc::new(Notify::new()));
    let runner = journeys::Runner::new(
        chrono::Duration::from_std(config.profile_grace).unwrap_or(chrono::Duration::seconds(30)),
    );
    let handler = CampaignHandler::new(
        base.pool.clone(),
        runner.clone(),
        relay.clone(),
        sends.clone(),
    );
    let catalogue =
        offers::cache::Catalogue::new(config.catalogue_ttl).with_stats_ttl(config.offer_stats_ttl);
    let guard = Guard {
        allow_private: config.allow_private_targets,
        timeout: Duration::from_secs(10),
    };
    let delivery = Delivery {
        pool: base.pool.clone(),
        smtp,
        guard,
        tracking: Tracking {
            base_url: config.public_url.clone(),
            key: tracking_key,
            ttl: chrono::Duration::days(i64::from(config.tracking_ttl_days)),
        },
        limits: domain::templates::Limits::default(),
        relay: relay.clone(),
        concurrency: config.send_concurrency,
        lease: chrono::Duration::from_std(config.send_lease)
            .unwrap_or(chrono::Duration::seconds(120)),
        metrics: Some(base.metrics.clone()),
        catalogue: catalogue.clone(),
    };
    let replies_wake = Arc::new(Notify::new());
    let replies = conversations::replies::Replies {
        pool: base.pool.clone(),
        smtp: delivery.smtp.clone(),
        lease: delivery.lease,
        guard: delivery.guard,
        relay: relay.clone(),
    };
    let state = api::ApiState {
        pool: base.pool.clone(),
        delivery: delivery.clone(),
        sends: sends.clone(),
        catalogue,
        runner: runner.clone(),
        replies: replies_wake.clone(),
    };
    let job_metrics = base.metrics.clone();
    let mut server = PartServer::bind(base, api::routes(state)).await?;
    for _ in 0..config.timer_workers {
        let (pool, runner, relay, sends) =
            (handler.pool(), runner.clone(), relay.clone(), sends.clone());
        let (tick, batch) = (config.tick, config.timer_batch);
        server = server.with_task(move |shutdown| {
            journeys::timers::run(pool, runner, relay, sends, tick, batch, shutdown)
        });
    }
    let (pool, timed_runner, timed_relay, timed_sends) =
        (handler.pool(), runner.clone(), relay.clone(), sends.clone());
    server = server.with_task(move |shutdown| {
        schedule::timed_journeys(pool, timed_runner, timed_relay, timed_sends, shutdown)
    });
    let (pool, every) = (handler.pool(), config.priority_refresh);
    let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::minutes(5));
    let idle = config.tick.max(Duration::from_secs(5));
    server =
        server.with_task(move |shutdown| pipeline::leads::run_refresh(pool, every, idle, shutdown));
    let pool = handler.pool();
    server = server.with_task(move |shutdown| pipeline::report::run_compact(pool, idle, shutdown));
    let (pool, import_relay) = (handler.pool(), relay.clone());
    server = server.with_task(move |shutdown| {
        let worker = crm_service::jobs::Worker::new(pool.clone(), &[pipeline::imports::JOB])
            .with_metrics(&job_metrics);
        worker.run(shutdown, move |job| {
            let (pool, relay) = (pool.clone(), import_relay.clone());
            async move { pipeline::imports::run_job(&pool, &relay, &job).await }
        })
    });
    let (pool, due_relay, tick) = (handler.pool(), relay.clone(), config.tick);
    server =
        server.with_task(move |shutdown| pipeline::tasks::run_due(pool, due_relay, tick, shutdown));
    server = server
        .with_task(move |shutdown| channels::deliver::run(delivery, sends, tick, 100, shutdown));
    server = server.with_task(move |shutdown| {
        conversations::replies::run(replies, replies_wake, tick, shutdown)
    });
    Ok(ConsumerApp::new(server, subscription(), handler))
}

/// The tracking key: `CRM_CAMPAIGN__TRACKING_KEY`, else one derived from the service token
/// (so a deployment works without a second secret, and rotating the token rotates links).
fn tracking_key(config: &Config) -> anyhow::Result<TrackingKey> {
    let secret = match (&config.tracking_key, &config.common.service_token) {
        (Some(k), _) => k.as_bytes().to_vec(),
        (None, Some(t)) => Sha256::digest(format!("crm-tracking:{}", t.expose())).to_vec(),
        (None, None) => anyhow::bail!(
            "neither CRM_CAMPAIGN__TRACKING_KEY nor CRM_SERVICE_TOKEN is set: tracking links \
             cannot be signed"
        ),
    };
    TrackingKey::new(&secret)
        .ok_or_else(|| anyhow::anyhow!("CRM_CAMPAIGN__TRACKING_KEY must be at least 32 characters"))
}

/// What the part consumes (ARCHITECTURE.md, "Parts").
pub fn subscription() -> Subscription {
    Subscription {
        part: PART,
        topics: vec![
            Topic::Events,
            Topic::Profiles,
            Topic::Segments,
            Topic::Loyalty,
        ],
    }
}
