//! Consent, export and erasure: what a customer agreed to, everything identity holds on them,
//! and deleting it.

use chrono::{DateTime, Utc};
use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::outbox;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::merge;
use crate::store::{owned, profile, timeline};

pub use crate::domain::consent::{parse_consent, ConsentChange};

/// Records consent changes of a customer.
pub async fn record_consent(
    tx: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
    changes: &[ConsentChange],
    source: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    for c in changes {
        sqlx::query(
            "INSERT INTO consent_events (tenant_id, customer_id, owner_id, purpose, channel,
                                         granted, source, at)
             VALUES ($1, $2, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant.as_str())
        .bind(customer)
        .bind(&c.purpose)
        .bind(&c.channel)
        .bind(c.granted)
        .bind(source)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// One consent state or history entry.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ConsentState {
    /// Purpose.
    pub purpose: String,
    /// Channel.
    pub channel: String,
    /// Given or withdrawn.
    pub granted: bool,
    /// Who recorded it.
    pub source: String,
    /// When the customer gave or withdrew it.
    pub at: DateTime<Utc>,
}

/// The current consent of a customer: the latest entry per purpose and channel.
pub async fn current_consent(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<Vec<ConsentState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT ON (purpose, channel) purpose, channel, granted, source, at
         FROM consent_events WHERE tenant_id = $1 AND customer_id = $2
         ORDER BY purpose, channel, at DESC, recorded_at DESC",
    )
    .bind(tenant.as_str())
    .bind(customer)
    .fetch_all(conn)
    .await
}

async fn consent_history(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<Vec<ConsentState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT purpose, channel, granted, source, at FROM consent_events
         WHERE tenant_id = $1 AND customer_id = $2 ORDER BY at, recorded_at",
    )
    .bind(tenant.as_str())
    .bind(customer)
    .fetch_all(conn)
    .await
}

/// Everything identity holds on a customer (the subject access export).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportDocument {
    /// When it was made.
    pub exported_at: DateTime<Utc>,
    /// The profile.
    pub profile: crm_envelope::Profile,
    /// Where each trait's value came from.
    #[schema(value_type = Object)]
    pub trait_sources: Value,
    /// Fields kept as received with an invalid flag.
    #[schema(value_type = Object)]
    pub quality_flags: Value,
    /// Ids merged into this customer.
    pub aliases: Vec<Uuid>,
    /// Every consent change, oldest first.
    pub consent: Vec<ConsentState>,
    /// Every timeline entry.
    pub timeline: Vec<timeline::Entry>,
    /// Every merge, oldest first.
    pub merges: Vec<merge::MergeRecord>,
}

/// Everything identity holds on the customer `id` answers to: profile, trait provenance,
/// quality flags, consent history, aliases, merges and timeline. `None` when there is no such customer.
pub async fn export(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<ExportDocument>, sqlx::Error> {
    let Some(target) = profile::canonical_id(conn, tenant, id).await? else {
        return Ok(None);
    };
    let Some(profile) = profile::load(conn, tenant, target).await? else {
        return Ok(None);
    };
    let (sources, quality): (sqlx::types::Json<Value>, sqlx::types::Json<Value>) = sqlx::query_as(
        "SELECT trait_sources, quality FROM customers WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(target)
    .fetch_one(&mut *conn)
    .await?;
    let aliases: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM customers WHERE tenant_id = $1 AND merged_into = $2 ORDER BY id",
    )
    .bind(tenant.as_str())
    .bind(target)
    .fetch_all(&mut *conn)
    .await?;
    let mut merges = merge::merges_of(conn, tenant, target).await?;
    merges.reverse();
    let consent = consent_history(conn, tenant, target).await?;
    let events = timeline::all(conn, tenant, target).await?;
    Ok(Some(ExportDocument {
        exported_at: Utc::now(),
        profile,
        trait_sources: sources.0,
        quality_flags: quality.0,
        aliases,
        consent,
        timeline: events,
        merges,
    }))
}

/// Erases the customer `id` answers to, with its aliases: identifiers, traits, provenance,
/// quality flags and consent are deleted, merge snapshots emptied; tombstones (status
/// `erased`, `erased_at`, no personal data) stay so the ids are never reused. Enqueues
/// `profile.erased`. Returns the erased ids (to evict from the cache), `None` when there is no
/// such customer.
pub async fn erase(
    tx: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<Vec<Uuid>>, sqlx::Error> {
    let Some(target) = profile::canonical_id(tx, tenant, id).await? else {
        return Ok(None);
    };
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM customers WHERE tenant_id = $1 AND (id = $2 OR merged_into = $2)
         ORDER BY id FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(target)
    .fetch_all(&mut *tx)
    .await?;
    let t = tenant.as_str();
    sqlx::query("DELETE FROM identifiers WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(t)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM unattached_identifiers WHERE tenant_id = $1 AND (customer_id = ANY($2) OR held_by = ANY($2))",
    )
    .bind(t)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    owned::erase(tx, tenant, &ids).await?;
    sqlx::query("DELETE FROM match_keys WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(t)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE merges SET snapshot = '{}'::jsonb
         WHERE tenant_id = $1 AND (survivor_id = ANY($2) OR merged_id = ANY($2))",
    )
    .bind(t)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE customers SET status = 'erased', traits = '{}'::jsonb, trait_sources = '{}'::jsonb,
                quality = '{}'::jsonb, search_text = '', erased_at = now(), version = version + 1, updated_at = now()
         WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(t)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    let mut event = Envelope::domain(tenant.clone(), "profile.erased", target, "identity");
    event.properties = json!({ "erased_ids": ids })
        .as_object()
        .cloned()
        .unwrap_or_default();
    outbox::enqueue(tx, Topic::Profiles, &event).await?;
    Ok(Some(ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_traits() {
        let one =
            parse_consent(&json!({"purpose": "marketing", "channel": "email", "granted": true}))
                .unwrap();
        assert_eq!(one.len(), 1);
        let many = parse_consent(&json!([
            {"purpose": "marketing", "channel": "sms", "granted": false},
            {"purpose": "analytics", "channel": "any", "granted": true}
        ]))
        .unwrap();
        assert_eq!(many[1].purpose, "analytics");
        assert!(parse_consent(&json!({"purpose": "marketing", "granted": true})).is_err());
        assert!(parse_consent(
            &json!({"purpose": "Marketing!", "channel": "email", "granted": true})
        )
        .unwrap_err()
        .contains("purpose"));
        assert!(
            parse_consent(&json!({"purpose": "m", "channel": "email", "granted": "yes"})).is_err()
        );
        assert!(parse_consent(&json!(true)).is_err());
    }
}
