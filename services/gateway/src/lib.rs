//! The gateway: the suite's only public entry. It authenticates API keys (hashed, scoped, one
//! tenant each), takes events on `POST /v1/events` and produces them to `crm.ingest.v1`, and
//! serves customer profiles from the Redis hot-profile cache, falling back to identity.

#![forbid(unsafe_code)]

mod accounts;
mod auth;
mod cloudevents;
mod customers;
mod events;
mod idempotency;
mod imports;
mod jobs;
mod journeys;
mod keys;
mod loyalty;
mod merges;
mod messaging;
mod offers;
mod openapi;
mod part_client;
mod pipeline;
mod privacy;
mod proxy;
mod reviews;
mod segment;
mod segments;
mod settings;
mod social;
mod suppressions;
mod surveys;
pub mod tenants;
mod timeline;
mod tracking;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use crm_cache::ProfileCache;
use crm_config::{ConfigError, Env};
use crm_envelope::Topic;
use crm_kafka::consumer::Subscription;
use crm_kafka::Producer;
use crm_service::{Base, CommonConfig, ConsumerApp, PartConfig, PartServer};
use sqlx::PgPool;

pub use auth::Scope;
pub use part_client::PartClient;

/// The part's name.
pub const PART: &str = "gateway";
/// Default HTTP port.
pub const DEFAULT_PORT: u16 = 8080;
/// The gateway's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address, database, Kafka, Redis.
    pub common: CommonConfig,
    /// Identity's internal API (`CRM_GATEWAY__IDENTITY_URL`, default `http://127.0.0.1:8081`).
    pub identity_url: String,
    /// Segmentation's internal API (`CRM_GATEWAY__SEGMENTATION_URL`, default
    /// `http://127.0.0.1:8082`).
    pub segmentation_url: String,
    /// Loyalty's internal API (`CRM_GATEWAY__LOYALTY_URL`, default `http://127.0.0.1:8084`).
    pub loyalty_url: String,
    /// Campaign's internal API (`CRM_GATEWAY__CAMPAIGN_URL`, default `http://127.0.0.1:8083`).
    pub campaign_url: String,
    /// Timeout of calls to internal parts (`CRM_GATEWAY__UPSTREAM_TIMEOUT_MS`, default 2000).
    pub upstream_timeout: Duration,
    /// How webhooks are delivered (`CRM_GATEWAY__WEBHOOK_*`).
    pub webhooks: webhooks::Settings,
    /// Survey answers one client address may post per minute through the public `/s/{token}`
    /// route (`CRM_GATEWAY__SURVEY_ANSWERS_PER_MINUTE`, default 20).
    pub survey_answers_per_minute: u32,
}

impl Config {
    /// The defaults of every gateway setting but the common ones.
    pub fn with_defaults(common: CommonConfig) -> Self {
        Self {
            common,
            identity_url: "http://127.0.0.1:8081".to_owned(),
            segmentation_url: "http://127.0.0.1:8082".to_owned(),
            loyalty_url: "http://127.0.0.1:8084".to_owned(),
            campaign_url: "http://127.0.0.1:8083".to_owned(),
            upstream_timeout: Duration::from_secs(2),
            webhooks: webhooks::Settings::default(),
            survey_answers_per_minute: 20,
        }
    }
}

impl PartConfig for Config {
    /// Reads `CRM_GATEWAY__*`, `CRM_KAFKA__*`, `CRM_REDIS__*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env(env, PART, DEFAULT_PORT)?,
            identity_url: env.url_or(
                "CRM_GATEWAY__IDENTITY_URL",
                "http://127.0.0.1:8081",
                &["http", "https"],
            )?,
            segmentation_url: env.url_or(
                "CRM_GATEWAY__SEGMENTATION_URL",
                "http://127.0.0.1:8082",
                &["http", "https"],
            )?,
            loyalty_url: env.url_or(
                "CRM_GATEWAY__LOYALTY_URL",
                "http://127.0.0.1:8084",
                &["http", "https"],
            )?,
            campaign_url: env.url_or(
                "CRM_GATEWAY__CAMPAIGN_URL",
                "http://127.0.0.1:8083",
                &["http", "https"],
            )?,
            upstream_timeout: env.millis_or("CRM_GATEWAY__UPSTREAM_TIMEOUT_MS", 2_000)?,
            webhooks: webhooks::Settings::from_env(env)?,
            survey_answers_per_minute: env.ranged_or(
                "CRM_GATEWAY__SURVEY_ANSWERS_PER_MINUTE",
                20,
                1..=100_000,
            )?,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// What handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub pool: PgPool,
    pub producer: Producer,
    pub cache: Arc<ProfileCache>,
    pub identity: PartClient,
    pub segmentation: PartClient,
    pub loyalty: PartClient,
    pub campaign: PartClient,
    /// How long a call to a part may take (`CRM_GATEWAY__UPSTREAM_TIMEOUT_MS`).
    pub upstream_timeout: std::time::Duration,
    /// How webhooks are delivered.
    pub webhooks: webhooks::Settings,
    /// Wakes this replica's webhook delivery loop (a delivery was queued or replayed).
    pub webhook_queued: Arc<tokio::sync::Notify>,
    /// Survey answers per client address and minute.
    pub survey_answers_per_minute: u32,
}

