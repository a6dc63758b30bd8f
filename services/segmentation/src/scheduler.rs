//! Background work: customers whose recheck time has come are re-evaluated (time windows,
//! stages, decaying lead scores), scoring runs on a schedule, and events past retention are
//! purged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crm_envelope::TenantId;
use sqlx::PgPool;
use uuid::Uuid;

use crate::engine::{evaluate_many, Applied, Catalog, Change};

/// Most due customers taken per tick.
const DUE_BATCH: i64 = 1_000;

/// Re-evaluates the customers whose recheck time has passed; returns what changed.
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
        let mut tx = pool.begin().await?;
        let model = catalog.get(&mut tx, tenant.as_str()).await?;
        total += evaluate_many(
            &mut tx,
            &tenant,
            &model,
            &ids,
            &Change::Time,
            Utc::now(),
            "time",
        )
        .await?;
        tx.commit().await?;
    }
    Ok(total)
}

/// Runs [`recheck_due`] every `tick` while the pool is open.
pub fn spawn_recheck(pool: PgPool, catalog: Arc<Catalog>, tick: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(tick).await;
            if pool.is_closed() {
                return;
            }
            match recheck_due(&pool, &catalog).await {
                Ok(a) if a.entered + a.exited + a.stage_changes > 0 => {
                    tracing::info!(
                        customers = a.customers,
                        entered = a.entered,
                        exited = a.exited,
                        stage_changes = a.stage_changes,
                        "time re-evaluation"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "time re-evaluation failed; retrying next tick")
                }
            }
        }
    });
}

/// Scores every tenant and purges events past retention every `interval` (`None`: never),
/// while the pool is open.
pub fn spawn_scoring(pool: PgPool, catalog: Arc<Catalog>, interval: Option<Duration>) {
    let Some(interval) = interval else { return };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            if pool.is_closed() {
                return;
            }
            let tenants: Result<Vec<(String,)>, _> =
                sqlx::query_as("SELECT DISTINCT tenant_id FROM customer_activity")
                    .fetch_all(&pool)
                    .await;
            let tenants = match tenants {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduled scoring could not list tenants");
                    continue;
                }
            };
            for (tenant,) in tenants {
                let Ok(tenant) = TenantId::parse(&tenant) else {
                    continue;
                };
                match crate::scoring::run(&pool, &catalog, &tenant, "schedule", Utc::now()).await {
                    Ok(s) => {
                        tracing::info!(tenant = %tenant, customers = s.customers, rfm_group_changes = s.rfm_group_changes, "scheduled scoring done")
                    }
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, error = %e, "scheduled scoring failed")
                    }
                }
                if let Ok(mut conn) = pool.acquire().await {
                    let retention = crate::settings::load(&mut conn, tenant.as_str())
                        .await
                        .map(|s| s.retention_days)
                        .unwrap_or(365);
                    if let Err(e) =
                        crate::store::activity::purge_events(&mut conn, tenant.as_str(), retention)
                            .await
                    {
                        tracing::warn!(tenant = %tenant, error = %e, "event purge failed");
                    }
                }
            }
        }
    });
}
