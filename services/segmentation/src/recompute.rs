//! Full recompute: every customer of a tenant evaluated against some or all segments, in
//! chunks, with the same loading and evaluation as the stream (so both give the same
//! memberships), writing and publishing only what changed. Also the preview of an unsaved rule.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::rules::{evaluate, Context, Dependencies, Rule};
use crate::engine::{evaluate_many, Applied, Catalog, Change};
use crate::store::facts::load_many;

/// Customers per chunk (one transaction each).
pub const CHUNK: usize = 2_000;

/// Ids of the tenant's customers after `after`, in id order.
async fn next_ids(
    pool: &PgPool,
    tenant: &TenantId,
    after: Uuid,
    limit: usize,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT customer_id FROM customer_activity WHERE tenant_id = $1 AND customer_id > $2
         ORDER BY customer_id LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Re-evaluates `segments` (all when `None`) for every customer of `tenant` at `now`.
/// Progress is logged every 50 chunks.
pub async fn recompute(
    pool: &PgPool,
    catalog: &Catalog,
    tenant: &TenantId,
    segments: Option<BTreeSet<Uuid>>,
    now: DateTime<Utc>,
) -> Result<Applied, sqlx::Error> {
    let change = segments.map_or(Change::All, Change::Segments);
    let mut total = Applied::default();
    let mut after = Uuid::nil();
    let started = Instant::now();
    for chunk in 1.. {
        let ids = next_ids(pool, tenant, after, CHUNK).await?;
        let Some(last) = ids.last().copied() else {
            break;
        };
        after = last;
        let mut tx = pool.begin().await?;
        let model = catalog.get(&mut tx, tenant).await?;
        total += evaluate_many(&mut tx, tenant, &model, &ids, &change, now, "recompute").await?;
        tx.commit().await?;
        if chunk % 50 == 0 {
            tracing::info!(tenant = %tenant, customers = total.customers, entered = total.entered, exited = total.exited,
                elapsed_s = started.elapsed().as_secs(), "recompute in progress");
        }
    }
    Ok(total)
}

/// The size of an unsaved rule's audience and a sample of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// Customers matching now.
    pub size: u64,
    /// Customers evaluated.
    pub customers: u64,
    /// Up to `sample` matching customer ids, in id order.
    pub sample: Vec<Uuid>,
}

/// Evaluates `rule` over every customer of `tenant` without saving anything.
pub async fn preview(
    pool: &PgPool,
    catalog: &Catalog,
    tenant: &TenantId,
    rule: &Rule,
    sample: usize,
    now: DateTime<Utc>,
) -> Result<Preview, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut model = (*catalog.get(&mut conn, tenant).await?).clone();
    let deps = Dependencies::of(rule);
    model.event_names.extend(deps.event_names.iter().cloned());
    model
        .event_names
        .extend(deps.windows.sliding.keys().cloned());
    let ctx = Context {
        now,
        thresholds: &model.settings.lifecycle,
        lead: &model.settings.lead_scoring,
    };
    let mut out = Preview {
        size: 0,
        customers: 0,
        sample: Vec::new(),
    };
    let mut after = Uuid::nil();
    loop {
        let ids = next_ids(pool, tenant, after, CHUNK).await?;
        let Some(last) = ids.last().copied() else {
            break;
        };
        after = last;
        for facts in load_many(&mut conn, tenant, &ids, &model, now, false).await? {
            out.customers += 1;
            if evaluate(rule, &facts, &ctx) {
                out.size += 1;
                if out.sample.len() < sample {
                    out.sample.push(facts.customer_id);
                }
            }
        }
    }
    Ok(out)
}
