//! The gateway's consumer of the output topics (`crm.profiles.v1`, `crm.segments.v1`,
//! `crm.loyalty.v1`, `crm.interactions.v1`): each event is queued once for every enabled
//! endpoint of its tenant that subscribes to its kind, in the transaction that the offset
//! waits for. A second copy of a message queues nothing more (one delivery per endpoint and
//! event id). `profile.erased` also deletes the stored deliveries about the erased customers.

use std::collections::HashMap;
use std::sync::Arc;

use crm_envelope::{Envelope, TenantId};
use crm_kafka::{BatchItem, HandleError, Handler, MessageMeta};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use super::domain;
use super::store::{self, NewDelivery};

/// Queues deliveries from the output topics.
pub struct WebhookFanout {
    pub(crate) pool: PgPool,
    /// Woken when something was queued, so this replica's delivery loop starts at once.
    pub(crate) queued: Arc<Notify>,
}

impl WebhookFanout {
    async fn apply(&self, envelopes: &[&Envelope]) -> Result<(), HandleError> {
        let mut tx = self.pool.begin().await?;
        let mut subscribers: HashMap<TenantId, Vec<(Uuid, Vec<String>)>> = HashMap::new();
        let mut queued = 0usize;
        for envelope in envelopes {
            queued += fan_out(&mut tx, &mut subscribers, envelope).await?;
        }
        tx.commit().await?;
        if queued > 0 {
            self.queued.notify_one();
        }
        Ok(())
    }
}

/// Queues `envelope` for its tenant's subscribers (looked up once per tenant and batch).
async fn fan_out(
    conn: &mut PgConnection,
    subscribers: &mut HashMap<TenantId, Vec<(Uuid, Vec<String>)>>,
    envelope: &Envelope,
) -> Result<usize, HandleError> {
    let tenant = &envelope.tenant_id;
    if envelope.kind == "profile.erased" {
        let mut erased: Vec<Uuid> = envelope
            .properties
            .get("erased_ids")
            .and_then(|v| v.as_array())
            .map(|ids| {
                ids.iter()
                    .filter_map(|i| i.as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        erased.extend(envelope.customer_id);
        store::erase(conn, tenant, &erased).await?;
    }
    if !subscribers.contains_key(tenant) {
        let found = store::subscribers(conn, tenant).await?;
        subscribers.insert(tenant.clone(), found);
    }
    let wanted: Vec<Uuid> = subscribers
        .get(tenant)
        .map(|s| {
            s.iter()
                .filter(|(_, patterns)| domain::wants(patterns, &envelope.kind))
                .map(|(id, _)| *id)
                .collect()
        })
        .unwrap_or_default();
    if wanted.is_empty() {
        return Ok(0);
    }
    let payload = serde_json::to_string(&domain::body(envelope))
        .map_err(|e| HandleError::permanent("unserialisable", e.to_string()))?;
    let mut queued = 0;
    for endpoint in wanted {
        let new = NewDelivery {
            endpoint,
            event_id: &envelope.id,
            event_type: &envelope.kind,
            customer_id: envelope.customer_id,
            payload: &payload,
        };
        if store::enqueue(conn, tenant, &new).await? {
            queued += 1;
        }
    }
    Ok(queued)
}

impl Handler for WebhookFanout {
    async fn handle(&self, envelope: &Envelope, _meta: &MessageMeta) -> Result<(), HandleError> {
        self.apply(&[envelope]).await
    }

    async fn handle_batch(&self, batch: &[BatchItem]) -> Result<bool, HandleError> {
        let envelopes: Vec<&Envelope> = batch.iter().map(|b| &b.envelope).collect();
        self.apply(&envelopes).await?;
        Ok(true)
    }
}
