//! Keeps the contacts campaigns can reach.

use crm_envelope::{Envelope, Topic};
use crm_kafka::{dedupe, require_customer, HandleError, Handler, MessageMeta};
use sqlx::PgPool;

/// Applies profile changes (email) and resolved events (activity) to `contacts`, once per
/// message id and topic.
#[derive(Clone)]
pub struct CampaignHandler {
    pool: PgPool,
}

impl CampaignHandler {
    /// A handler over the part's database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub(crate) fn pool(&self) -> PgPool {
        self.pool.clone()
    }
}

impl Handler for CampaignHandler {
    async fn handle(&self, e: &Envelope, meta: &MessageMeta) -> Result<(), HandleError> {
        let statement = match meta.topic {
            Topic::Profiles if e.kind == "profile.created" || e.kind == "profile.updated" => {
                "INSERT INTO contacts AS c (tenant_id, customer_id, email) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id, customer_id) DO UPDATE
                 SET email = COALESCE(EXCLUDED.email, c.email), updated_at = now()"
            }
            Topic::Events => {
                "INSERT INTO contacts AS c (tenant_id, customer_id, events_seen, last_event_at)
                 VALUES ($1, $2, 1, $4)
                 ON CONFLICT (tenant_id, customer_id) DO UPDATE
                 SET events_seen = c.events_seen + 1,
                     last_event_at = GREATEST(c.last_event_at, EXCLUDED.last_event_at),
                     updated_at = now()"
            }
            // Segments and loyalty feed journeys in a later issue.
            _ => return Ok(()),
        };
        let customer_id = require_customer(e)?;
        let mut tx = self.pool.begin().await?;
        let consumer = format!("campaign:{}", meta.topic.name());
        if !dedupe::first_delivery(&mut tx, &consumer, &e.tenant_id, &e.id).await? {
            return Ok(());
        }
        sqlx::query(statement)
            .bind(e.tenant_id.as_str())
            .bind(customer_id)
            .bind(e.identity.email.as_deref())
            .bind(e.occurred_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
