//! Hot profiles in Redis, as identity keeps them: written after each committed change, evicted
//! for ids merged away. Redis is a cache: a failed write evicts, so no stale copy is served.

use std::sync::Arc;

use crm_cache::ProfileCache;
use crm_envelope::{Profile, TenantId};
use uuid::Uuid;

/// Identity's handle on the hot-profile cache.
#[derive(Clone)]
pub struct HotProfiles {
    cache: Arc<ProfileCache>,
}

impl HotProfiles {
    /// Over the part's cache.
    pub fn new(cache: Arc<ProfileCache>) -> Self {
        Self { cache }
    }

    /// Writes the committed `profile`; on failure evicts its key and goes on.
    pub async fn refresh(&self, tenant: &TenantId, profile: &Profile) {
        let key = self.cache.key(tenant, profile.id);
        let Ok(json) = serde_json::to_string(profile) else {
            return;
        };
        if let Err(e) = self.cache.put(&key, &json).await {
            tracing::warn!(error = %e, "profile cache write failed; evicting");
            let _ = self.cache.evict(&key).await;
        }
    }

    /// Removes a customer's cached profile (an id merged away or erased).
    pub async fn evict(&self, tenant: &TenantId, id: Uuid) {
        if let Err(e) = self.cache.evict(&self.cache.key(tenant, id)).await {
            tracing::warn!(error = %e, "profile cache eviction failed");
        }
    }

    /// Evicts `gone` and writes `profiles` (all committed), each in one round trip; a failed
    /// write evicts the profiles it was writing.
    pub async fn update_many(&self, gone: &[(TenantId, Uuid)], profiles: &[(TenantId, Profile)]) {
        let evicted: Vec<_> = gone.iter().map(|(t, id)| self.cache.key(t, *id)).collect();
        if let Err(e) = self.cache.evict_many(&evicted).await {
            tracing::warn!(error = %e, "profile cache eviction failed");
        }
        let entries: Vec<_> = profiles
            .iter()
            .filter_map(|(t, p)| {
                let json = serde_json::to_string(p).ok()?;
                Some((self.cache.key(t, p.id), json))
            })
            .collect();
        if let Err(e) = self.cache.put_many(&entries).await {
            tracing::warn!(error = %e, "profile cache write failed; evicting");
            let keys: Vec<_> = entries.into_iter().map(|(k, _)| k).collect();
            let _ = self.cache.evict_many(&keys).await;
        }
    }
}
