//! Deterministic resolution of ingested events (the consumer of `crm.ingest.v1`).

use std::sync::Arc;

use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::{dedupe, outbox, BatchItem, HandleError, Handler, MessageMeta};
use crm_service::Base;
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use chrono::Utc;
use crm_envelope::Profile;
use serde_json::json;

use crate::graph;
use crate::hot::HotProfiles;
use crate::identifiers::{identifiers_of, Extracted, IdentifierKey};
use crate::online;
use crate::privacy;
use crate::profile;
use crate::search;
use crate::settings::{self, Settings};
use crate::standardise::{standardise_traits, Quality};
use crate::survivorship::{self, Traits};
use crate::timeline;

/// Resolves events to customers, each in one transaction: dedupe by event id, find or create
/// the customer, link new identifiers, merge customers an event links, combine traits, and
/// enqueue the resolved event (and profile changes) in the outbox. After commit, the profile
/// goes to Redis. Used by the consumer of `crm.ingest.v1` and by imports.
#[derive(Clone)]
pub struct Resolver {
    pool: PgPool,
    hot: HotProfiles,
    relay: Arc<Notify>,
}

impl Resolver {
    /// A resolver over the part's database, cache and outbox relay.
    pub fn new(base: &Base) -> Self {
        Self::from_parts(
            base.pool.clone(),
            HotProfiles::new(Arc::clone(&base.cache)),
            base.relay.waker(),
        )
    }

    /// A resolver over explicit parts (the import command, which runs without a relay,
    /// passes one nobody listens to: the part's relay publishes the rows when it runs).
    pub fn from_parts(pool: PgPool, hot: HotProfiles, relay: Arc<Notify>) -> Self {
        Self { pool, hot, relay }
    }

    /// The part's database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The hot-profile cache.
    pub fn hot(&self) -> &HotProfiles {
        &self.hot
    }

    /// Applies `envelope` once: `false` when `consumer` had applied it already.
    pub async fn resolve(&self, consumer: &str, envelope: &Envelope) -> Result<bool, HandleError> {
        let mut tx = self.pool.begin().await?;
        if !dedupe::first_delivery(&mut tx, consumer, &envelope.tenant_id, &envelope.id).await? {
            tracing::debug!("message already applied; skipped");
            return Ok(false);
        }
        let settings = settings::load(&mut tx, &envelope.tenant_id).await?;
        let applied = apply(&mut tx, envelope, &settings).await?;
        tx.commit().await?;
        self.relay.notify_one();
        let tenant = &envelope.tenant_id;
        for merged in &applied.merged {
            self.hot.evict(tenant, *merged).await;
        }
        self.hot.refresh(tenant, &applied.profile).await;
        Ok(true)
    }
}

impl Resolver {
    /// Applies a poll's events in one transaction, in order, each once (all or nothing); each
    /// under a span continuing its own trace, so the outbox rows carry the right context.
    pub async fn resolve_batch(
        &self,
        consumer: &str,
        batch: &[BatchItem],
    ) -> Result<(), HandleError> {
        let mut tx = self.pool.begin().await?;
        // The latest profile of each customer the batch changed, and the ids it merged away.
        let mut touched: Vec<(TenantId, Profile)> = Vec::new();
        let mut gone: Vec<(TenantId, Uuid)> = Vec::new();
        let mut tenant_settings: Vec<(TenantId, Settings)> = Vec::new();
        let messages: Vec<(&TenantId, &str)> = batch
            .iter()
            .map(|i| (&i.envelope.tenant_id, i.envelope.id.as_str()))
            .collect();
        let fresh = dedupe::first_deliveries(&mut tx, consumer, &messages).await?;
        for (item, first) in batch.iter().zip(fresh) {
            if !first {
                tracing::debug!("message already applied; skipped");
                continue;
            }
            let envelope = &item.envelope;
            let span = tracing::info_span!("identity.resolve", message_id = %envelope.id);
            crm_telemetry::propagation::set_remote_parent(&span, &item.headers);
            let loaded = tenant_settings
                .iter()
                .position(|(t, _)| *t == envelope.tenant_id);
            let at = match loaded {
                Some(at) => at,
                None => {
                    let s = settings::load(&mut tx, &envelope.tenant_id).await?;
                    tenant_settings.push((envelope.tenant_id.clone(), s));
                    tenant_settings.len() - 1
                }
            };
            let settings = &tenant_settings[at].1;
            let applied = apply(&mut tx, envelope, settings).instrument(span).await?;
            let tenant = &envelope.tenant_id;
            gone.extend(applied.merged.iter().map(|id| (tenant.clone(), *id)));
            touched.retain(|(t, p)| !(t == tenant && p.id == applied.profile.id));
            touched.push((tenant.clone(), applied.profile));
        }
        tx.commit().await?;
        self.relay.notify_one();
        for (tenant, id) in &gone {
            self.hot.evict(tenant, *id).await;
        }
        for (tenant, profile) in &touched {
            // A customer merged away later in the batch is not written back.
            if !gone.iter().any(|(t, id)| t == tenant && *id == profile.id) {
                self.hot.refresh(tenant, profile).await;
            }
        }
        Ok(())
    }
}

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

