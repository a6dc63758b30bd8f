//! A poll applied at once: its messages deduplicated in one statement, their customers looked
//! up in one query per tenant, their activity written set-based, and each customer evaluated
//! once with all of its changes, in one transaction. Merges, erasures and unmerges change
//! which customer an id stands for, so they split the poll: what came before them is applied
//! first, then they are applied one by one, then the rest.
//!
//! The stored outcome is the one-at-a-time outcome. What is published can be shorter: a
//! customer who entered and left a segment within one poll is evaluated once, after both, and
//! publishes neither.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::{dedupe, require_customer, BatchItem, HandleError};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{consumer_name, SegmentationHandler};
use crate::engine::{evaluate_each, Change, Touched};
use crate::store::bulk::{self, Counted};
use crate::store::settings;

/// Whether `item` changes which customer an id stands for (so the poll splits around it).
fn structural(item: &BatchItem) -> bool {
    item.meta.topic == Topic::Profiles
        && matches!(
            item.envelope.kind.as_str(),
            "profile.merged" | "profile.erased" | "profile.unmerged"
        )
}

/// Applies `batch` in one transaction; see the module's documentation.
pub(super) async fn apply(
    handler: &SegmentationHandler,
    batch: &[BatchItem],
) -> Result<(), HandleError> {
    let mut tx = handler.pool.begin().await?;
    let mut fresh = vec![false; batch.len()];
    let mut by_consumer: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
    for (i, b) in batch.iter().enumerate() {
        if let Some(name) = consumer_name(b.meta.topic) {
            by_consumer.entry(name).or_default().push(i);
        }
    }
    for (name, positions) in &by_consumer {
        let ids: Vec<(&TenantId, &str)> = positions
            .iter()
            .map(|i| {
                (
                    &batch[*i].envelope.tenant_id,
                    batch[*i].envelope.id.as_str(),
                )
            })
            .collect();
        let first = dedupe::first_deliveries(&mut tx, name, &ids).await?;
        for (i, f) in positions.iter().zip(first) {
            fresh[*i] = f;
        }
    }
    // Shared generation locks, taken in one order so that batches never wait on each other.
    let mut tenants: Vec<&TenantId> = batch
        .iter()
        .zip(&fresh)
        .filter(|(_, f)| **f)
        .map(|(b, _)| &b.envelope.tenant_id)
        .collect();
    tenants.sort();
    tenants.dedup();
    for tenant in tenants {
        settings::hold_generation(&mut tx, tenant).await?;
    }
    let mut stretch: Vec<&BatchItem> = Vec::new();
    for (item, _) in batch.iter().zip(&fresh).filter(|(_, f)| **f) {
        if structural(item) {
            apply_stretch(handler, &mut tx, &stretch).await?;
            stretch.clear();
            handler.on_profile(&mut tx, &item.envelope).await?;
        } else {
            stretch.push(item);
        }
    }
    apply_stretch(handler, &mut tx, &stretch).await?;
    tx.commit().await?;
    Ok(())
}

/// Applies consecutive messages that leave ids where they are, tenant by tenant.
async fn apply_stretch(
    handler: &SegmentationHandler,
    conn: &mut PgConnection,
    stretch: &[&BatchItem],
) -> Result<(), HandleError> {
    let mut by_tenant: BTreeMap<&TenantId, Vec<(&Envelope, Topic)>> = BTreeMap::new();
    for item in stretch {
        if item.meta.topic == Topic::Loyalty && item.envelope.kind != "tier.changed" {
            continue;
        }
        if item.meta.topic == Topic::Profiles
            && !matches!(
                item.envelope.kind.as_str(),
                "profile.created" | "profile.updated"
            )
        {
            continue;
        }
        by_tenant
            .entry(&item.envelope.tenant_id)
            .or_default()
            .push((&item.envelope, item.meta.topic));
    }
    for (tenant, envelopes) in by_tenant {
        let mut ids = Vec::with_capacity(envelopes.len());
        for (e, _) in &envelopes {
            ids.push(require_customer(e)?);
        }
        let (seen, generation) = bulk::lookup_many(conn, tenant, &ids).await?;
        let mut counted = Vec::new();
        let mut traits = HashMap::new();
        let mut tiers = HashMap::new();
        let mut touched: BTreeMap<Uuid, Touched> = BTreeMap::new();
        for ((e, topic), id) in envelopes.iter().zip(&ids) {
            let (e, topic) = (*e, *topic);
            let Some(s) = seen.get(id).filter(|s| !s.erased) else {
                continue;
            };
            let (change, reason) = match topic {
                Topic::Events | Topic::Interactions => {
                    let interaction = topic == Topic::Interactions;
                    counted.push(Counted {
                        customer: s.customer,
                        envelope: e,
                        interaction,
                    });
                    let name = crate::store::activity::event_name(e);
                    let is_order = !interaction && name == crate::domain::facts::ORDER_COMPLETED;
                    let reason = if interaction { "interaction" } else { "event" };
                    (Change::Event { name, is_order }, reason)
                }
                Topic::Profiles => {
                    traits.insert(s.customer, &e.traits);
                    (Change::Traits, "traits")
                }
                _ => {
                    let tier = e
                        .properties
                        .get("tier")
                        .and_then(serde_json::Value::as_str)
                        .ok_or_else(|| {
                            HandleError::permanent(
                                "missing_property",
                                "tier.changed without properties.tier",
                            )
                        })?;
                    tiers.insert(s.customer, tier);
                    (Change::Tier, "tier")
                }
            };
            match touched.get_mut(&s.customer) {
                Some(t) => {
                    t.change = std::mem::replace(&mut t.change, Change::All).and(change);
                    t.reason = reason;
                }
                None => {
                    touched.insert(s.customer, Touched { change, reason });
                }
            }
        }
        bulk::record_many(conn, tenant, &counted).await?;
        bulk::set_traits_many(conn, tenant, &traits).await?;
        bulk::set_tiers_many(conn, tenant, &tiers).await?;
        if touched.is_empty() {
            continue;
        }
        let model = handler.catalog.at(conn, tenant, generation).await?;
        evaluate_each(conn, tenant, &model, &touched, Utc::now()).await?;
    }
    Ok(())
}
