//! Keeps the contacts campaigns can reach, following identity's merges and erasures.

use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::{dedupe, require_customer, HandleError, Handler, MessageMeta};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

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

/// What a message does to the contacts.
enum Effect {
    /// `profile.created` / `profile.updated`: the email, if the profile has one.
    Profile,
    /// A resolved event: one more event seen, and its time.
    Activity,
    /// `profile.merged`: `merged` folds into `survivor`.
    Merge { merged: Uuid, survivor: Uuid },
    /// `profile.erased`: these ids are forgotten.
    Erase(Vec<Uuid>),
}

fn effect_of(e: &Envelope, topic: Topic) -> Result<Option<Effect>, HandleError> {
    Ok(Some(match (topic, e.kind.as_str()) {
        (Topic::Profiles, "profile.created" | "profile.updated") => Effect::Profile,
        (Topic::Profiles, "profile.merged") => {
            let (Some(merged), Some(survivor)) =
                (e.uuid_property("merged_id"), e.uuid_property("survivor_id"))
            else {
                return Err(HandleError::permanent(
                    "invalid_merge",
                    "profile.merged without properties.merged_id and survivor_id",
                ));
            };
            Effect::Merge { merged, survivor }
        }
        (Topic::Profiles, "profile.erased") => Effect::Erase(e.erased_ids()),
        (Topic::Events, _) => Effect::Activity,
        // Segments and loyalty feed journeys in a later issue.
        _ => return Ok(None),
    }))
}

/// The id contacts of `$2` (tenant `$1`) are kept under, as a one-row subquery `x(id)`: the
/// survivor of a merged id, or no row once the id is erased. A macro so that `concat!` builds
/// each statement at compile time.
macro_rules! live {
    () => {
        "(SELECT coalesce(
             (SELECT survivor_id FROM aliases WHERE tenant_id = $1 AND merged_id = $2), $2) AS id) x
         WHERE NOT EXISTS (SELECT 1 FROM erased WHERE tenant_id = $1 AND customer_id = x.id)"
    };
}

/// Folds the merged contact into the survivor's (events add up, the later activity and the
/// survivor's email win, the merged one's email fills a gap) and records the alias.
async fn merge(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    merged: Uuid,
    survivor: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH gone AS (DELETE FROM contacts WHERE tenant_id = $1 AND customer_id = $2 RETURNING *)
         INSERT INTO contacts AS c (tenant_id, customer_id, email, events_seen, last_event_at)
         SELECT $1, $3, email, events_seen, last_event_at FROM gone
         ON CONFLICT (tenant_id, customer_id) DO UPDATE
         SET email = COALESCE(c.email, EXCLUDED.email),
             events_seen = c.events_seen + EXCLUDED.events_seen,
             last_event_at = GREATEST(c.last_event_at, EXCLUDED.last_event_at),
             updated_at = now()",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO aliases (tenant_id, merged_id, survivor_id) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, merged_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Handler for CampaignHandler {
    async fn handle(&self, e: &Envelope, meta: &MessageMeta) -> Result<(), HandleError> {
        let Some(effect) = effect_of(e, meta.topic)? else {
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
            Effect::Merge { merged, survivor } => merge(&mut tx, tenant, merged, survivor).await?,
            Effect::Erase(ids) => erase(&mut tx, tenant, &ids).await?,
            Effect::Profile | Effect::Activity => {
                // One statement: the contact is kept under the survivor of a merged id, and an
                // erased id gets nothing back (`live!()` selects no row for it).
                let statement = if matches!(effect, Effect::Profile) {
                    concat!(
                        "INSERT INTO contacts AS c (tenant_id, customer_id, email) SELECT $1, id, $3 FROM ",
                        live!(),
                        " ON CONFLICT (tenant_id, customer_id) DO UPDATE
                         SET email = COALESCE(EXCLUDED.email, c.email), updated_at = now()"
                    )
                } else {
                    concat!(
                        "INSERT INTO contacts AS c (tenant_id, customer_id, events_seen, last_event_at)
                         SELECT $1, id, 1, $4 FROM ",
                        live!(),
                        " ON CONFLICT (tenant_id, customer_id) DO UPDATE
                         SET events_seen = c.events_seen + 1,
                             last_event_at = GREATEST(c.last_event_at, EXCLUDED.last_event_at),
                             updated_at = now()"
                    )
                };
                sqlx::query(statement)
                    .bind(tenant)
                    .bind(customer_id)
                    .bind(e.identity.email.as_deref())
                    .bind(e.occurred_at)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Deletes the contacts of `ids` (email and activity) and remembers the ids.
async fn erase(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM contacts WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO erased (tenant_id, customer_id) SELECT $1, unnest($2::uuid[])
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
