//! Background work: customers whose recheck time has come are re-evaluated (time windows,
//! stages, decaying lead scores), scoring runs on a schedule, and events past retention are
//! purged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crm_envelope::TenantId;
use crm_service::schedule::{self, Schedule};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::engine::{evaluate_many, Applied, Catalog, Change, Pass, Writes};

/// Most due customers taken per tick.
const DUE_BATCH: i64 = 1_000;

/// Re-evaluates the customers whose recheck time has passed; returns what changed. A tenant
/// whose evaluation fails is logged and left for the next tick; the others go on.
pub async fn recheck_due(pool: &PgPool, catalog: &Catalog) -> Result<Applied, sqlx::Error> {
    let due: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT tenant_id, customer_id FROM customer_activity WHERE recheck_at <= now()
         ORDER BY recheck_at LIMIT $1",
    )
    .bind(DUE_BATCH)
    .fetch_all(pool)
    .await?;
    let mut by_tenant: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    for (tenant, id) in due {
        by_tenant.entry(tenant).or_default().push(id);
    }
    let mut total = Applied::default();
    for (tenant, mut ids) in by_tenant {
        let Ok(tenant) = TenantId::parse(&tenant) else {
            continue;
        };
        ids.sort_unstable();
        match recheck_tenant(pool, catalog, &tenant, &ids).await {
            Ok(applied) => total += applied,
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "time re-evaluation failed for one tenant; retrying next tick")
            }
        }
    }
    Ok(total)
}

/// Re-evaluates `ids` of `tenant` in one transaction.
async fn recheck_tenant(
    pool: &PgPool,
    catalog: &Catalog,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<Applied, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let model = catalog.get(&mut tx, tenant).await?;
    let applied = evaluate_many(
        &mut tx,
        tenant,
        &model,
        ids,
        &Change::Time,
        Pass {
            now: Utc::now(),
            reason: "time",
            writes: Writes::Statements,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(applied)
}

/// Runs [`recheck_due`] every `tick` on one replica until `shutdown`.
pub async fn recheck(
    pool: PgPool,
    catalog: Arc<Catalog>,
    tick: Duration,
    shutdown: CancellationToken,
) {
    let schedule = Schedule::every("segmentation.recheck", tick);
    schedule::run(pool.clone(), schedule, shutdown, move || {
        let (pool, catalog) = (pool.clone(), Arc::clone(&catalog));
        async move {
            let a = recheck_due(&pool, &catalog).await?;
            if a.entered + a.exited + a.stage_changes > 0 {
                tracing::info!(
                    customers = a.customers,
                    entered = a.entered,
                    exited = a.exited,
                    stage_changes = a.stage_changes,
                    "time re-evaluation"
                );
            }
            Ok(())
        }
    })
    .await;
}

/// Scores every tenant and purges its events past retention every `interval` (`None`: never)
/// on one replica, until `shutdown`; a tenant's failure does not stop the others'.
pub async fn scoring(
    pool: PgPool,
    catalog: Arc<Catalog>,
    interval: Option<Duration>,
    shutdown: CancellationToken,
) {
    let Some(interval) = interval else { return };
    let schedule = Schedule::every("segmentation.scoring", interval);
    schedule::run(pool.clone(), schedule, shutdown, move || {
        let (pool, catalog) = (pool.clone(), Arc::clone(&catalog));
        async move {
            let tenants = schedule::tenants_in(&pool, "customer_activity", "tenant_id").await?;
            schedule::each_tenant("scoring", tenants, |tenant| {
                let (pool, catalog) = (pool.clone(), Arc::clone(&catalog));
                async move { score_and_purge(&pool, &catalog, &tenant).await }
            })
            .await
        }
    })
    .await;
}

/// One tenant's scheduled scoring run and event purge.
async fn score_and_purge(
    pool: &PgPool,
    catalog: &Catalog,
    tenant: &TenantId,
) -> anyhow::Result<()> {
    let s = crate::scoring::run(pool, catalog, tenant, "schedule", Utc::now()).await?;
    tracing::info!(tenant = %tenant, customers = s.customers, rfm_group_changes = s.rfm_group_changes, "scheduled scoring done");
    let mut conn = pool.acquire().await?;
    let retention = crate::store::settings::load(&mut conn, tenant)
        .await
        .map(|s| s.retention_days)
        .unwrap_or(365);
    crate::store::activity::purge_events(&mut conn, tenant, retention).await?;
    Ok(())
}
