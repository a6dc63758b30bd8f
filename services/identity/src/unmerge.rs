//! Unmerge: splits a merge again from the snapshot the merge stored.
//!
//! The merged customer comes back with its own id, traits, identifiers and counts as they were
//! at the merge. The survivor gives back what came from it: identifiers from the snapshot,
//! trait values that still carry the merged customer's provenance (the survivor's earlier value
//! returns, if it had one), and the merged customer's event count. What happened after the
//! merge stays with the survivor: events cannot be split without a per-event owner. Customers
//! merged into the merged one earlier become its aliases again. The pair is recorded as a
//! rejected review, so the next event linking them opens a review instead of merging again.

use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::outbox;
use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store::{match_keys, owned, profile, search};

/// The merge's stored row.
#[derive(Debug, sqlx::FromRow)]
struct MergeRow {
    survivor_id: Uuid,
    merged_id: Uuid,
    snapshot: sqlx::types::Json<Value>,
}

/// The survivor's current state.
#[derive(Debug, sqlx::FromRow)]
struct SurvivorRow {
    traits: sqlx::types::Json<Map<String, Value>>,
    trait_sources: sqlx::types::Json<Map<String, Value>>,
    event_count: i64,
}

/// What an unmerge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmerged {
    /// The customer that had survived (now without the merged customer's part).
    pub survivor: Uuid,
    /// The customer restored.
    pub restored: Uuid,
}

/// Why an unmerge could not be done.
#[derive(Debug)]
pub enum UnmergeError {
    /// No merge with this id for this tenant, or it was undone already.
    NotFound,
    /// The survivor was itself merged or erased since; undo that first.
    SurvivorGone,
    /// The database failed.
    Database(sqlx::Error),
}

impl From<sqlx::Error> for UnmergeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

/// Splits merge `merge_id`, inside the caller's transaction; enqueues `profile.unmerged` and
/// `profile.updated` for both customers.
pub async fn unmerge(
    tx: &mut PgConnection,
    tenant: &TenantId,
    merge_id: Uuid,
) -> Result<Unmerged, UnmergeError> {
    let row = lock_merge(tx, tenant, merge_id).await?;
    let (survivor, restored) = (row.survivor_id, row.merged_id);
    let snapshot = &row.snapshot.0;
    let current = lock_survivor(tx, tenant, survivor).await?;
    let split = split_traits(snapshot, current);
    update_customers(tx, tenant, survivor, restored, snapshot, &split).await?;
    give_back_identifiers(tx, tenant, survivor, restored, snapshot).await?;
    owned::follow_unmerge(tx, tenant, survivor, restored).await?;
    search::refresh(tx, tenant, survivor).await?;
    search::refresh(tx, tenant, restored).await?;
    match_keys::refresh_keys(tx, tenant, survivor, &split.survivor_traits).await?;
    match_keys::refresh_keys(tx, tenant, restored, &split.their_traits).await?;
    record_undone(tx, tenant, merge_id, survivor, restored).await?;
    announce(tx, tenant, merge_id, survivor, restored).await?;
    Ok(Unmerged { survivor, restored })
}

