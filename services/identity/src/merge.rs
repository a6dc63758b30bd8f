//! The identity graph's changes: merging two customers (with a snapshot for an unmerge and
//! the evidence), and opening a review when two customers may be one but must not merge
//! automatically. Every function runs inside the caller's transaction.

use chrono::{DateTime, Utc};
use crm_envelope::{Envelope, Profile, TenantId, Topic};
use crm_kafka::outbox;
use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::settings::Settings;
use crate::domain::survivorship::{combine, Traits};
use crate::store::profile;
use crate::store::{match_keys, owned, search};

/// A customer row, locked for a change.
#[derive(Debug, sqlx::FromRow)]
struct Locked {
    id: Uuid,
    traits: sqlx::types::Json<Map<String, Value>>,
    trait_sources: sqlx::types::Json<Map<String, Value>>,
    event_count: i64,
    first_seen_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

async fn lock(
    tx: &mut PgConnection,
    tenant: &TenantId,
    ids: [Uuid; 2],
) -> Result<Vec<Locked>, sqlx::Error> {
    // Locked in id order, so two merges of the same pair cannot deadlock.
    sqlx::query_as(
        "SELECT id, traits, trait_sources, event_count, first_seen_at, last_seen_at, created_at
         FROM customers WHERE tenant_id = $1 AND id = ANY($2) AND status = 'active'
         ORDER BY id FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(&ids[..])
    .fetch_all(tx)
    .await
}

/// A stored merge as the API and exports show it (the snapshot, which holds personal data,
/// stays inside).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MergeRecord {
    /// Merge id.
    pub id: Uuid,
    /// The customer that stayed.
    pub survivor_id: Uuid,
    /// The customer that became its alias.
    pub merged_id: Uuid,
    /// `deterministic`, `probabilistic` or `manual`.
    pub kind: String,
    /// Why: the event, the identifier kind or field weights, the rule.
    #[schema(value_type = Object)]
    pub evidence: sqlx::types::Json<Value>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was undone, if it was.
    pub undone_at: Option<DateTime<Utc>>,
}

/// The merges customer `id` took part in, newest first.
pub async fn merges_of(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Vec<MergeRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, survivor_id, merged_id, kind, evidence, created_at, undone_at FROM merges
         WHERE tenant_id = $1 AND (survivor_id = $2 OR merged_id = $2)
         ORDER BY created_at DESC, id DESC",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(conn)
    .await
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merge's id.
    pub merge_id: Uuid,
    /// The customer that stays.
    pub survivor: Uuid,
    /// The customer that became an alias of the survivor.
    pub merged: Uuid,
}

/// Which of two customers survives a merge: the older (first created; then the smaller id),
/// so a customer id that clients already hold keeps working as the main id.
fn survivor_of(rows: &[Locked]) -> Option<(usize, usize)> {
    let [a, b] = rows else { return None };
    let a_first = (a.created_at, a.id) <= (b.created_at, b.id);
    Some(if a_first { (0, 1) } else { (1, 0) })
}

/// Merges customers `a` and `b`: the older survives; the other's identifiers move to it, its
/// traits combine by the tenant's survivorship rule, its counts add up, and it stays as an
/// alias. The merge is stored with `evidence` and a snapshot of the merged customer, and
/// `profile.merged` is enqueued. `None` when either is no longer active (already merged).
pub async fn merge(
    tx: &mut PgConnection,
    tenant: &TenantId,
    settings: &Settings,
    (a, b): (Uuid, Uuid),
    kind: &str,
    evidence: Value,
) -> Result<Option<Merged>, sqlx::Error> {
    if a == b {
        return Ok(None);
    }
    let rows = lock(tx, tenant, [a, b]).await?;
    let Some((s, m)) = survivor_of(&rows) else {
        return Ok(None);
    };
    let (survivor, merged) = (&rows[s], &rows[m]);
    let identifiers: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, value FROM identifiers WHERE tenant_id = $1 AND customer_id = $2
         ORDER BY kind, value",
    )
    .bind(tenant.as_str())
    .bind(merged.id)
    .fetch_all(&mut *tx)
    .await?;
    let snapshot = json!({
        "traits": merged.traits.0,
        "trait_sources": merged.trait_sources.0,
        "identifiers": identifiers.iter().map(|(k, v)| json!({"kind": k, "value": v})).collect::<Vec<_>>(),
        "event_count": merged.event_count,
        "first_seen_at": merged.first_seen_at,
        "last_seen_at": merged.last_seen_at,
        // What the survivor held before, so an unmerge can give back values the merge replaced.
        "survivor_before": {
            "traits": survivor.traits.0,
            "trait_sources": survivor.trait_sources.0,
        },
    });

    let mut traits = Traits {
        values: survivor.traits.0.clone(),
        sources: survivor.trait_sources.0.clone(),
    };
    let incoming = Traits {
        values: merged.traits.0.clone(),
        sources: merged.trait_sources.0.clone(),
    };
    combine(
        settings.survivorship,
        &settings.source_trust,
        &mut traits,
        &incoming,
    );

