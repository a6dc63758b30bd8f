//! The tenants' lead settings as the consumer reads them for every tracked event (which events
//! open a lead), kept in memory for a few seconds: a change through the API reaches every
//! replica's consumer within the time to live, and a busy tenant costs one read per period
//! rather than one per event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_envelope::TenantId;
use sqlx::PgConnection;

use crate::domain::pipeline::settings::LeadSettings;
use crate::store::leads as store;

/// How long the consumer keeps a tenant's lead settings.
pub const TTL: Duration = Duration::from_secs(5);

/// A tenant's settings and when they were read.
type Kept = HashMap<TenantId, (Instant, Arc<LeadSettings>)>;

/// Lead settings per tenant, each kept for `ttl`.
#[derive(Clone)]
pub struct SettingsCache {
    ttl: Duration,
    kept: Arc<Mutex<Kept>>,
}

impl SettingsCache {
    /// An empty cache keeping settings for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            kept: Arc::default(),
        }
    }

    /// The tenant's settings, read again once older than the time to live.
    pub async fn get(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
    ) -> Result<Arc<LeadSettings>, sqlx::Error> {
        let now = Instant::now();
        if let Ok(kept) = self.kept.lock() {
            if let Some((at, s)) = kept.get(tenant) {
                if now.duration_since(*at) < self.ttl {
                    return Ok(s.clone());
                }
            }
        }
        let settings = Arc::new(store::settings(conn, tenant).await?);
        if let Ok(mut kept) = self.kept.lock() {
            kept.insert(tenant.clone(), (now, settings.clone()));
        }
        Ok(settings)
    }
}
