//! Background work: releasing unconfirmed reservations after the timeout, expiring lots, and
//! ending tier periods (downgrades), each in short transactions, with what changed published.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crm_envelope::TenantId;
use crm_kafka::outbox::enqueue_all;
use crm_service::schedule::{self, Schedule};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::programme::Programme;
use crate::store::{programmes, rewards, tiers};

/// Counts of one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Reservations released.
    pub released: u64,
    /// Customers whose lots expired.
    pub expired: u64,
    /// Tier changes at period ends.
    pub tier_changes: u64,
    /// Items that failed and are retried next pass.
    pub failed: u64,
}

/// Tenants' programmes, each read once per pass.
#[derive(Default)]
struct Programmes(HashMap<String, Programme>);

impl Programmes {
    async fn of(&mut self, pool: &PgPool, tenant: &TenantId) -> Result<Programme, sqlx::Error> {
        if let Some(p) = self.0.get(tenant.as_str()) {
            return Ok(p.clone());
        }
        let p = programmes::load(&mut *pool.acquire().await?, tenant)
            .await?
            .unwrap_or_default();
        self.0.insert(tenant.as_str().to_owned(), p.clone());
        Ok(p)
    }
}

/// One pass over every tenant's due work. An item that fails (one reservation, one customer's
/// expiry, one tenant's period end) is logged, counted in [`Pass::failed`] and retried next
/// pass; the others go on.
pub async fn run_once(pool: &PgPool) -> anyhow::Result<Pass> {
    let mut pass = Pass::default();
    let mut programmes = Programmes::default();
    let now = Utc::now();
    let due: Vec<(TenantId, Uuid)> = sqlx::query_as("SELECT tenant_id, id FROM redemptions WHERE status = 'reserved' AND expires_at <= $1 LIMIT 1000")
        .bind(now)
        .fetch_all(pool)
        .await?;
    for (tenant, id) in due {
        match release(pool, &mut programmes, &tenant, id, now).await {
            Ok(released) => pass.released += u64::from(released),
            Err(e) => pass.failure("reservation release", &tenant, &e),
        }
    }
    let expiring: Vec<(TenantId, Uuid)> = sqlx::query_as(
        "SELECT DISTINCT tenant_id, customer_id FROM lots WHERE remaining > 0 AND expires_at <= $1 LIMIT 1000",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    for (tenant, customer) in expiring {
        match expire(pool, &mut programmes, &tenant, customer, now).await {
            Ok(expired) => pass.expired += u64::from(expired),
            Err(e) => pass.failure("lot expiry", &tenant, &e),
        }
    }
    let tenants: Vec<(TenantId,)> =
        sqlx::query_as("SELECT DISTINCT tenant_id FROM tier_status WHERE period_end <= $1")
            .bind(now)
            .fetch_all(pool)
            .await?;
    for (tenant,) in tenants {
        match end_periods(pool, &tenant, now).await {
            Ok(changes) => pass.tier_changes += changes,
            Err(e) => pass.failure("tier period end", &tenant, &e),
        }
    }
    Ok(pass)
}

impl Pass {
    fn failure(&mut self, step: &str, tenant: &TenantId, e: &anyhow::Error) {
        self.failed += 1;
        tracing::warn!(step, tenant = %tenant, error = %format!("{e:#}"), "loyalty scheduler step failed; retrying next pass");
    }
}

/// Releases reservation `id` when it is still reserved; whether it was.
async fn release(
    pool: &PgPool,
    programmes: &mut Programmes,
    tenant: &TenantId,
    id: Uuid,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<bool> {
    let p = programmes.of(pool, tenant).await?;
    let mut tx = pool.begin().await?;
    match rewards::cancel(&mut tx, tenant, &p, id, "released", now).await {
        Ok(_) => {
            tx.commit().await?;
            Ok(true)
        }
        Err(rewards::OpError::State(_)) => Ok(false), // confirmed or cancelled meanwhile
        Err(e) => Err(e.into()),
    }
}

/// Expires `customer`'s lots past their date; whether any expired.
async fn expire(
    pool: &PgPool,
    programmes: &mut Programmes,
    tenant: &TenantId,
    customer: Uuid,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<bool> {
    let p = programmes.of(pool, tenant).await?;
    let mut tx = pool.begin().await?;
    let expired = match rewards::expire_customer(&mut tx, tenant, &p, customer, now).await? {
        Some(m) => {
            enqueue_all(&mut tx, &[m]).await?;
            true
        }
        None => false,
    };
    tx.commit().await?;
    Ok(expired)
}

/// Ends `tenant`'s tier periods that are over; how many tiers changed.
async fn end_periods(
    pool: &PgPool,
    tenant: &TenantId,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let mut changes = 0;
    if let Some(p) = programmes::load(&mut tx, tenant).await? {
        let messages = tiers::end_periods(&mut tx, tenant, &p, now).await?;
        changes = messages.len() as u64;
        enqueue_all(&mut tx, &messages).await?;
    }
    tx.commit().await?;
    Ok(changes)
}

/// Runs [`run_once`] every `tick` on one replica until `shutdown`, waking the relay when it
/// published.
pub async fn run(pool: PgPool, tick: Duration, relay: Arc<Notify>, shutdown: CancellationToken) {
    let schedule = Schedule::every("loyalty.passes", tick);
    schedule::run(pool.clone(), schedule, shutdown, move || {
        let (pool, relay) = (pool.clone(), Arc::clone(&relay));
        async move {
            let p = run_once(&pool).await?;
            if p != Pass::default() {
                relay.notify_one();
                tracing::info!(
                    released = p.released,
                    expired = p.expired,
                    tier_changes = p.tier_changes,
                    failed = p.failed,
                    "loyalty scheduler pass"
                );
            }
            Ok(())
        }
    })
    .await;
}

/// How often applied idempotency keys past retention are purged.
const KEY_PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Purges `api_writes` past retention hourly on one replica until `shutdown`.
pub async fn purge_keys(pool: PgPool, shutdown: CancellationToken) {
    let schedule = Schedule::every("loyalty.api_writes.purge", KEY_PURGE_EVERY);
    schedule::run(pool.clone(), schedule, shutdown, move || {
        let pool = pool.clone();
        async move {
            let n = crate::store::api_writes::purge(&pool).await?;
            if n > 0 {
                tracing::info!(
                    deleted = n,
                    "applied idempotency keys purged past retention"
                );
            }
            Ok(())
        }
    })
    .await;
}