/// A JSON object column.
type JsonMap = sqlx::types::Json<Map<String, Value>>;

/// What one event did.
struct Applied {
    /// The profile the event resolved to, after the event.
    profile: Profile,
    /// Customers merged into it by this event.
    merged: Vec<Uuid>,
}

/// The effect of one event, inside the caller's transaction.
///
/// Resolution: the event's identifiers (standardised, junk left out) are looked up; the owner
/// of the most authoritative one is the customer. When other identifiers belong to other
/// customers, those merge with it, unless both hold different user_ids or the merge would pass
/// the cap of identifiers of a kind: then the pair goes to review and the event stays with the
/// first customer. An event whose user_id is new while its other identifiers lead to a customer
/// with another user_id starts a new customer (a shared device, not the same person).
async fn apply(
    tx: &mut PgConnection,
    envelope: &Envelope,
    settings: &Settings,
) -> Result<Applied, HandleError> {
    let tenant = &envelope.tenant_id;
    let mut extracted = identifiers_of(envelope, settings);
    // Names and dates of birth in standard form; invalid ones stay as received, flagged.
    let mut incoming_traits = envelope.traits.clone();
    for (field, received, checked) in
        standardise_traits(&mut incoming_traits, Utc::now().date_naive())
    {
        extracted.check(&field, &received, &checked);
    }
    // The `consent` trait is recorded as consent, not kept as a trait.
    let consent = envelope
        .traits
        .get("consent")
        .map_or(Ok(Vec::new()), privacy::parse_consent);
    let keys = &extracted.keys;
    record_quality(tx, tenant, &extracted).await?;

    let mut owners: Vec<(usize, Uuid)> = Vec::new();
    // Identifiers someone holds already: never linked again (a merge moves them, if any).
    let mut held = vec![false; keys.len()];
    for (n, key) in keys.iter().enumerate() {
        if let Some(id) = profile::find_by_identifier(tx, tenant, &key.kind, &key.value).await? {
            held[n] = true;
            if !owners.iter().any(|(_, o)| *o == id) {
                owners.push((n, id));
            }
        }
    }
    let new_user_id = keys
        .iter()
        .find(|k| k.kind == "user_id")
        .filter(|k| !owners.iter().any(|(n, _)| keys[*n] == **k));

    let mut merged = Vec::new();
    let mut created = false;
    let mut customer = match owners.first() {
        None => None,
        Some(&(_, first)) => {
            if let Some(user) = new_user_id {
                if has_other_user_id(tx, tenant, first, &user.value).await? {
                    None
                } else {
                    Some(first)
                }
            } else {
                Some(first)
            }
        }
    };
    if customer.is_none() {
        customer = Some(create_customer(tx, envelope).await?);
        created = true;
        owners.clear();
    }
    let Some(mut customer) = customer else {
        return Err(HandleError::Transient(anyhow::anyhow!(
            "no customer resolved"
        )));
    };

    for &(n, other) in owners.iter().skip(1) {
        let evidence = json!({
            "event_id": envelope.id,
            "linked_by": {"kind": keys[n].kind},
            "rule": "shared identifier",
        });
        if let Some(reason) = graph::merge_blocker(tx, tenant, settings, customer, other).await? {
            graph::open_review(tx, tenant, (customer, other), reason, None, evidence).await?;
            continue;
        }
        if let Some(m) = graph::merge(
            tx,
            tenant,
            settings,
            (customer, other),
            "deterministic",
            evidence,
        )
        .await?
        {
            merged.push(m.merged);
            customer = m.survivor;
        }
    }

    let unheld: Vec<IdentifierKey> = keys
        .iter()
        .zip(&held)
        .filter(|(_, h)| !**h)
        .map(|(k, _)| k.clone())
        .collect();
    let linked = link_identifiers(tx, tenant, settings, customer, &unheld).await?;
    if created && linked == 0 && !keys.is_empty() {
        // Another replica created a customer for the same identifier meanwhile; retrying finds it.
        return Err(HandleError::Transient(anyhow::anyhow!(
            "identifier claimed concurrently"
        )));
    }
    let new_traits = update_customer(
        tx,
        settings,
        customer,
        envelope,
        &incoming_traits,
        &extracted,
    )
    .await?;
    let traits_changed = new_traits.is_some();
    timeline::record(tx, customer, envelope).await?;
    if let Ok(changes) = &consent {
        privacy::record_consent(
            tx,
            tenant,
            customer,
            changes,
            &envelope.source,
            envelope.occurred_at,
        )
        .await?;
    }
    if let Some(traits) = &new_traits {
        // Person traits may now match another customer (Fellegi–Sunter, online).
        if let Some(m) = online::match_customer(tx, tenant, settings, customer, traits).await? {
            merged.push(m.merged);
            customer = m.survivor;
        }
    }
    if created || traits_changed || linked > 0 || !merged.is_empty() {
        search::refresh(tx, tenant, customer).await?;
    }
    let profile = profile::load(tx, tenant, customer)
        .await?
        .ok_or_else(|| HandleError::Transient(anyhow::anyhow!("customer vanished")))?;

    let mut resolved = envelope.clone();
    resolved.customer_id = Some(customer);
    outbox::enqueue(tx, Topic::Events, &resolved).await?;
    if created || traits_changed || linked > 0 || !merged.is_empty() {
        let kind = if created {
            "profile.created"
        } else {
            "profile.updated"
        };
        outbox::enqueue(
            tx,
            Topic::Profiles,
            &profile::change_event(tenant, kind, &profile),
        )
        .await?;
    }
    Ok(Applied { profile, merged })
}

