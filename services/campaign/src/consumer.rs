//! The consumer of `crm.profiles.v1` and `crm.events.v1`: keeps the contacts campaigns can
//! reach, following identity's merges and erasures, once per message id and topic.

use crm_envelope::Envelope;
use crm_kafka::{dedupe, require_customer, HandleError, Handler, MessageMeta};
use sqlx::PgPool;

use crate::domain::contacts::{effect_of, Effect};
use crate::store::contacts;

/// Applies profile changes (email), resolved events (activity), merges (the merged contact
/// folds into the survivor's) and erasures (the contact is deleted and its id remembered) to
/// `contacts`, once per message id and topic.
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
        let Some(effect) =
            effect_of(e, meta.topic).map_err(|u| HandleError::permanent(u.code, u.detail))?
        else {
            return Ok(());
        };
        let customer_id = require_customer(e)?;
        let mut tx = self.pool.begin().await?;
        let consumer = format!("campaign:{}", meta.topic.name());
        if !dedupe::first_delivery(&mut tx, &consumer, &e.tenant_id, &e.id).await? {
            return Ok(());
        }
        let tenant = &e.tenant_id;
        match effect {
            Effect::Merge { merged, survivor } => {
                contacts::merge(&mut tx, tenant, merged, survivor).await?
            }
            Effect::Erase(ids) => contacts::erase(&mut tx, tenant, &ids).await?,
            Effect::Profile => {
                let email = e.identity.email.as_deref().map(String::as_str);
                contacts::record_profile(
                    &mut tx,
                    tenant,
                    customer_id,
                    email,
                    &e.traits,
                    e.occurred_at,
                )
                .await?
            }
            Effect::Activity => {
                contacts::record_activity(&mut tx, tenant, customer_id, e.occurred_at).await?
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