/// The gateway, connected and bound: `port()`, then `run(shutdown)`. It serves the API,
/// consumes the output topics for webhooks and runs the webhook delivery loop.
pub type Application = ConsumerApp<webhooks::consume::WebhookFanout>;

/// The topics the gateway consumes: every output topic, for webhooks.
pub const CONSUMES: [Topic; 4] = [
    Topic::Profiles,
    Topic::Segments,
    Topic::Loyalty,
    Topic::Interactions,
];

/// Connects, migrates (when configured), creates topics and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let base = Base::connect(PART, config.common, &MIGRATOR).await?;
    let token = base.config.service_token.clone().ok_or_else(|| {
        anyhow::anyhow!("CRM_SERVICE_TOKEN is not set: the gateway needs the parts' service token")
    })?;
    let client = |url: &str| PartClient::new(url, config.upstream_timeout, token.clone());
    let state = AppState {
        pool: base.pool.clone(),
        producer: base.producer.clone(),
        cache: Arc::clone(&base.cache),
        identity: client(&config.identity_url)?,
        segmentation: client(&config.segmentation_url)?,
        loyalty: client(&config.loyalty_url)?,
        campaign: client(&config.campaign_url)?,
        upstream_timeout: config.upstream_timeout,
        webhooks: config.webhooks.clone(),
        webhook_queued: Arc::new(tokio::sync::Notify::new()),
        survey_answers_per_minute: config.survey_answers_per_minute,
    };
    let fanout = webhooks::consume::WebhookFanout {
        pool: base.pool.clone(),
        queued: Arc::clone(&state.webhook_queued),
    };
    let (pool, settings, queued, metrics) = (
        base.pool.clone(),
        config.webhooks,
        Arc::clone(&state.webhook_queued),
        base.metrics.clone(),
    );
    let server = PartServer::bind(base, router(state))
        .await?
        .with_task(move |shutdown| {
            webhooks::deliver::run(pool, settings, queued, metrics, shutdown)
        });
    let subscription = Subscription {
        part: PART,
        topics: CONSUMES.to_vec(),
    };
    Ok(ConsumerApp::new(server, subscription, fanout))
}

fn router(state: AppState) -> Router {
    Router::new()
        .merge(events::routes())
        .merge(segment::routes())
        .merge(cloudevents::routes())
        .merge(customers::routes())
        .merge(accounts::routes())
        .merge(keys::routes())
        .merge(reviews::routes())
        .merge(segments::routes())
        .merge(loyalty::routes())
        .merge(merges::routes())
        .merge(privacy::routes())
        .merge(timeline::routes())
        .merge(settings::routes())
        .merge(imports::routes())
        .merge(jobs::routes())
        .merge(journeys::routes())
        .merge(suppressions::routes())
        .merge(offers::routes())
        .merge(offers::experiment_routes())
        .merge(pipeline::routes())
        .merge(messaging::routes())
        .merge(tracking::routes())
        .merge(social::routes())
        .merge(surveys::routes())
        .merge(webhooks::api::routes())
        .merge(openapi::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(no_nul_in_query))
        .with_state(state)
}

/// 400 for a query string carrying a NUL character (`%00`): no stored text can hold one
/// (PostgreSQL refuses it), so it is refused at the door with a clear answer instead of an
/// error deep inside a part.
async fn no_nul_in_query(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let has_nul = request
        .uri()
        .query()
        .is_some_and(|q| q.to_ascii_lowercase().contains("%00"));
    if has_nul {
        return crm_service::Problem::new(
            axum::http::StatusCode::BAD_REQUEST,
            crm_service::Code::InvalidQuery,
            "the query string holds a NUL character (%00), which no field can store; remove it",
        )
        .into_response();
    }
    next.run(request).await
}
