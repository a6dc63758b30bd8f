//! Cleaning a tenant's whole base with the probabilistic matcher: customers whose person traits
//! (names, address, date of birth, national id) match above the merge threshold merge (kind
//! `probabilistic`, with each field's weight as evidence); pairs between the thresholds, and
//! pairs the guards stop, go to review. Runs after every import and on demand.

use std::collections::HashMap;

use crm_envelope::TenantId;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::matching::person;
use crate::domain::matching::person::person_of;
use crate::domain::matching::schema::Record;
use crate::domain::matching::{deduplicate, MatchOptions, ScoredPair};
use crate::merge;
use crate::store::hot::HotProfiles;
use crate::store::match_keys;
use crate::store::settings;

/// Fewer candidate pairs than this are too few to estimate m and u: every likely pair goes to
/// review instead of merging.
pub const MIN_PAIRS_TO_MERGE: usize = 20;

/// What a clean-up did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleanup {
    /// Active customers with at least two person fields (the ones compared).
    pub customers: usize,
    /// Candidate pairs compared.
    pub candidate_pairs: usize,
    /// Merges made.
    pub merged: usize,
    /// Reviews opened.
    pub reviews: usize,
    /// Whether there were too few pairs to merge automatically.
    pub too_few_pairs: bool,
}

/// The persistent job kind of a clean-up on demand (`crm_service::jobs`).
pub const JOB: &str = "cleanup";

/// Runs a claimed clean-up job; its result is the [`Cleanup`] summary.
pub async fn run_job(
    pool: &PgPool,
    hot: &HotProfiles,
    job: &crm_service::jobs::Claimed,
) -> Result<Value, String> {
    let done = clean_tenant(pool, hot, &job.tenant)
        .await
        .map_err(|e| format!("{e:#}"))?;
    serde_json::to_value(done).map_err(|e| e.to_string())
}

/// Cleans `tenant`'s base.
pub async fn clean_tenant(
    pool: &PgPool,
    hot: &HotProfiles,
    tenant: &TenantId,
) -> anyhow::Result<Cleanup> {
    let rows: Vec<(Uuid, sqlx::types::Json<Map<String, Value>>)> = sqlx::query_as(
        "SELECT id, traits FROM customers WHERE tenant_id = $1 AND status = 'active' ORDER BY id",
    )
    .bind(tenant.as_str())
    .fetch_all(pool)
    .await?;
    let (ids, records): (Vec<Uuid>, Vec<Record>) = rows
        .into_iter()
        .filter_map(|(id, traits)| person_of(&traits.0).map(|r| (id, r)))
        .unzip();
    let mut done = Cleanup {
        customers: ids.len(),
        ..Cleanup::default()
    };
    if ids.len() < 2 {
        done.too_few_pairs = true;
        return Ok(done);
    }
    // The fit and the pair scoring take seconds for a large base: off the async runtime.
    let outcome = tokio::task::spawn_blocking(move || {
        deduplicate(person::shared(), &records, &MatchOptions::default())
    })
    .await?
    .map_err(anyhow::Error::msg)?;
    done.candidate_pairs = outcome.stats.candidate_pairs;
    done.too_few_pairs = outcome.stats.candidate_pairs < MIN_PAIRS_TO_MERGE;
    if !done.too_few_pairs {
        // The model online matching scores new customers with.
        let mut conn = pool.acquire().await?;
        match_keys::save_model(&mut conn, tenant, &outcome.model, done.candidate_pairs).await?;
    }

    let mut likely: Vec<(ScoredPair, bool)> = outcome
        .matches
        .iter()
        .map(|p| (*p, !done.too_few_pairs))
        .chain(outcome.review.iter().map(|p| (*p, false)))
        .collect();
    likely.sort_by(|x, y| y.0.probability.total_cmp(&x.0.probability));
    // Where a customer went, as merges happen along the list.
    let mut moved: HashMap<Uuid, Uuid> = HashMap::new();
    let follow = |moved: &HashMap<Uuid, Uuid>, mut id: Uuid| {
        while let Some(next) = moved.get(&id) {
            id = *next;
        }
        id
    };
    for (pair, merge) in likely {
        let a = follow(&moved, ids[pair.a as usize]);
        let b = follow(&moved, ids[pair.b as usize]);
        if a == b {
            continue;
        }
        let evidence = json!({
            "rule": "fellegi_sunter",
            "probability": pair.probability,
            "weight": pair.weight,
            "fields": outcome.model.explain(outcome.patterns.get(pair.pattern as usize)),
        });
        let mut tx = pool.begin().await?;
        let settings = settings::load(&mut tx, tenant).await?;
        let blocker = merge::merge_blocker(&mut tx, tenant, &settings, a, b).await?;
        match (merge, blocker) {
            (true, None) => {
                let merged = merge::merge_announced(
                    &mut tx,
                    tenant,
                    &settings,
                    (a, b),
                    "probabilistic",
                    evidence,
                )
                .await?;
                tx.commit().await?;
                if let Some((m, survivor)) = merged {
                    moved.insert(m.merged, m.survivor);
                    hot.evict(tenant, m.merged).await;
                    hot.refresh(tenant, &survivor).await;
                    done.merged += 1;
                }
            }
            (_, blocker) => {
                let reason = blocker.unwrap_or("probabilistic");
                if reason != "rejected_before" {
                    merge::open_review(
                        &mut tx,
                        tenant,
                        (a, b),
                        reason,
                        Some(pair.probability),
                        evidence,
                    )
                    .await?;
                    done.reviews += 1;
                }
                tx.commit().await?;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matching::person::FIELDS;
    use serde_json::json;

    #[test]
    fn person_records_from_traits() {
        let traits = json!({"first_name": "Ana", "last_name": "Lima", "zip": 4000, "plan": "pro"});
        let record = person_of(traits.as_object().unwrap()).unwrap();
        let present: Vec<&str> = FIELDS
            .iter()
            .zip(&record.values)
            .filter(|(_, v)| v.is_some())
            .map(|(f, _)| *f)
            .collect();
        assert_eq!(present, ["given_name", "surname", "postcode"]);
        assert!(person_of(json!({"first_name": "Ana"}).as_object().unwrap()).is_none());
    }
}