/// Whether `customer` holds a user_id other than `user_id`.
async fn has_other_user_id(
    tx: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM identifiers WHERE tenant_id = $1 AND customer_id = $2
                        AND kind = 'user_id' AND value <> $3)",
    )
    .bind(tenant.as_str())
    .bind(customer)
    .bind(user_id)
    .fetch_one(tx)
    .await
}

/// Counts each identifier field of the event in the tenant's data-quality report.
async fn record_quality(
    tx: &mut PgConnection,
    tenant: &TenantId,
    extracted: &Extracted,
) -> Result<(), sqlx::Error> {
    for check in &extracted.checks {
        let (valid, invalid, standardised) = match check.quality {
            Quality::Valid => (1i64, 0i64, 0i64),
            Quality::Standardised => (1, 0, 1),
            Quality::Invalid => (0, 1, 0),
        };
        sqlx::query(
            "INSERT INTO data_quality (tenant_id, field, present, valid, invalid, standardised)
             VALUES ($1, $2, 1, $3, $4, $5)
             ON CONFLICT (tenant_id, field) DO UPDATE SET present = data_quality.present + 1,
                 valid = data_quality.valid + $3, invalid = data_quality.invalid + $4,
                 standardised = data_quality.standardised + $5",
        )
        .bind(tenant.as_str())
        .bind(&check.field)
        .bind(valid)
        .bind(invalid)
        .bind(standardised)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
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

/// Links the identifiers no customer has yet, within the tenant's cap per kind and never a
/// second user_id; identifiers of other customers stay where they are (a merge moved them
/// already, or a review holds the pair). Returns how many were linked.
async fn link_identifiers(
    tx: &mut PgConnection,
    tenant: &TenantId,
    settings: &Settings,
    customer_id: Uuid,
    keys: &[IdentifierKey],
) -> Result<u64, sqlx::Error> {
    let mut linked = 0;
    for key in keys {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM identifiers WHERE tenant_id = $1 AND customer_id = $2 AND kind = $3",
        )
        .bind(tenant.as_str())
        .bind(customer_id)
        .bind(&key.kind)
        .fetch_one(&mut *tx)
        .await?;
        let cap = if key.kind == "user_id" {
            1
        } else {
            i64::from(settings.max_identifiers_per_kind)
        };
        if held >= cap {
            continue;
        }
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

/// Combines the event's (standardised) traits by the tenant's survivorship rule, keeps invalid
/// values with their quality flag, and records the event; returns the customer's traits when
/// they changed.
async fn update_customer(
    tx: &mut PgConnection,
    settings: &Settings,
    customer_id: Uuid,
    e: &Envelope,
    incoming_traits: &Map<String, Value>,
    extracted: &Extracted,
) -> Result<Option<Map<String, Value>>, sqlx::Error> {
    let tenant = &e.tenant_id;
    if incoming_traits.is_empty()
        && extracted
            .checks
            .iter()
            .all(|c| c.quality != Quality::Invalid)
    {
        // Nothing to combine: count the event in one statement.
        sqlx::query(
            "UPDATE customers SET event_count = event_count + 1, version = version + 1,
                    first_seen_at = LEAST(first_seen_at, $3),
                    last_seen_at = GREATEST(last_seen_at, $3), updated_at = now()
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(customer_id)
        .bind(e.occurred_at)
        .execute(&mut *tx)
        .await?;
        return Ok(None);
    }
    let (values, sources, quality): (JsonMap, JsonMap, JsonMap) = sqlx::query_as(
        "SELECT traits, trait_sources, quality FROM customers
         WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(customer_id)
    .fetch_one(&mut *tx)
    .await?;
    let mut traits = Traits {
        values: values.0,
        sources: sources.0,
    };
    let mut values = incoming_traits.clone();
    let consent = values.remove("consent");
    let incoming = survivorship::from_event(&values, &e.source, e.occurred_at);
    let changed = survivorship::combine(
        settings.survivorship,
        &settings.source_trust,
        &mut traits,
        &incoming,
    );
    let mut quality = quality.0;
    if let Some(raw) = consent.filter(|v| privacy::parse_consent(v).is_err()) {
        // Malformed consent is kept as received, flagged, and not applied.
        quality.insert(
            "consent".into(),
            json!({"value": raw, "quality": "invalid", "at": e.occurred_at}),
        );
    }
    for check in extracted
        .checks
        .iter()
        .filter(|c| c.quality == Quality::Invalid)
    {
        quality.insert(
            check.field.clone(),
            json!({"value": check.received, "quality": "invalid", "at": e.occurred_at}),
        );
    }
    sqlx::query(
        "UPDATE customers SET traits = $3, trait_sources = $4, quality = $5,
                event_count = event_count + 1, version = version + 1,
                first_seen_at = LEAST(first_seen_at, $6), last_seen_at = GREATEST(last_seen_at, $6),
                updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(customer_id)
    .bind(sqlx::types::Json(&traits.values))
    .bind(sqlx::types::Json(&traits.sources))
    .bind(sqlx::types::Json(&quality))
    .bind(e.occurred_at)
    .execute(&mut *tx)
    .await?;
    Ok(changed.then_some(traits.values))
}
