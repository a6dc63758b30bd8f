//! Online probabilistic matching: a customer whose person traits changed is compared with the
//! customers sharing one of its blocking keys, scored with the tenant's model (fitted by the
//! last clean-up), and merged or sent to review like in the batch clean-up.

use crm_envelope::TenantId;
use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::matching::fellegi_sunter::Model;
use crate::domain::matching::person;
use crate::domain::matching::person::person_of;
use crate::domain::matching::schema::Record;
use crate::domain::matching::MatchOptions;
use crate::domain::settings::Settings;
use crate::merge;
use crate::merge::Merged;
use crate::resolve::pending::Pending;
use crate::store::match_keys::{keys_of, refresh_keys};
use crm_kafka::HandleError;

/// Most candidates compared for one customer (a key shared by more says little).
pub const MAX_CANDIDATES: i64 = 200;

/// The best-scoring candidate of `record`.
#[derive(Debug, Clone)]
pub struct Best {
    /// The candidate customer.
    pub customer: Uuid,
    /// Match probability.
    pub probability: f64,
    /// The evidence: probability, weight, each field's weight.
    pub evidence: Value,
}

/// Compares `record` with the customers sharing one of its keys and returns the best.
pub async fn best_candidate(
    conn: &mut PgConnection,
    tenant: &TenantId,
    model: &Model,
    customer: Uuid,
    record: &Record,
) -> Result<Option<Best>, sqlx::Error> {
    let schema = person::shared();
    let keys = keys_of(schema, record);
    // The customers sharing the most keys first: when a key is common, the likeliest
    // candidates are still compared.
    let candidates: Vec<(Uuid, sqlx::types::Json<Map<String, Value>>)> = sqlx::query_as(
        "SELECT c.id, c.traits
         FROM (SELECT customer_id, count(*) AS shared FROM match_keys
               WHERE tenant_id = $1 AND key = ANY($2) AND customer_id <> $3
               GROUP BY customer_id ORDER BY shared DESC, customer_id LIMIT $4) k
         JOIN customers c ON c.tenant_id = $1 AND c.id = k.customer_id AND c.status = 'active'
         ORDER BY k.shared DESC",
    )
    .bind(tenant.as_str())
    .bind(&keys)
    .bind(customer)
    .bind(MAX_CANDIDATES)
    .fetch_all(conn)
    .await?;
    let comparer = schema.comparer();
    let mut pattern = vec![0u8; schema.fields.len()];
    let mut best: Option<(Uuid, f64, Vec<u8>)> = None;
    for (id, traits) in candidates {
        let Some(other) = person_of(&traits.0) else {
            continue;
        };
        comparer.compare(record, &other, &mut pattern);
        let p = model.probability(&pattern);
        if best.as_ref().is_none_or(|(_, bp, _)| p > *bp) {
            best = Some((id, p, pattern.clone()));
        }
    }
    Ok(best.map(|(id, probability, pattern)| Best {
        customer: id,
        probability,
        evidence: json!({
            "rule": "fellegi_sunter_online",
            "probability": probability,
            "weight": model.weight(&pattern),
            "fields": model.explain(&pattern),
        }),
    }))
}

/// Online matching of `customer` (whose traits are `traits`), inside the caller's transaction:
/// refreshes its keys, and when the tenant has a `model`, merges it with its best candidate at
/// or above the merge threshold (unless a guard says review) or opens a review above the review
/// threshold. `pending` is written before a merge, which moves the customer's rows.
pub(crate) async fn match_customer(
    tx: &mut PgConnection,
    tenant: &TenantId,
    settings: &Settings,
    model: Option<&Model>,
    customer: Uuid,
    traits: &Map<String, Value>,
    pending: &mut Pending,
) -> Result<Option<Merged>, HandleError> {
    let Some(record) = refresh_keys(tx, tenant, customer, traits).await? else {
        return Ok(None);
    };
    let Some(model) = model else {
        return Ok(None);
    };
    let Some(best) = best_candidate(tx, tenant, model, customer, &record).await? else {
        return Ok(None);
    };
    let options = MatchOptions::default();
    if best.probability < options.review_at {
        return Ok(None);
    }
    let pair = (customer, best.customer);
    let blocker = merge::merge_blocker(tx, tenant, settings, customer, best.customer).await?;
    if best.probability >= options.merge_at && blocker.is_none() {
        pending.flush(tx).await?;
        let merged = merge::merge(tx, tenant, settings, pair, "probabilistic", best.evidence);
        return Ok(merged.await?);
    }
    let reason = blocker.unwrap_or("probabilistic");
    if reason != "rejected_before" {
        merge::open_review(
            tx,
            tenant,
            pair,
            reason,
            Some(best.probability),
            best.evidence,
        )
        .await?;
    }
    Ok(None)
}
