//! What journeys read on every step and rarely changes (a tenant's templates and contact
//! policy, a journey's status), kept for [`FRESH`] per process. Changes made through the API
//! therefore reach running journeys within that time; delivery reads them again anyway. Without
//! it, 100,000 timers due in the same minute would read the same template 100,000 times.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_envelope::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::gate::policy::ContactPolicy;
use crate::domain::journeys::lifecycle::Status;
use crate::store::templates::Template;
use crate::store::{journeys, policies, templates};

/// How long a value read is used.
pub const FRESH: Duration = Duration::from_secs(2);

/// Most entries per map before it is emptied.
const MOST: usize = 10_000;

struct Map<K, V>(Mutex<HashMap<K, (Instant, V)>>);

impl<K: Eq + Hash, V: Clone> Map<K, V> {
    fn get(&self, k: &K) -> Option<V> {
        let m = self.0.lock().ok()?;
        m.get(k)
            .filter(|(at, _)| at.elapsed() < FRESH)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, k: K, v: V) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= MOST {
                m.clear();
            }
            m.insert(k, (Instant::now(), v));
        }
    }
}

impl<K, V> Default for Map<K, V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

/// Recently read templates, policies and journey statuses; cheap to clone.
#[derive(Clone, Default)]
pub struct Recent {
    templates: Arc<Map<(TenantId, String), Option<Template>>>,
    policies: Arc<Map<TenantId, ContactPolicy>>,
    statuses: Arc<Map<(TenantId, Uuid), Option<Status>>>,
}

impl Recent {
    /// The template `key` of `tenant`.
    pub async fn template(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<Template>, sqlx::Error> {
        let k = (tenant.clone(), key.to_owned());
        if let Some(t) = self.templates.get(&k) {
            return Ok(t);
        }
        let t = templates::get(conn, tenant, key).await?;
        self.templates.put(k, t.clone());
        Ok(t)
    }

    /// The contact policy of `tenant`.
    pub async fn policy(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
    ) -> Result<ContactPolicy, sqlx::Error> {
        if let Some(p) = self.policies.get(tenant) {
            return Ok(p);
        }
        let p = policies::get(conn, tenant).await?;
        self.policies.put(tenant.clone(), p.clone());
        Ok(p)
    }

    /// The status of journey `id`.
    pub async fn status(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<Status>, sqlx::Error> {
        let k = (tenant.clone(), id);
        if let Some(s) = self.statuses.get(&k) {
            return Ok(s);
        }
        let s = journeys::status(conn, tenant, id).await?;
        self.statuses.put(k, s);
        Ok(s)
    }
}
