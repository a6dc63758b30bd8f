//! Background work: releasing unconfirmed reservations after the timeout, expiring lots, and
//! ending tier periods (downgrades), each in short transactions, with what changed published.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use crm_envelope::TenantId;
use crm_kafka::outbox::enqueue_all;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::programme::Programme;
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
}

/// Tenants' programmes, each read once per pass.
#[derive(Default)]
struct Programmes(HashMap<String, Programme>);

impl Programmes {
    async fn of(&mut self, pool: &PgPool, tenant: &TenantId) -> Result<Programme, sqlx::Error> {
        if let Some(p) = self.0.get(tenant.as_str()) {
            return Ok(p.clone());
        }
        let p = programmes::load(&mut *pool.acquire().await?, tenant.as_str())
            .await?
            .unwrap_or_default();
        self.0.insert(tenant.as_str().to_owned(), p.clone());
        Ok(p)
    }
}

/// One pass over every tenant's due work.
pub async fn run_once(pool: &PgPool) -> anyhow::Result<Pass> {
    let mut pass = Pass::default();
    let mut programmes = Programmes::default();
    let now = Utc::now();
    let due: Vec<(String, Uuid)> = sqlx::query_as("SELECT tenant_id, id FROM redemptions WHERE status = 'reserved' AND expires_at <= $1 LIMIT 1000")
        .bind(now)
        .fetch_all(pool)
        .await?;
    for (tenant, id) in due {
        let tenant = TenantId::parse(&tenant)?;
        let p = programmes.of(pool, &tenant).await?;
        let mut tx = pool.begin().await?;
        match rewards::cancel(&mut tx, &tenant, &p, id, "released", now).await {
            Ok(_) => {
                tx.commit().await?;
                pass.released += 1;
            }
            Err(rewards::OpError::State(_)) => {} // confirmed or cancelled meanwhile
            Err(e) => return Err(e.into()),
        }
    }
    let expiring: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT DISTINCT tenant_id, customer_id FROM lots WHERE remaining > 0 AND expires_at <= $1 LIMIT 1000",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    for (tenant, customer) in expiring {
        let tenant = TenantId::parse(&tenant)?;
        let p = programmes.of(pool, &tenant).await?;
        let mut tx = pool.begin().await?;
        if let Some(m) = rewards::expire_customer(&mut tx, &tenant, &p, customer, now).await? {
            enqueue_all(&mut tx, &[m]).await?;
            pass.expired += 1;
        }
        tx.commit().await?;
    }
    let tenants: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT tenant_id FROM tier_status WHERE period_end <= $1")
            .bind(now)
            .fetch_all(pool)
            .await?;
    for (tenant,) in tenants {
        let tenant = TenantId::parse(&tenant)?;
        let mut tx = pool.begin().await?;
        if let Some(p) = programmes::load(&mut tx, tenant.as_str()).await? {
            let messages = tiers::end_periods(&mut tx, &tenant, &p, now).await?;
            pass.tier_changes += messages.len() as u64;
            enqueue_all(&mut tx, &messages).await?;
        }
        tx.commit().await?;
    }
    Ok(pass)
}

/// Runs [`run_once`] every `tick` while the pool is open, waking the relay when it published.
pub fn spawn(pool: PgPool, tick: Duration, relay: std::sync::Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(tick).await;
            if pool.is_closed() {
                return;
            }
            match run_once(&pool).await {
                Ok(p) if p != Pass::default() => {
                    relay.notify_one();
                    tracing::info!(
                        released = p.released,
                        expired = p.expired,
                        tier_changes = p.tier_changes,
                        "loyalty scheduler pass"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "loyalty scheduler pass failed; retrying next tick")
                }
            }
        }
    });
}
