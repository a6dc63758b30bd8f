//! The catalogue in memory: each tenant's live offers, parsed once, its decision settings and
//! its running offers experiments, reloaded after `ttl`. A
//! write through this replica drops the tenant's entry at once; other replicas see a change
//! within `ttl` (default 5 s), which docs/campaign.md states.
//!
//! Beside it, each tenant's offer statistics (impressions and acceptances per offer and
//! cohort: the propensity model's evidence), read again after `stats_ttl` (default 1 s). They
//! are sums over every customer that move a little with each outcome, so a second's lag
//! changes no decision worth the read; what must be exact (caps, budgets, suppression) is
//! counted by each decision's own query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_envelope::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::experiments::definition::ExperimentSpec;
use crate::domain::offers::decide::{DecisionSettings, LiveOffer};
use crate::store::{decisions, experiments, offers};

/// What decisions read of one tenant's configuration.
#[derive(Debug)]
pub struct Loaded {
    /// The active offers.
    pub offers: Vec<LiveOffer>,
    /// The decision settings.
    pub settings: DecisionSettings,
    /// Running offers experiments (at most one per placement).
    pub experiments: Vec<(Uuid, ExperimentSpec)>,
}

/// Impressions and acceptances by offer and cohort.
pub type Stats = HashMap<(Uuid, String), (u64, u64)>;

/// Live offers, settings and offer statistics per tenant.
#[derive(Clone)]
pub struct Catalogue {
    ttl: Duration,
    entries: Arc<Mutex<HashMap<TenantId, Entry>>>,
    stats_ttl: Duration,
    stats: Arc<Mutex<HashMap<TenantId, StatsEntry>>>,
}

/// When an entry was loaded, and what.
type Entry = (Instant, Arc<Loaded>);

/// When a tenant's statistics were read, and what.
type StatsEntry = (Instant, Arc<Stats>);

impl Catalogue {
    /// An empty cache whose entries live `ttl`, and its statistics one second.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Arc::default(),
            stats_ttl: Duration::from_secs(1),
            stats: Arc::default(),
        }
    }

    /// The same, keeping statistics `ttl`.
    pub fn with_stats_ttl(mut self, ttl: Duration) -> Self {
        self.stats_ttl = ttl;
        self
    }

    /// The tenant's offer statistics, from memory when read less than `stats_ttl` ago.
    pub async fn stats(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
    ) -> Result<Arc<Stats>, sqlx::Error> {
        let fresh = self.stats.lock().ok().and_then(|map| {
            map.get(tenant)
                .filter(|(at, _)| at.elapsed() < self.stats_ttl)
                .map(|(_, s)| s.clone())
        });
        if let Some(hit) = fresh {
            return Ok(hit);
        }
        let read = Arc::new(decisions::stats(conn, tenant).await?);
        if let Ok(mut map) = self.stats.lock() {
            map.insert(tenant.clone(), (Instant::now(), read.clone()));
        }
        Ok(read)
    }

    /// The tenant's live offers and settings, from memory when fresh.
    pub async fn load(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
    ) -> Result<Arc<Loaded>, sqlx::Error> {
        if let Some(hit) = self.fresh(tenant) {
            return Ok(hit);
        }
        let loaded = Arc::new(Loaded {
            offers: offers::live(&mut *conn, tenant).await?,
            settings: offers::settings(&mut *conn, tenant).await?,
            experiments: experiments::running_on_placements(conn, tenant).await?,
        });
        if let Ok(mut map) = self.entries.lock() {
            map.insert(tenant.clone(), (Instant::now(), loaded.clone()));
        }
        Ok(loaded)
    }

    fn fresh(&self, tenant: &TenantId) -> Option<Arc<Loaded>> {
        let map = self.entries.lock().ok()?;
        map.get(tenant)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, offers)| offers.clone())
    }

    /// Forgets the tenant's entry (after a change through this replica).
    pub fn invalidate(&self, tenant: &TenantId) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(tenant);
        }
    }
}
