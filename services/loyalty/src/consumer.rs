//! The consumer: resolved events earn points (a poll at a time, in one transaction), profile
//! changes bring birthdays, merges move balances, erasures clear what identifies a person.

use std::collections::BTreeMap;

use chrono::Utc;
use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::outbox::enqueue_all;
use crm_kafka::{dedupe, require_customer, BatchItem, HandleError, Handler, MessageMeta};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::earn;
use crate::store::ledger::PostError;
use crate::store::members;

/// The dedupe record of events.
const EVENTS: &str = "loyalty:crm.events.v1";
/// The dedupe record of profile changes.
const PROFILES: &str = "loyalty:crm.profiles.v1";

/// Applies messages once per message id.
#[derive(Clone)]
pub struct LoyaltyHandler {
    pool: PgPool,
}

impl LoyaltyHandler {
    /// A handler over the part's database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// A posting failure as the consumer sees it.
fn post_error(e: PostError) -> HandleError {
    match e {
        PostError::Db(e) => e.into(),
        PostError::Unbalanced(..) => HandleError::permanent("unbalanced", e.to_string()),
        PostError::Insufficient { .. } => HandleError::permanent(
            "insufficient_points",
            "a posting would leave a negative balance",
        ),
    }
}

fn uuid_prop(e: &Envelope, key: &str) -> Result<Uuid, HandleError> {
    e.uuid_property(key).ok_or_else(|| {
        HandleError::permanent(
            "missing_property",
            format!("{} without a valid properties.{key}", e.kind),
        )
    })
}

/// Applies one `crm.profiles.v1` message inside the caller's transaction: birthdays from
/// traits, merges (balances, lots and redemptions move to the survivor) and erasures
/// (docs/events.md).
async fn on_profile(conn: &mut PgConnection, e: &Envelope) -> Result<(), HandleError> {
    let tenant = &e.tenant_id;
    match e.kind.as_str() {
        "profile.created" | "profile.updated" => {
            let id = require_customer(e)?;
            let birthday = ["birthday", "date_of_birth", "dob"]
                .iter()
                .find_map(|k| e.traits.get(*k).and_then(serde_json::Value::as_str))
                .filter(|b| chrono::NaiveDate::parse_from_str(b, "%Y-%m-%d").is_ok());
            members::set_birthday(conn, tenant, id, birthday).await?;
        }
        "profile.merged" => {
            let (survivor, merged) = (uuid_prop(e, "survivor_id")?, uuid_prop(e, "merged_id")?);
            members::merge(conn, tenant, &e.id, survivor, merged)
                .await
                .map_err(post_error)?;
        }
        "profile.erased" => members::erase(conn, tenant, &e.erased_ids()).await?,
        _ => {}
    }
    Ok(())
}

/// One tenant's events of a batch, each with its customer.
type TenantEvents<'a> = (TenantId, Vec<(&'a Envelope, Uuid)>);

/// Earns for `events` (any tenants, in order) inside `conn`'s transaction.
async fn earn_all(
    conn: &mut PgConnection,
    events: &[(&Envelope, Uuid)],
) -> Result<(), HandleError> {
    let mut by_tenant: BTreeMap<&str, TenantEvents<'_>> = BTreeMap::new();
    for (e, c) in events {
        by_tenant
            .entry(e.tenant_id.as_str())
            .or_insert_with(|| (e.tenant_id.clone(), Vec::new()))
            .1
            .push((e, *c));
    }
    let now = Utc::now();
    let mut unsettled = Vec::with_capacity(by_tenant.len());
    for (tenant, list) in by_tenant.values() {
        let (messages, programme) = earn::apply(conn, tenant, list, now)
            .await
            .map_err(post_error)?;
        enqueue_all(conn, &messages).await?;
        unsettled.push(programme);
    }
    // Last, so the programme's accounts stay locked only while the transaction commits.
    for programme in unsettled {
        programme.settle(conn).await.map_err(post_error)?;
    }
    Ok(())
}

impl Handler for LoyaltyHandler {
    async fn handle(&self, e: &Envelope, meta: &MessageMeta) -> Result<(), HandleError> {
        let consumer = match meta.topic {
            Topic::Events => EVENTS,
            Topic::Profiles => PROFILES,
            _ => return Ok(()),
        };
        let mut tx = self.pool.begin().await?;
        if !dedupe::first_delivery(&mut tx, consumer, &e.tenant_id, &e.id).await? {
            return Ok(());
        }
        if meta.topic == Topic::Events {
            let customer = require_customer(e)?;
            earn_all(&mut tx, &[(e, customer)]).await?;
        } else {
            on_profile(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A poll of `crm.events.v1` in one transaction; other topics go one at a time.
    async fn handle_batch(&self, batch: &[BatchItem]) -> Result<bool, HandleError> {
        if batch.iter().any(|b| b.meta.topic != Topic::Events) {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
        let ids: Vec<(&TenantId, &str)> = batch
            .iter()
            .map(|b| (&b.envelope.tenant_id, b.envelope.id.as_str()))
            .collect();
        let fresh = dedupe::first_deliveries(&mut tx, EVENTS, &ids).await?;
        let mut events = Vec::with_capacity(batch.len());
        for (b, f) in batch.iter().zip(fresh) {
            if f {
                events.push((&b.envelope, require_customer(&b.envelope)?));
            }
        }
        earn_all(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(true)
    }
}
