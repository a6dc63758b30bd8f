//! The catalogue in memory: each tenant's live offers, parsed once, its decision settings and
//! its running offers experiments, reloaded after `ttl`. A
//! write through this replica drops the tenant's entry at once; other replicas see a change
//! within `ttl` (default 5 s), which docs/campaign.md states.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_envelope::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::experiments::definition::ExperimentSpec;
use crate::domain::offers::decide::{DecisionSettings, LiveOffer};
use crate::store::{experiments, offers};

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

/// Live offers and settings per tenant.
#[derive(Clone)]
pub struct Catalogue {
    ttl: Duration,
    entries: Arc<Mutex<HashMap<TenantId, Entry>>>,
}

/// When an entry was loaded, and what.
type Entry = (Instant, Arc<Loaded>);

impl Catalogue {
    /// An empty cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Arc::default(),
        }
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