    sqlx::query(
        "UPDATE identifiers SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant.as_str())
    .bind(merged.id)
    .bind(survivor.id)
    .execute(&mut *tx)
    .await?;
    crate::store::profile::merge_unattached(tx, tenant, survivor.id, merged.id).await?;
    sqlx::query(
        "UPDATE customers SET traits = $3, trait_sources = $4, event_count = event_count + $5,
                first_seen_at = LEAST(first_seen_at, $6), last_seen_at = GREATEST(last_seen_at, $7),
                version = version + 1, updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(survivor.id)
    .bind(sqlx::types::Json(&traits.values))
    .bind(sqlx::types::Json(&traits.sources))
    .bind(merged.event_count)
    .bind(merged.first_seen_at)
    .bind(merged.last_seen_at)
    .execute(&mut *tx)
    .await?;
    // The merged customer keeps no personal data of its own (the snapshot has it), and
    // aliases of it now point at the survivor, so every alias is one hop from its survivor.
    sqlx::query(
        "UPDATE customers SET status = 'merged', merged_into = $3, traits = '{}'::jsonb,
                trait_sources = '{}'::jsonb, search_text = '', version = version + 1,
                updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(merged.id)
    .bind(survivor.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE customers SET merged_into = $3 WHERE tenant_id = $1 AND merged_into = $2")
        .bind(tenant.as_str())
        .bind(merged.id)
        .bind(survivor.id)
        .execute(&mut *tx)
        .await?;

    owned::follow_merge(tx, tenant, survivor.id, merged.id).await?;
    search::refresh(tx, tenant, survivor.id).await?;
    sqlx::query("DELETE FROM match_keys WHERE tenant_id = $1 AND customer_id = $2")
        .bind(tenant.as_str())
        .bind(merged.id)
        .execute(&mut *tx)
        .await?;
    match_keys::refresh_keys(tx, tenant, survivor.id, &traits.values).await?;

    let merge_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO merges (tenant_id, id, survivor_id, merged_id, kind, evidence, snapshot)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant.as_str())
    .bind(merge_id)
    .bind(survivor.id)
    .bind(merged.id)
    .bind(kind)
    .bind(sqlx::types::Json(&evidence))
    .bind(sqlx::types::Json(&snapshot))
    .execute(&mut *tx)
    .await?;

    let mut event = Envelope::domain(tenant.clone(), "profile.merged", survivor.id, "identity");
    event.properties = json!({
        "merge_id": merge_id,
        "survivor_id": survivor.id,
        "merged_id": merged.id,
        "kind": kind,
        "evidence": evidence,
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    outbox::enqueue(tx, Topic::Profiles, &event).await?;
    Ok(Some(Merged {
        merge_id,
        survivor: survivor.id,
        merged: merged.id,
    }))
}

/// [`merge`] for merges made outside event resolution (a review, the clean-up): also enqueues
/// the survivor's `profile.updated` and returns its profile, for the cache after commit.
pub async fn merge_announced(
    tx: &mut PgConnection,
    tenant: &TenantId,
    settings: &Settings,
    pair: (Uuid, Uuid),
    kind: &str,
    evidence: Value,
) -> Result<Option<(Merged, Profile)>, sqlx::Error> {
    let Some(merged) = merge(tx, tenant, settings, pair, kind, evidence).await? else {
        return Ok(None);
    };
    let Some(survivor) = profile::load(tx, tenant, merged.survivor).await? else {
        return Ok(None);
    };
    let event = profile::change_event(tenant, "profile.updated", &survivor);
    outbox::enqueue(tx, Topic::Profiles, &event).await?;
    Ok(Some((merged, survivor)))
}

/// Opens a review of customers `a` and `b` (once per pair while pending).
pub async fn open_review(
    tx: &mut PgConnection,
    tenant: &TenantId,
    (a, b): (Uuid, Uuid),
    reason: &str,
    probability: Option<f64>,
    evidence: Value,
) -> Result<(), sqlx::Error> {
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    sqlx::query(
        "INSERT INTO match_reviews (tenant_id, id, customer_a, customer_b, reason, probability, evidence)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, customer_a, customer_b) WHERE status = 'pending' DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(Uuid::now_v7())
    .bind(a)
    .bind(b)
    .bind(reason)
    .bind(probability)
    .bind(sqlx::types::Json(&evidence))
    .execute(tx)
    .await?;
    Ok(())
}

/// Why `a` and `b` must not merge automatically, if they must not: a person decided they are
/// two (a rejected review or an unmerge), they hold different user_ids, or together they would
/// hold more identifiers of a kind than the tenant allows.
pub async fn merge_blocker(
    tx: &mut PgConnection,
    tenant: &TenantId,
    settings: &Settings,
    a: Uuid,
    b: Uuid,
) -> Result<Option<&'static str>, sqlx::Error> {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    let rejected: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM match_reviews WHERE tenant_id = $1 AND customer_a = $2
                        AND customer_b = $3 AND status = 'rejected')",
    )
    .bind(tenant.as_str())
    .bind(x)
    .bind(y)
    .fetch_one(&mut *tx)
    .await?;
    if rejected {
        return Ok(Some("rejected_before"));
    }
    let counts: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT kind, count(DISTINCT value), count(DISTINCT customer_id)
         FROM identifiers WHERE tenant_id = $1 AND customer_id IN ($2, $3) GROUP BY kind",
    )
    .bind(tenant.as_str())
    .bind(a)
    .bind(b)
    .fetch_all(&mut *tx)
    .await?;
    for (kind, values, holders) in counts {
        if kind == "user_id" && holders > 1 {
            return Ok(Some("different_user_id"));
        }
        if values > i64::from(settings.max_identifiers_per_kind) {
            return Ok(Some("identifier_cap"));
        }
    }
    Ok(None)
}
