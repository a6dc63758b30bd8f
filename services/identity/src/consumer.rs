//! The consumer of `crm.ingest.v1`: each poll's events resolved in one transaction by the
//! [`Resolver`], once per event id.

use crm_envelope::Envelope;
use crm_kafka::{BatchItem, HandleError, Handler, MessageMeta};
use crm_service::Base;

use crate::resolve::Resolver;

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
