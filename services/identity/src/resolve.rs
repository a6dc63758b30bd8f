//! Deterministic resolution of ingested events (the consumer of `crm.ingest.v1`).

use std::sync::Arc;

use crm_cache::ProfileCache;
use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::{dedupe, outbox, HandleError, Handler, MessageMeta};
use crm_service::Base;
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::identifiers::{identifiers_of, IdentifierKey};
use crm_envelope::Profile;

use crate::profile;

/// Applies each ingested event in one transaction: dedupe by message id, find or create the
/// customer, link new identifiers, merge traits, and enqueue the resolved event (and a profile
/// change, when the profile changed) in the outbox. After commit, the profile goes to Redis.
#[derive(Clone)]
pub struct IngestHandler {
    pool: PgPool,
    cache: Arc<ProfileCache>,
    relay: Arc<Notify>,
}

/// The dedupe record's consumer name.
const CONSUMER: &str = "identity:crm.ingest.v1";

impl IngestHandler {
    /// A handler over the part's database, cache and outbox relay.
    pub fn new(base: &Base) -> Self {
        Self {
            pool: base.pool.clone(),
            cache: Arc::clone(&base.cache),
            relay: base.relay.waker(),
        }
    }
}

impl Handler for IngestHandler {
    async fn handle(&self, envelope: &Envelope, _meta: &MessageMeta) -> Result<(), HandleError> {
        let mut tx = self.pool.begin().await?;
        if !dedupe::first_delivery(&mut tx, CONSUMER, &envelope.tenant_id, &envelope.id).await? {
            tracing::debug!("message already applied; skipped");
            return Ok(());
        }
        let profile = apply(&mut tx, envelope).await?;
        tx.commit().await?;
        self.relay.notify_one();
        self.refresh_cache(&envelope.tenant_id, &profile).await;
        Ok(())
    }
}

impl IngestHandler {
    /// Writes the committed profile to Redis. Redis is a cache: on failure, evict so that no
    /// stale copy is served, and go on.
    async fn refresh_cache(&self, tenant: &TenantId, profile: &Profile) {
        let key = self.cache.key(tenant, profile.id);
        let Ok(json) = serde_json::to_string(profile) else {
            return;
        };
        if let Err(e) = self.cache.put(&key, &json).await {
            tracing::warn!(error = %e, "profile cache write failed; evicting");
            let _ = self.cache.evict(&key).await;
        }
    }
}

/// The effect of one event, inside the caller's transaction; returns the updated profile.
async fn apply(tx: &mut PgConnection, envelope: &Envelope) -> Result<Profile, HandleError> {
    let tenant = &envelope.tenant_id;
    let keys = identifiers_of(envelope);
    let (customer_id, created) = match find_customer(tx, tenant, &keys).await? {
        Some(id) => (id, false),
        None => (create_customer(tx, envelope).await?, true),
    };
    let linked = link_identifiers(tx, tenant, customer_id, &keys).await?;
    if created && linked == 0 {
        // Another replica created a customer for the same identifier meanwhile; retrying finds it.
        return Err(HandleError::Transient(anyhow::anyhow!(
            "identifier claimed concurrently"
        )));
    }
    let traits_changed = update_customer(tx, tenant, customer_id, envelope).await?;
    let profile = profile::load(tx, tenant, customer_id)
        .await?
        .ok_or_else(|| HandleError::Transient(anyhow::anyhow!("customer vanished")))?;

    let mut resolved = envelope.clone();
    resolved.customer_id = Some(customer_id);
    outbox::enqueue(tx, Topic::Events, &resolved).await?;
    if created || traits_changed || linked > 0 {
        let kind = if created {
            "profile.created"
        } else {
            "profile.updated"
        };
        outbox::enqueue(tx, Topic::Profiles, &profile_event(tenant, kind, &profile)).await?;
    }
    Ok(profile)
}

/// The first identifier (in resolution order) that already belongs to a customer.
async fn find_customer(
    tx: &mut PgConnection,
    tenant: &TenantId,
    keys: &[IdentifierKey],
) -> Result<Option<Uuid>, sqlx::Error> {
    for key in keys {
        if let Some(id) = profile::find_by_identifier(tx, tenant, &key.kind, &key.value).await? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

async fn create_customer(tx: &mut PgConnection, e: &Envelope) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO customers (tenant_id, id, first_seen_at, last_seen_at) VALUES ($1, $2, $3, $3)",
    )
    .bind(e.tenant_id.as_str())
    .bind(id)
    .bind(e.occurred_at)
    .execute(tx)
    .await?;
    Ok(id)
}

/// Links the identifiers no customer has yet; identifiers of other customers stay where they
/// are (merging is the next identity issue). Returns how many were linked.
async fn link_identifiers(
    tx: &mut PgConnection,
    tenant: &TenantId,
    customer_id: Uuid,
    keys: &[IdentifierKey],
) -> Result<u64, sqlx::Error> {
    let mut linked = 0;
    for key in keys {
        linked += sqlx::query(
            "INSERT INTO identifiers (tenant_id, kind, value, customer_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(&key.kind)
        .bind(&key.value)
        .bind(customer_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    Ok(linked)
}

/// Merges traits (latest value per key) and records the event; returns whether traits changed.
async fn update_customer(
    tx: &mut PgConnection,
    tenant: &TenantId,
    customer_id: Uuid,
    e: &Envelope,
) -> Result<bool, sqlx::Error> {
    let current: sqlx::types::Json<Map<String, Value>> = sqlx::query_scalar(
        "SELECT traits FROM customers WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(customer_id)
    .fetch_one(&mut *tx)
    .await?;
    let mut traits = current.0.clone();
    for (k, v) in &e.traits {
        traits.insert(k.clone(), v.clone());
    }
    let changed = traits != current.0;
    sqlx::query(
        "UPDATE customers SET traits = $3, event_count = event_count + 1, version = version + 1,
                first_seen_at = LEAST(first_seen_at, $4), last_seen_at = GREATEST(last_seen_at, $4),
                updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(customer_id)
    .bind(sqlx::types::Json(&traits))
    .bind(e.occurred_at)
    .execute(&mut *tx)
    .await?;
    Ok(changed)
}

/// A `profile.created` / `profile.updated` event carrying the current traits and the first
/// identifier of each core kind.
fn profile_event(tenant: &TenantId, kind: &str, p: &Profile) -> Envelope {
    let mut e = Envelope::domain(tenant.clone(), kind, p.id, "identity");
    e.traits = p.traits.clone();
    let first = |kind: &str| {
        p.identifiers
            .iter()
            .find(|i| i.kind == kind)
            .map(|i| i.value.clone())
    };
    e.identity.user_id = first("user_id");
    e.identity.anonymous_id = first("anonymous_id");
    e.identity.email = first("email");
    e.identity.phone = first("phone");
    e
}
