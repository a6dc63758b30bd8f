//! Hot profiles in Redis, as identity keeps them: written after each committed change, evicted
//! (with a tombstone) for ids merged away or erased. Redis is a cache: a call that fails leaves
//! the key in `cache_repairs`, and [`HotProfiles::repair`] drops or tombstones it once Redis
//! answers again, so no stale copy outlives an outage.

use std::sync::Arc;
use std::time::Duration;

use crm_cache::ProfileCache;
use crm_envelope::{Profile, TenantId};
use sqlx::PgPool;
use uuid::Uuid;

/// Identity's handle on the hot-profile cache.
#[derive(Clone)]
pub struct HotProfiles {
    cache: Arc<ProfileCache>,
    pool: PgPool,
}

/// A key whose copy in Redis may be stale.
struct Repair {
    tenant: TenantId,
    id: Uuid,
    /// The id is merged away or erased: leave a tombstone, not only drop the copy.
    tombstone: bool,
}

impl HotProfiles {
    /// Over the part's cache, recording failed calls in the part's database.
    pub fn new(cache: Arc<ProfileCache>, pool: PgPool) -> Self {
        Self { cache, pool }
    }

    /// Writes the committed `profile`; on failure its key is dropped (now or by the repair).
    pub async fn refresh(&self, tenant: &TenantId, profile: &Profile) {
        self.update_many(&[], &[(tenant.clone(), profile.clone())])
            .await;
    }

    /// Removes a customer's cached profile and leaves its tombstone (an id merged away or
    /// erased).
    pub async fn evict(&self, tenant: &TenantId, id: Uuid) {
        self.update_many(&[(tenant.clone(), id)], &[]).await;
    }

    /// Clears the tombstone of an id that is a customer of its own again (an unmerge), so its
    /// profile can be cached.
    pub async fn revive(&self, tenant: &TenantId, id: Uuid) {
        if let Err(e) = self.cache.revive(&self.cache.key(tenant, id)).await {
            tracing::warn!(error = %e, "profile cache tombstone not cleared; the profile is read through until it expires");
        }
    }

    /// Evicts `gone` (with tombstones) and writes `profiles` (all committed), each in one round
    /// trip. What fails is recorded for [`HotProfiles::repair`].
    pub async fn update_many(&self, gone: &[(TenantId, Uuid)], profiles: &[(TenantId, Profile)]) {
        let evicted: Vec<_> = gone.iter().map(|(t, id)| self.cache.key(t, *id)).collect();
        if let Err(e) = self.cache.tombstone_many(&evicted).await {
            tracing::warn!(error = %e, "profile cache eviction failed; recorded for repair");
            self.record(gone.iter().map(|(t, id)| (t, *id)), true).await;
        }
        let entries: Vec<_> = profiles
            .iter()
            .filter_map(|(t, p)| {
                let json = serde_json::to_string(p).ok()?;
                Some((self.cache.key(t, p.id), json, p.version))
            })
            .collect();
        if let Err(e) = self.cache.put_many(&entries).await {
            tracing::warn!(error = %e, "profile cache write failed; recorded for repair");
            self.record(profiles.iter().map(|(t, p)| (t, p.id)), false)
                .await;
        }
    }

    async fn record<'a>(&self, keys: impl Iterator<Item = (&'a TenantId, Uuid)>, tombstone: bool) {
        let (tenants, ids): (Vec<String>, Vec<Uuid>) =
            keys.map(|(t, id)| (t.as_str().to_owned(), id)).unzip();
        if ids.is_empty() {
            return;
        }
        let recorded = sqlx::query(
            "INSERT INTO cache_repairs (tenant_id, customer_id, tombstone)
             SELECT * FROM unnest($1::text[], $2::uuid[], array_fill($3::bool, ARRAY[cardinality($2)]))
             ON CONFLICT (tenant_id, customer_id)
             DO UPDATE SET tombstone = cache_repairs.tombstone OR EXCLUDED.tombstone",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(tombstone)
        .execute(&self.pool)
        .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "a possibly stale cache key could not be recorded for repair");
        }
    }

    /// Repairs up to 500 recorded keys: drops their copies (and leaves tombstones where asked)
    /// and forgets them. Nothing is forgotten while Redis fails. The number repaired.
    pub async fn repair(&self) -> Result<usize, sqlx::Error> {
        let rows: Vec<(String, Uuid, bool)> = sqlx::query_as(
            "SELECT tenant_id, customer_id, tombstone FROM cache_repairs ORDER BY created_at LIMIT 500",
        )
        .fetch_all(&self.pool)
        .await?;
        let repairs: Vec<Repair> = rows
            .into_iter()
            .filter_map(|(t, id, tombstone)| {
                Some(Repair {
                    tenant: TenantId::parse(&t).ok()?,
                    id,
                    tombstone,
                })
            })
            .collect();
        if repairs.is_empty() {
            return Ok(0);
        }
        let (tombstoned, dropped): (Vec<&Repair>, Vec<&Repair>) =
            repairs.iter().partition(|r| r.tombstone);
        let keys = |rs: &[&Repair]| -> Vec<_> {
            rs.iter().map(|r| self.cache.key(&r.tenant, r.id)).collect()
        };
        if self.cache.tombstone_many(&keys(&tombstoned)).await.is_err()
            || self.cache.evict_many(&keys(&dropped)).await.is_err()
        {
            return Ok(0);
        }
        let (tenants, ids): (Vec<String>, Vec<Uuid>) = repairs
            .iter()
            .map(|r| (r.tenant.as_str().to_owned(), r.id))
            .unzip();
        sqlx::query(
            "DELETE FROM cache_repairs c USING unnest($1::text[], $2::uuid[]) AS x(t, id)
             WHERE c.tenant_id = x.t AND c.customer_id = x.id",
        )
        .bind(&tenants)
        .bind(&ids)
        .execute(&self.pool)
        .await?;
        Ok(repairs.len())
    }

    /// Repairs recorded keys every `every` until `shutdown`.
    pub async fn run_repairs(self, every: Duration, shutdown: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.repair().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(keys = n, "stale profile cache keys repaired"),
                Err(e) => tracing::warn!(error = %e, "profile cache repair failed; trying again"),
            }
        }
    }
}
