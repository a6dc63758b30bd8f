//! The online matcher's storage: each customer's blocking keys (`match_keys`, rewritten from
//! its traits) and the tenant's fitted model (`match_models`, stored by the clean-up). Apart
//! from the matcher ([`crate::resolve::online`]), so that merges, unmerges and the clean-up keep keys and
//! model current without depending on the matching that reads them.

use crm_envelope::TenantId;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::matching::fellegi_sunter::Model;
use crate::domain::matching::person;
use crate::domain::matching::person::person_of;
use crate::domain::matching::schema::{Record, Schema};

/// The blocking keys of a person record, each tagged with its key's position so two keys with
/// the same text do not collide.
pub fn keys_of(schema: &Schema, record: &Record) -> Vec<String> {
    schema
        .blocking
        .iter()
        .enumerate()
        .filter_map(|(n, key)| {
            let indices: Option<Vec<usize>> =
                key.parts.iter().map(|p| schema.index(&p.field)).collect();
            key.key_of(record, &indices?).map(|k| format!("{n}:{k}"))
        })
        .collect()
}

/// Rewrites a customer's blocking keys from its traits; returns its person record, if it has
/// one.
pub async fn refresh_keys(
    tx: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    traits: &Map<String, Value>,
) -> Result<Option<Record>, sqlx::Error> {
    let record = person_of(traits);
    let keys = record
        .as_ref()
        .map(|r| keys_of(person::shared(), r))
        .unwrap_or_default();
    // One statement: the keys no longer derived go, the new ones come.
    sqlx::query(
        "WITH gone AS (DELETE FROM match_keys WHERE tenant_id = $1 AND customer_id = $3
                                             AND NOT key = ANY($2::text[]))
         INSERT INTO match_keys (tenant_id, key, customer_id)
         SELECT $1, k, $3 FROM unnest($2::text[]) AS k ON CONFLICT DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(&keys)
    .bind(customer)
    .execute(&mut *tx)
    .await?;
    Ok(record)
}

/// The tenant's fitted model, if a clean-up fitted one.
pub async fn model(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Option<Model>, sqlx::Error> {
    let stored: Option<sqlx::types::Json<Model>> =
        sqlx::query_scalar("SELECT model FROM match_models WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(conn)
            .await?;
    Ok(stored.map(|m| m.0))
}

/// Stores the tenant's model.
pub async fn save_model(
    conn: &mut PgConnection,
    tenant: &TenantId,
    model: &Model,
    candidate_pairs: usize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO match_models (tenant_id, model, candidate_pairs) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET model = EXCLUDED.model,
             candidate_pairs = EXCLUDED.candidate_pairs, fitted_at = now()",
    )
    .bind(tenant.as_str())
    .bind(sqlx::types::Json(model))
    .bind(i64::try_from(candidate_pairs).unwrap_or(i64::MAX))
    .execute(conn)
    .await?;
    Ok(())
}
