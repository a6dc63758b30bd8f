//! A tenant's compiled model ([`TenantModel`]), loaded from its settings and segments and
//! cached until the tenant's generation changes.

use crm_envelope::TenantId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::model::{Segment, TenantModel};
use crate::domain::rules::{Dependencies, Rule};
use crate::store::settings;

/// Compiled tenant models, reloaded when a tenant's generation moves.
#[derive(Default)]
pub struct Catalog {
    cache: Mutex<HashMap<TenantId, Arc<TenantModel>>>,
}

impl Catalog {
    /// The tenant's current model (one small query when cached).
    pub async fn get(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
    ) -> Result<Arc<TenantModel>, sqlx::Error> {
        let generation = settings::generation(conn, tenant).await?;
        self.at(conn, tenant, generation).await
    }

    /// The tenant's model at `generation`, which the caller read (no query when cached).
    pub async fn at(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
        generation: i64,
    ) -> Result<Arc<TenantModel>, sqlx::Error> {
        if let Some(m) = self.cached(tenant).filter(|m| m.generation == generation) {
            return Ok(m);
        }
        let settings = settings::load(conn, tenant).await?;
        let rows: Vec<(Uuid, String, i32, sqlx::types::Json<serde_json::Value>)> = sqlx::query_as(
            "SELECT id, name, version, rule FROM segments WHERE tenant_id = $1 AND deleted_at IS NULL",
        )
        .bind(tenant)
        .fetch_all(&mut *conn)
        .await?;
        let mut segments = Vec::with_capacity(rows.len());
        for (id, name, version, rule) in rows {
            match serde_json::from_value::<Rule>(rule.0) {
                Ok(rule) => segments.push(Segment {
                    id,
                    name,
                    version,
                    deps: Dependencies::of(&rule),
                    rule,
                }),
                Err(e) => {
                    tracing::error!(segment = %id, error = %e, "stored rule no longer parses; segment skipped")
                }
            }
        }
        let model = Arc::new(TenantModel::build(generation, settings, segments));
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(tenant.clone(), Arc::clone(&model));
        }
        Ok(model)
    }

    fn cached(&self, tenant: &TenantId) -> Option<Arc<TenantModel>> {
        self.cache.lock().ok()?.get(tenant).cloned()
    }
}
