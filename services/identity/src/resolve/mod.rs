//! Deterministic resolution of ingested events (the consumer of `crm.ingest.v1`).

pub(crate) mod newcomer;
pub mod online;
pub(crate) mod pending;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::Utc;
use crm_envelope::{Envelope, Profile, TenantId, Topic};
use crm_kafka::outbox::Outgoing;
use crm_kafka::{dedupe, BatchItem, HandleError};
use crm_service::Base;
use serde_json::{json, Map, Value};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::identifiers::{identifiers_of, Extracted, IdentifierKey};
use crate::domain::matching::fellegi_sunter::Model;
use crate::domain::settings::Settings;
use crate::domain::standardise::Quality;
use crate::domain::survivorship::Traits;
use crate::domain::traits::{combine_event, standardised_traits, within_caps};
use crate::merge;
use crate::privacy;
use crate::resolve::pending::Pending;
use crate::store::accounts;
use crate::store::hot::HotProfiles;
use crate::store::match_keys;
use crate::store::owners::Owners;
use crate::store::profile;
use crate::store::search;
use crate::store::settings;

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
            HotProfiles::new(Arc::clone(&base.cache), base.pool.clone()),
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
        let outcome = apply_all(&mut tx, vec![(envelope, tracing::Span::current())]).await?;
        tx.commit().await?;
        self.after_commit(outcome).await;
        Ok(true)
    }

    /// Applies a poll's events in one transaction, in order, each once (all or nothing); each
    /// under a span continuing its own trace, so the outbox rows carry the right context.
    pub async fn resolve_batch(
        &self,
        consumer: &str,
        batch: &[BatchItem],
    ) -> Result<(), HandleError> {
        let mut tx = self.pool.begin().await?;
        let messages: Vec<(&TenantId, &str)> = batch
            .iter()
            .map(|i| (&i.envelope.tenant_id, i.envelope.id.as_str()))
            .collect();
        let fresh = dedupe::first_deliveries(&mut tx, consumer, &messages).await?;
        let events: Vec<(&Envelope, tracing::Span)> = batch
            .iter()
            .zip(fresh)
            .filter(|(_, first)| *first)
            .map(|(item, _)| {
                let span = tracing::info_span!("identity.resolve", message_id = %item.envelope.id);
                crm_telemetry::propagation::set_remote_parent(&span, &item.headers);
                (&item.envelope, span)
            })
            .collect();
        let skipped = batch.len() - events.len();
        if skipped > 0 {
            tracing::debug!(skipped, "messages already applied; skipped");
        }
        let outcome = apply_all(&mut tx, events).await?;
        tx.commit().await?;
        self.after_commit(outcome).await;
        Ok(())
    }

    /// Wakes the relay and brings Redis up to date: customers merged away are evicted, the
    /// others written back.
    async fn after_commit(&self, outcome: Outcome) {
        self.relay.notify_one();
        self.hot.update_many(&outcome.gone, &outcome.profiles).await;
    }
}

/// What a batch did, for the cache.
struct Outcome {
    /// The latest profile of each customer the batch resolved events to.
    profiles: Vec<(TenantId, Profile)>,
    /// Customers merged away.
    gone: Vec<(TenantId, Uuid)>,
}

/// A tenant's settings and fitted matching model, loaded once per batch.
struct TenantContext {
    settings: Settings,
    model: Option<Model>,
}

