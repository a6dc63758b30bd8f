//! The consumer: resolved events feed the aggregates and re-evaluate the segments they can
//! change; profile changes bring traits, merges and erasures; loyalty brings tiers. Each
//! message is applied once, in one transaction with its effects and its outgoing messages.

mod batch;

use std::sync::Arc;

use chrono::Utc;
use crm_envelope::{Envelope, Topic};
use crm_kafka::outbox::enqueue_all;
use crm_kafka::{dedupe, require_customer, BatchItem, HandleError, Handler, MessageMeta};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::engine::apply::membership_message;
use crate::engine::{evaluate_many, Catalog, Change, Pass, Writes};
use crate::store::activity;
use crate::store::settings;

/// The name a topic's messages are deduplicated under (`None`: not a topic this part reads).
fn consumer_name(topic: Topic) -> Option<&'static str> {
    match topic {
        Topic::Events => Some("segmentation:crm.events.v1"),
        Topic::Profiles => Some("segmentation:crm.profiles.v1"),
        Topic::Loyalty => Some("segmentation:crm.loyalty.v1"),
        Topic::Interactions => Some("segmentation:crm.interactions.v1"),
        _ => None,
    }
}

/// Applies messages of the subscribed topics, once per message id.
#[derive(Clone)]
pub struct SegmentationHandler {
    pool: PgPool,
    catalog: Arc<Catalog>,
}

impl SegmentationHandler {
    /// A handler over the part's database and the shared catalog of compiled tenants.
    pub fn new(pool: PgPool, catalog: Arc<Catalog>) -> Self {
        Self { pool, catalog }
    }

    /// Evaluates `customer` after `change` with the tenant's model at `generation`.
    async fn evaluate(
        &self,
        conn: &mut PgConnection,
        e: &Envelope,
        customer: Uuid,
        generation: i64,
        change: Change,
        reason: &str,
    ) -> Result<(), HandleError> {
        let model = self.catalog.at(conn, &e.tenant_id, generation).await?;
        evaluate_many(
            conn,
            &e.tenant_id,
            &model,
            &[customer],
            &change,
            Pass {
                now: Utc::now(),
                reason,
                writes: Writes::Statements,
            },
        )
        .await?;
        Ok(())
    }

    async fn on_event(&self, conn: &mut PgConnection, e: &Envelope) -> Result<(), HandleError> {
        let found = activity::lookup(conn, &e.tenant_id, require_customer(e)?).await?;
        if found.erased {
            return Ok(());
        }
        let recorded = activity::record_event(conn, found.customer, e).await?;
        let change = Change::Event {
            name: recorded.name,
            is_order: recorded.is_order,
        };
        self.evaluate(conn, e, found.customer, found.generation, change, "event")
            .await
    }

    async fn on_interaction(
        &self,
        conn: &mut PgConnection,
        e: &Envelope,
    ) -> Result<(), HandleError> {
        let found = activity::lookup(conn, &e.tenant_id, require_customer(e)?).await?;
        if found.erased {
            return Ok(());
        }
        let recorded = activity::record_interaction(conn, found.customer, e).await?;
        let change = Change::Event {
            name: recorded.name,
            is_order: false,
        };
        self.evaluate(
            conn,
            e,
            found.customer,
            found.generation,
            change,
            "interaction",
        )
        .await
    }

    async fn on_profile(&self, conn: &mut PgConnection, e: &Envelope) -> Result<(), HandleError> {
        let tenant = &e.tenant_id;
        let uuid_of = |key: &str| {
            e.uuid_property(key).ok_or_else(|| {
                HandleError::permanent(
                    "missing_property",
                    format!("{} without a valid properties.{key}", e.kind),
                )
            })
        };
        match e.kind.as_str() {
            "profile.created" | "profile.updated" => {
                let found = activity::lookup(conn, tenant, require_customer(e)?).await?;
                if found.erased {
                    return Ok(());
                }
                activity::set_traits(conn, tenant, found.customer, &e.traits).await?;
                self.evaluate(
                    conn,
                    e,
                    found.customer,
                    found.generation,
                    Change::Traits,
                    "traits",
                )
                .await
            }
            "profile.merged" => {
                let (survivor, merged) = (uuid_of("survivor_id")?, uuid_of("merged_id")?);
                let left = activity::merge(conn, tenant, survivor, merged).await?;
                let model = self.catalog.get(conn, tenant).await?;
                let exits = left
                    .iter()
                    .map(|s| membership_message(&e.tenant_id, &model, merged, *s, false, "merged"))
                    .collect::<Result<Vec<_>, _>>()?;
                enqueue_all(conn, &exits).await?;
                self.evaluate(conn, e, survivor, model.generation, Change::All, "merge")
                    .await
            }
            "profile.erased" => {
                activity::erase(conn, tenant, &e.erased_ids()).await?;
                Ok(())
            }
            "profile.unmerged" => {
                activity::unmerge(conn, tenant, uuid_of("restored_id")?).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn on_loyalty(&self, conn: &mut PgConnection, e: &Envelope) -> Result<(), HandleError> {
        if e.kind != "tier.changed" {
            return Ok(());
        }
        let tier = e
            .properties
            .get("tier")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                HandleError::permanent("missing_property", "tier.changed without properties.tier")
            })?;
        let tenant = &e.tenant_id;
        let found = activity::lookup(conn, tenant, require_customer(e)?).await?;
        if found.erased {
            return Ok(());
        }
        activity::set_tier(conn, tenant, found.customer, tier).await?;
        self.evaluate(
            conn,
            e,
            found.customer,
            found.generation,
            Change::Tier,
            "tier",
        )
        .await
    }
}

impl Handler for SegmentationHandler {
    async fn handle(&self, e: &Envelope, meta: &MessageMeta) -> Result<(), HandleError> {
        let Some(consumer) = consumer_name(meta.topic) else {
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        if !dedupe::first_delivery(&mut tx, consumer, &e.tenant_id, &e.id).await? {
            return Ok(());
        }
        settings::hold_generation(&mut tx, &e.tenant_id).await?;
        match meta.topic {
            Topic::Events => self.on_event(&mut tx, e).await?,
            Topic::Profiles => self.on_profile(&mut tx, e).await?,
            Topic::Interactions => self.on_interaction(&mut tx, e).await?,
            _ => self.on_loyalty(&mut tx, e).await?,
        }
        tx.commit().await?;
        Ok(())
    }

    /// A poll at once (see [`batch`]); on an error the loop retries it one message at a time,
    /// so a bad message is dead-lettered alone.
    async fn handle_batch(&self, batch: &[BatchItem]) -> Result<bool, HandleError> {
        batch::apply(self, batch).await?;
        Ok(true)
    }
}
