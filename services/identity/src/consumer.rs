//! Identity's consumers: of `crm.ingest.v1`, each poll's events resolved in one transaction by
//! the [`Resolver`], once per event id; and of `crm.interactions.v1`, campaign's contacts
//! (journeys entered and exited, messages sent, skipped, delivered, opened, clicked, bounced)
//! put on the customer's timeline beside their events ([`TimelineHandler`]).

use crm_envelope::{Envelope, Topic};
use crm_kafka::consumer::Subscription;
use crm_kafka::{dedupe, require_customer, BatchItem, HandleError, Handler, MessageMeta};
use crm_service::Base;
use sqlx::PgPool;

use crate::resolve::Resolver;
use crate::store::{profile, timeline};

/// The consumer of `crm.ingest.v1`.
#[derive(Clone)]
pub struct IngestHandler {
    resolver: Resolver,
}

/// The dedupe record's consumer name.
const CONSUMER: &str = "identity:crm.ingest.v1";

impl IngestHandler {
    /// A handler over the part's database, cache and outbox relay.
    pub fn new(base: &Base) -> Self {
        Self {
            resolver: Resolver::new(base),
        }
    }
}

impl Handler for IngestHandler {
    async fn handle(&self, envelope: &Envelope, _meta: &MessageMeta) -> Result<(), HandleError> {
        self.resolver.resolve(CONSUMER, envelope).await.map(|_| ())
    }

    async fn handle_batch(&self, batch: &[BatchItem]) -> Result<bool, HandleError> {
        self.resolver.resolve_batch(CONSUMER, batch).await?;
        Ok(true)
    }
}

/// The consumer of `crm.interactions.v1` for the timeline: each interaction is recorded on
/// the timeline of the customer it names (the survivor, when that id was merged; nothing for
/// an erased customer), once per message id.
#[derive(Clone)]
pub struct TimelineHandler {
    pool: PgPool,
}

/// What the timeline consumer reads; its consumer group is `crm-identity-timeline`, apart
/// from ingest's, so a slow timeline never holds resolution back.
pub fn timeline_subscription() -> Subscription {
    Subscription {
        part: "identity-timeline",
        topics: vec![Topic::Interactions],
    }
}

impl TimelineHandler {
    /// A handler over the part's database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl Handler for TimelineHandler {
    async fn handle(&self, e: &Envelope, meta: &MessageMeta) -> Result<(), HandleError> {
        let customer = require_customer(e)?;
        let mut tx = self.pool.begin().await?;
        let consumer = format!("identity:{}", meta.topic.name());
        if !dedupe::first_delivery(&mut tx, &consumer, &e.tenant_id, &e.id).await? {
            return Ok(());
        }
        if let Some(owner) = profile::canonical_id(&mut tx, &e.tenant_id, customer).await? {
            timeline::record_all(&mut tx, &[timeline::Row::of(owner, e)]).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