/// Applies `events` in order inside `tx`.
///
/// Identifier owners are looked up for the whole batch in one query. An event whose
/// identifiers all belong to one customer and that brings no traits (most events: a known
/// customer's tracks and pages) changes nothing but the customer's counters, so it takes no
/// statement of its own: its counters, timeline row and outbox message join the batch's
/// [`Pending`] writes. So does an event that creates a customer whose whole state is known in
/// memory ([`newcomer`]). Any other event is resolved with its own statements ([`apply`]).
async fn apply_all(
    tx: &mut PgConnection,
    events: Vec<(&Envelope, tracing::Span)>,
) -> Result<Outcome, HandleError> {
    let mut contexts: HashMap<TenantId, TenantContext> = HashMap::new();
    let mut extracted = Vec::with_capacity(events.len());
    for (envelope, _) in &events {
        let tenant = &envelope.tenant_id;
        if !contexts.contains_key(tenant) {
            let settings = settings::load(tx, tenant).await?;
            let model = match_keys::model(tx, tenant).await?;
            contexts.insert(tenant.clone(), TenantContext { settings, model });
        }
        if let Some(context) = contexts.get(tenant) {
            extracted.push(identifiers_of(envelope, &context.settings));
        }
    }
    let mut owners = Owners::default();
    for tenant in contexts.keys() {
        let keys = events
            .iter()
            .zip(&extracted)
            .filter(|((e, _), _)| e.tenant_id == *tenant)
            .flat_map(|(_, x)| &x.keys);
        owners.fill(tx, tenant, keys).await?;
    }

    let now = Utc::now();
    let mut pending = Pending::default();
    let mut touched: BTreeSet<(TenantId, Uuid)> = BTreeSet::new();
    let mut gone: Vec<(TenantId, Uuid)> = Vec::new();
    for ((envelope, span), extracted) in events.into_iter().zip(extracted) {
        let tenant = &envelope.tenant_id;
        let Some(context) = contexts.get(tenant) else {
            continue;
        };
        if !owners.knows_all(tenant, &extracted.keys) {
            owners.fill(tx, tenant, &extracted.keys).await?;
        }
        let only_seen = envelope.traits.is_empty()
            && extracted
                .checks
                .iter()
                .all(|c| c.quality != Quality::Invalid);
        let nobody = !extracted.keys.is_empty()
            && extracted
                .keys
                .iter()
                .all(|k| owners.get(tenant, k).is_none());
        if nobody {
            let mut checked = extracted.clone();
            let traits = standardised_traits(envelope, &mut checked);
            if newcomer::eligible(envelope, &traits, context.model.is_some()) {
                let created = create_in_memory(
                    (envelope, &span),
                    &context.settings,
                    &traits,
                    &checked,
                    now,
                    &mut owners,
                    &mut pending,
                )?;
                touched.insert((tenant.clone(), created));
                accounts::apply_group(tx, envelope, created).await?;
                continue;
            }
        }
        let customer = match owners.sole_owner(tenant, &extracted.keys) {
            Some(customer) if only_seen => {
                pending.quality(tenant, &extracted);
                pending.seen(tenant, customer, envelope.occurred_at);
                pending.timeline(customer, envelope);
                let mut resolved = envelope.clone();
                resolved.customer_id = Some(customer);
                let message = span.in_scope(|| outgoing(Topic::Events, &resolved))?;
                pending.publish(message);
                customer
            }
            _ => {
                // The event's own statements see the counters of the events before it.
                pending.flush_customers(tx).await?;
                let applied = apply(tx, envelope, context, extracted, &owners, &mut pending)
                    .instrument(span)
                    .await?;
                if applied.merged.is_empty() {
                    for key in applied.linked {
                        owners.linked(tenant, key, applied.customer);
                    }
                } else {
                    owners.clear();
                }
                for merged in applied.merged {
                    touched.remove(&(tenant.clone(), merged));
                    gone.push((tenant.clone(), merged));
                }
                applied.customer
            }
        };
        accounts::apply_group(tx, envelope, customer).await?;
        touched.insert((tenant.clone(), customer));
    }
    pending.flush(tx).await?;

    let mut profiles = Vec::with_capacity(touched.len());
    for tenant in contexts.keys() {
        let ids: Vec<Uuid> = touched
            .iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, id)| *id)
            .collect();
        if !ids.is_empty() {
            for profile in profile::load_many(tx, tenant, &ids).await? {
                profiles.push((tenant.clone(), profile));
            }
        }
    }
    pending.flush_quality(tx).await?;
    Ok(Outcome { profiles, gone })
}

/// A JSON object column.
type JsonMap = sqlx::types::Json<Map<String, Value>>;