/// The merge, locked; not found when it does not exist or was undone.
async fn lock_merge(
    tx: &mut PgConnection,
    tenant: &TenantId,
    merge_id: Uuid,
) -> Result<MergeRow, UnmergeError> {
    let row: Option<MergeRow> = sqlx::query_as(
        "SELECT survivor_id, merged_id, snapshot FROM merges
         WHERE tenant_id = $1 AND id = $2 AND undone_at IS NULL FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(merge_id)
    .fetch_optional(&mut *tx)
    .await?;
    row.ok_or(UnmergeError::NotFound)
}

/// The survivor, locked; gone when it was merged or erased since.
async fn lock_survivor(
    tx: &mut PgConnection,
    tenant: &TenantId,
    survivor: Uuid,
) -> Result<SurvivorRow, UnmergeError> {
    let current: Option<SurvivorRow> = sqlx::query_as(
        "SELECT traits, trait_sources, event_count FROM customers
         WHERE tenant_id = $1 AND id = $2 AND status = 'active' FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(survivor)
    .fetch_optional(&mut *tx)
    .await?;
    current.ok_or(UnmergeError::SurvivorGone)
}

/// Both customers' traits and event counts after the split.
struct Split {
    survivor_traits: Map<String, Value>,
    survivor_sources: Map<String, Value>,
    survivor_events: i64,
    their_traits: Map<String, Value>,
    their_sources: Map<String, Value>,
    their_events: i64,
}

/// Trait values that still carry the restored customer's provenance go back to it (the
/// survivor's earlier value returns, if it had one); so does its event count.
fn split_traits(snapshot: &Value, current: SurvivorRow) -> Split {
    let (mut traits, mut sources) = (current.traits.0, current.trait_sources.0);
    let object = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (their_traits, their_sources) = (
        object(snapshot, "traits"),
        object(snapshot, "trait_sources"),
    );
    let before = snapshot
        .get("survivor_before")
        .cloned()
        .unwrap_or(Value::Null);
    let (before_traits, before_sources) =
        (object(&before, "traits"), object(&before, "trait_sources"));
    for (key, value) in &their_traits {
        let still_theirs =
            traits.get(key) == Some(value) && sources.get(key) == their_sources.get(key);
        if !still_theirs {
            continue;
        }
        match before_traits.get(key) {
            Some(old) => {
                traits.insert(key.clone(), old.clone());
                match before_sources.get(key) {
                    Some(p) => sources.insert(key.clone(), p.clone()),
                    None => sources.remove(key),
                };
            }
            None => {
                traits.remove(key);
                sources.remove(key);
            }
        }
    }
    let their_events = snapshot
        .get("event_count")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    Split {
        survivor_traits: traits,
        survivor_sources: sources,
        survivor_events: (current.event_count - their_events).max(0),
        their_traits,
        their_sources,
        their_events,
    }
}

/// Writes the survivor's remaining traits and count, and brings the restored customer back
/// with its own (and its first and last seen times from the snapshot).
async fn update_customers(
    tx: &mut PgConnection,
    tenant: &TenantId,
    survivor: Uuid,
    restored: Uuid,
    snapshot: &Value,
    split: &Split,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE customers SET traits = $3, trait_sources = $4, event_count = $5,
                version = version + 1, updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(survivor)
    .bind(sqlx::types::Json(&split.survivor_traits))
    .bind(sqlx::types::Json(&split.survivor_sources))
    .bind(split.survivor_events)
    .execute(&mut *tx)
    .await?;
    let at = |key: &str| {
        snapshot
            .get(key)
            .and_then(|v| serde_json::from_value::<chrono::DateTime<chrono::Utc>>(v.clone()).ok())
    };
    sqlx::query(
        "UPDATE customers SET status = 'active', merged_into = NULL, traits = $3,
                trait_sources = $4, event_count = $5, first_seen_at = COALESCE($6, first_seen_at),
                last_seen_at = COALESCE($7, last_seen_at),
                version = version + 1, updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(restored)
    .bind(sqlx::types::Json(&split.their_traits))
    .bind(sqlx::types::Json(&split.their_sources))
    .bind(split.their_events)
    .bind(at("first_seen_at"))
    .bind(at("last_seen_at"))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Identifiers the survivor still holds from the snapshot go back, and the restored
/// customer's own earlier aliases point at it again.
async fn give_back_identifiers(
    tx: &mut PgConnection,
    tenant: &TenantId,
    survivor: Uuid,
    restored: Uuid,
    snapshot: &Value,
) -> Result<(), sqlx::Error> {
    for identifier in snapshot
        .get("identifiers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(kind), Some(value)) = (
            identifier.get("kind").and_then(Value::as_str),
            identifier.get("value").and_then(Value::as_str),
        ) else {
            continue;
        };
        sqlx::query(
            "UPDATE identifiers SET customer_id = $5
             WHERE tenant_id = $1 AND kind = $2 AND value = $3 AND customer_id = $4",
        )
        .bind(tenant.as_str())
        .bind(kind)
        .bind(value)
        .bind(survivor)
        .bind(restored)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE customers SET merged_into = $2
         WHERE tenant_id = $1 AND id IN (SELECT merged_id FROM merges
             WHERE tenant_id = $1 AND survivor_id = $2 AND undone_at IS NULL)",
    )
    .bind(tenant.as_str())
    .bind(restored)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Marks the merge undone and records the pair as a rejected review, so the next event that
/// links them opens a review instead of merging again.
async fn record_undone(
    tx: &mut PgConnection,
    tenant: &TenantId,
    merge_id: Uuid,
    survivor: Uuid,
    restored: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE merges SET undone_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_str())
        .bind(merge_id)
        .execute(&mut *tx)
        .await?;
    let (a, b) = if survivor <= restored {
        (survivor, restored)
    } else {
        (restored, survivor)
    };
    sqlx::query(
        "INSERT INTO match_reviews (tenant_id, id, customer_a, customer_b, reason, evidence, status, decided_at)
         VALUES ($1, $2, $3, $4, 'unmerged', $5, 'rejected', now())",
    )
    .bind(tenant.as_str())
    .bind(Uuid::now_v7())
    .bind(a)
    .bind(b)
    .bind(sqlx::types::Json(json!({ "merge_id": merge_id })))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Enqueues `profile.unmerged` and both customers' `profile.updated`.
async fn announce(
    tx: &mut PgConnection,
    tenant: &TenantId,
    merge_id: Uuid,
    survivor: Uuid,
    restored: Uuid,
) -> Result<(), sqlx::Error> {
    let mut event = Envelope::domain(tenant.clone(), "profile.unmerged", survivor, "identity");
    event.properties =
        json!({ "merge_id": merge_id, "survivor_id": survivor, "restored_id": restored })
            .as_object()
            .cloned()
            .unwrap_or_default();
    outbox::enqueue(tx, Topic::Profiles, &event).await?;
    for id in [survivor, restored] {
        if let Some(p) = profile::load(tx, tenant, id).await? {
            let changed = profile::change_event(tenant, "profile.updated", &p);
            outbox::enqueue(tx, Topic::Profiles, &changed).await?;
        }
    }
    Ok(())
}