/// Creates the customer of an event none of whose identifiers is held, in memory
/// ([`newcomer`]): its rows, timeline entry, resolved event and `profile.created` join the
/// batch's pending writes. Returns the new customer's id.
fn create_in_memory(
    (envelope, span): (&Envelope, &tracing::Span),
    settings: &Settings,
    traits: &Map<String, Value>,
    checked: &Extracted,
    now: chrono::DateTime<Utc>,
    owners: &mut Owners,
    pending: &mut Pending,
) -> Result<Uuid, HandleError> {
    let tenant = &envelope.tenant_id;
    let (customer, profile) = newcomer::create(settings, envelope, traits, checked, now);
    pending.quality(tenant, checked);
    for key in customer.identifiers() {
        owners.linked(tenant, key.clone(), profile.id);
    }
    pending.create(customer);
    pending.timeline(profile.id, envelope);
    let mut resolved = envelope.clone();
    resolved.customer_id = Some(profile.id);
    let change = profile::change_event(tenant, "profile.created", &profile);
    span.in_scope(|| -> Result<(), HandleError> {
        pending.publish(outgoing(Topic::Events, &resolved)?);
        pending.publish(outgoing(Topic::Profiles, &change)?);
        Ok(())
    })?;
    Ok(profile.id)
}

/// What one event did.
struct Applied {
    /// The customer the event resolved to.
    customer: Uuid,
    /// Customers merged into it by this event.
    merged: Vec<Uuid>,
    /// Identifiers the event linked to it.
    linked: Vec<IdentifierKey>,
}

/// The effect of one event, inside the caller's transaction; `owners` knows the owner of each
/// of the event's identifiers.
///
/// Resolution: the owner of the most authoritative identifier is the customer. When other
/// identifiers belong to other customers, those merge with it, unless both hold different
/// user_ids or the merge would pass the cap of identifiers of a kind: then the pair goes to
/// review and the event stays with the first customer. An event whose user_id is new while its
/// other identifiers lead to a customer with another user_id starts a new customer (a shared
/// device, not the same person).
async fn apply(
    tx: &mut PgConnection,
    envelope: &Envelope,
    context: &TenantContext,
    mut extracted: Extracted,
    owned: &Owners,
    pending: &mut Pending,
) -> Result<Applied, HandleError> {
    let tenant = &envelope.tenant_id;
    let settings = &context.settings;
    let incoming_traits = standardised_traits(envelope, &mut extracted);
    // The `consent` trait is recorded as consent, not kept as a trait.
    let consent = envelope
        .traits
        .get("consent")
        .map_or(Ok(Vec::new()), privacy::parse_consent);
    let keys = &extracted.keys;
    pending.quality(tenant, &extracted);

    let (owners, held) = owners_of(tenant, keys, owned);
    let mut chosen = choose_customer(tx, envelope, keys, owners).await?;
    let mut merged = Vec::new();
    let mut customer = merge_linked(
        tx,
        envelope,
        settings,
        keys,
        &mut chosen,
        &mut merged,
        pending,
    )
    .await?;
    let created = chosen.created;
    let unheld: Vec<&IdentifierKey> = keys
        .iter()
        .zip(&held)
        .filter(|(_, h)| !**h)
        .map(|(k, _)| k)
        .collect();
    let (linked, over_cap) =
        link_identifiers(tx, tenant, settings, customer, created, &unheld).await?;
    for key in &over_cap {
        chosen
            .unattached
            .push((key.kind.clone(), None, "cap_reached".into()));
    }
    for (kind, held_by, reason) in &chosen.unattached {
        profile::record_unattached(tx, tenant, customer, kind, *held_by, reason, &envelope.id)
            .await?;
    }
    if created && linked.is_empty() && !keys.is_empty() {
        // Another replica created a customer for the same identifier meanwhile; retrying finds it.
        return Err(HandleError::Transient(anyhow::anyhow!(
            "identifier claimed concurrently"
        )));
    }
    let new_traits = update_customer(
        tx,
        settings,
        customer,
        created,
        envelope,
        &incoming_traits,
        &extracted,
    )
    .await?;
    let traits_changed = new_traits.is_some();
    pending.timeline(customer, envelope);
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
        // Announced like consent given through the API, so campaign's send gate sees it.
        for change in changes {
            let mut event =
                Envelope::domain(tenant.clone(), "consent.changed", customer, "identity");
            event.properties = serde_json::json!({
                "purpose": change.purpose, "channel": change.channel, "granted": change.granted,
                "source": envelope.source, "at": envelope.occurred_at,
            })
            .as_object()
            .cloned()
            .unwrap_or_default();
            pending.publish(outgoing(Topic::Profiles, &event)?);
        }
    }
    if let Some(traits) = &new_traits {
        // Person traits may now match another customer (Fellegi–Sunter, online).
        let model = context.model.as_ref();
        let matched =
            online::match_customer(tx, tenant, settings, model, customer, traits, pending).await?;
        if let Some(m) = matched {
            merged.push(m.merged);
            customer = m.survivor;
        }
    }
    let changed = created || traits_changed || !linked.is_empty() || !merged.is_empty();
    publish_resolved(tx, envelope, customer, created, changed, pending).await?;
    Ok(Applied {
        customer,
        merged,
        linked,
    })
}

/// The customers that hold the event's identifiers (each once, with the index of the first
/// identifier it holds, most authoritative first), and which identifiers are held at all:
/// a held identifier is never linked again (a merge moves it, if any).
fn owners_of(
    tenant: &TenantId,
    keys: &[IdentifierKey],
    owned: &Owners,
) -> (Vec<(usize, Uuid)>, Vec<bool>) {
    let mut owners: Vec<(usize, Uuid)> = Vec::new();
    let mut held = vec![false; keys.len()];
    for (n, key) in keys.iter().enumerate() {
        if let Some(id) = owned.get(tenant, key) {
            held[n] = true;
            if !owners.iter().any(|(_, o)| *o == id) {
                owners.push((n, id));
            }
        }
    }
    (owners, held)
}

/// The event's customer before merges: the owner of its most authoritative identifier, or a
/// new customer.
struct Chosen {
    customer: Uuid,
    created: bool,
    /// The other owners, to merge with the customer.
    owners: Vec<(usize, Uuid)>,
    /// Identifiers another customer holds that this customer does not get: kind, holder, why.
    unattached: Vec<(String, Option<Uuid>, String)>,
}

/// Picks the owner of the most authoritative identifier, unless the event's user_id is new and
/// that owner holds another user_id (a shared device, not the same person): then, or when no
/// one holds any identifier, a new customer.
async fn choose_customer(
    tx: &mut PgConnection,
    envelope: &Envelope,
    keys: &[IdentifierKey],
    owners: Vec<(usize, Uuid)>,
) -> Result<Chosen, HandleError> {
    let tenant = &envelope.tenant_id;
    let new_user_id = keys
        .iter()
        .find(|k| k.kind == "user_id")
        .filter(|k| !owners.iter().any(|(n, _)| keys[*n] == **k));
    let existing = match owners.first() {
        None => None,
        Some(&(_, first)) => match new_user_id {
            Some(user) if has_other_user_id(tx, tenant, first, &user.value).await? => None,
            _ => Some(first),
        },
    };
    if let Some(customer) = existing {
        return Ok(Chosen {
            customer,
            created: false,
            owners,
            unattached: Vec::new(),
        });
    }
    let customer = create_customer(tx, envelope).await?;
    let unattached = owners
        .iter()
        .map(|&(n, other)| {
            (
                keys[n].kind.clone(),
                Some(other),
                "held_by_customer_with_another_user_id".to_owned(),
            )
        })
        .collect();
    Ok(Chosen {
        customer,
        created: true,
        owners: Vec::new(),
        unattached,
    })
}

/// Merges every other owner into the customer, unless a guard refuses (both hold different
/// user_ids, or the merge would pass an identifier cap): then the pair goes to review and the
/// identifier stays unattached. Returns the customer after the merges.
async fn merge_linked(
    tx: &mut PgConnection,
    envelope: &Envelope,
    settings: &Settings,
    keys: &[IdentifierKey],
    chosen: &mut Chosen,
    merged: &mut Vec<Uuid>,
    pending: &mut Pending,
) -> Result<Uuid, HandleError> {
    let tenant = &envelope.tenant_id;
    let mut customer = chosen.customer;
    for &(n, other) in chosen.owners.iter().skip(1) {
        let evidence = json!({
            "event_id": envelope.id,
            "linked_by": {"kind": keys[n].kind},
            "rule": "shared identifier",
        });
        if let Some(reason) = merge::merge_blocker(tx, tenant, settings, customer, other).await? {
            merge::open_review(tx, tenant, (customer, other), reason, None, evidence).await?;
            chosen.unattached.push((
                keys[n].kind.clone(),
                Some(other),
                format!("merge_refused:{reason}"),
            ));
            continue;
        }
        // A merge moves timeline rows and publishes: what is pending goes first.
        pending.flush(tx).await?;
        if let Some(m) = merge::merge(
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
    Ok(customer)
}

/// Publishes the resolved event and, when the customer changed, its search text and
/// `profile.created` / `profile.updated`.
async fn publish_resolved(
    tx: &mut PgConnection,
    envelope: &Envelope,
    customer: Uuid,
    created: bool,
    changed: bool,
    pending: &mut Pending,
) -> Result<(), HandleError> {
    let tenant = &envelope.tenant_id;
    let mut resolved = envelope.clone();
    resolved.customer_id = Some(customer);
    pending.publish(outgoing(Topic::Events, &resolved)?);
    if !changed {
        return Ok(());
    }
    let profile = profile::load(tx, tenant, customer)
        .await?
        .ok_or_else(|| HandleError::Transient(anyhow::anyhow!("customer vanished")))?;
    let emails: Vec<String> = profile
        .identifiers
        .iter()
        .filter(|i| i.kind == "email")
        .map(|i| i.value.clone())
        .collect();
    pending.search_text(
        tenant,
        customer,
        search::search_text(&profile.traits, &emails),
    );
    let kind = if created {
        "profile.created"
    } else {
        "profile.updated"
    };
    let change = profile::change_event(tenant, kind, &profile);
    pending.publish(outgoing(Topic::Profiles, &change)?);
    Ok(())
}

/// `envelope` for the outbox, with the current trace context.
fn outgoing(topic: Topic, envelope: &Envelope) -> Result<Outgoing, HandleError> {
    Outgoing::new(topic, envelope).map_err(|e| HandleError::Transient(e.into()))
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
/// already, or a review holds the pair). Returns those linked and those the caps refused.
async fn link_identifiers(
    tx: &mut PgConnection,
    tenant: &TenantId,
    settings: &Settings,
    customer_id: Uuid,
    created: bool,
    keys: &[&IdentifierKey],
) -> Result<(Vec<IdentifierKey>, Vec<IdentifierKey>), sqlx::Error> {
    if keys.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // A customer created by this event holds nothing yet.
    let mut held: HashMap<String, i64> = if created {
        HashMap::new()
    } else {
        sqlx::query_as(
            "SELECT kind, count(*) FROM identifiers WHERE tenant_id = $1 AND customer_id = $2
             GROUP BY kind",
        )
        .bind(tenant.as_str())
        .bind(customer_id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect()
    };
    let allowed = within_caps(settings, &mut held, keys.iter().copied());
    let over_cap: Vec<IdentifierKey> = keys
        .iter()
        .filter(|k| !allowed.iter().any(|a| *a == **k))
        .map(|k| (*k).clone())
        .collect();
    let kinds: Vec<&str> = allowed.iter().map(|k| k.kind.as_str()).collect();
    let values: Vec<&str> = allowed.iter().map(|k| k.value.as_str()).collect();
    let linked: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO identifiers (tenant_id, kind, value, customer_id)
         SELECT $1, k, v, $4 FROM unnest($2::text[], $3::text[]) AS u(k, v)
         ON CONFLICT DO NOTHING RETURNING kind, value",
    )
    .bind(tenant.as_str())
    .bind(&kinds)
    .bind(&values)
    .bind(customer_id)
    .fetch_all(&mut *tx)
    .await?;
    let linked = linked
        .into_iter()
        .map(|(kind, value)| IdentifierKey { kind, value })
        .collect();
    Ok((linked, over_cap))
}

/// Combines the event's (standardised) traits by the tenant's survivorship rule, keeps invalid
/// values with their quality flag, and records the event; returns the customer's traits when
/// they changed.
async fn update_customer(
    tx: &mut PgConnection,
    settings: &Settings,
    customer_id: Uuid,
    created: bool,
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
    // A customer created by this event has nothing yet.
    let (values, sources, quality): (JsonMap, JsonMap, JsonMap) = if created {
        Default::default()
    } else {
        sqlx::query_as(
            "SELECT traits, trait_sources, quality FROM customers
             WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(customer_id)
        .fetch_one(&mut *tx)
        .await?
    };
    let mut traits = Traits {
        values: values.0,
        sources: sources.0,
    };
    let mut quality = quality.0;
    let changed = combine_event(
        settings,
        &mut traits,
        &mut quality,
        e,
        incoming_traits,
        extracted,
    );
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
