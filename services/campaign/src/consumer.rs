//! The consumer of `crm.events.v1`, `crm.profiles.v1`, `crm.segments.v1` and
//! `crm.loyalty.v1`: keeps the contacts campaigns can reach and what journeys read about them
//! (traits, consent, memberships, stage, tier), follows identity's merges and erasures, and
//! runs journeys on every signal (an event, a segment change, a stage change), once per
//! message id and topic, in one transaction with the journeys' steps and their outbox.

use std::sync::Arc;

use chrono::Utc;
use crm_envelope::Envelope;
use crm_kafka::{dedupe, outbox, require_customer, HandleError, Handler, MessageMeta};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::domain::contacts::{effect_of, Effect};
use crate::domain::journeys::signal::Signal;
use crate::journeys::Runner;
use crate::offers::outcomes::{self, ReportError};
use crate::store::contacts::{self, Ids, Mirror};
use crate::store::{decisions, experiments, instances, messages};

/// Applies each message to the contacts and the journeys, once per message id and topic.
#[derive(Clone)]
pub struct CampaignHandler {
    pool: PgPool,
    runner: Runner,
    relay: Arc<Notify>,
    sends: Arc<Notify>,
}

impl CampaignHandler {
    /// A handler over the part's database; `relay` and `sends` are woken after commits that
    /// published events or queued messages.
    pub fn new(pool: PgPool, runner: Runner, relay: Arc<Notify>, sends: Arc<Notify>) -> Self {
        Self {
            pool,
            runner,
            relay,
            sends,
        }
    }

    pub(crate) fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    /// A tracked `Offer Viewed` / `Clicked` / `Accepted` / `Rejected` event recorded as the
    /// outcome of its decision; the events to publish. An event naming an unknown decision or
    /// an offer the decision did not make is an ordinary event: logged, nothing recorded.
    async fn offer_outcome(
        &self,
        tx: &mut sqlx::PgConnection,
        e: &Envelope,
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<crm_kafka::outbox::Outgoing>, HandleError> {
        let Some((decision, mut report)) =
            outcomes::from_event(e.name.as_deref().unwrap_or(""), &e.properties)
        else {
            return Ok(Vec::new());
        };
        report.at = Some(e.occurred_at.min(now));
        match outcomes::record(tx, &e.tenant_id, decision, &report, "event", now).await {
            Ok(done) => Ok(done.out),
            Err(ReportError::Db(err)) => Err(err.into()),
            Err(why) => {
                tracing::info!(%decision, offer = %report.offer_id, reason = %why,
                    "tracked offer event not recorded as an outcome");
                Ok(Vec::new())
            }
        }
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
        let now = Utc::now();
        let mut signal = None;
        let mut tracked = Vec::new();
        match &effect {
            Effect::Merge { merged, survivor } => {
                contacts::merge(&mut tx, tenant, *merged, *survivor).await?;
                instances::follow_merge(&mut tx, tenant, *merged, *survivor, now).await?;
                messages::merge(&mut tx, tenant, *merged, *survivor).await?;
                decisions::merge(&mut tx, tenant, *merged, *survivor).await?;
                experiments::merge(&mut tx, tenant, *merged).await?;
            }
            Effect::Erase(ids) => {
                instances::erase(&mut tx, tenant, ids).await?;
                messages::erase(&mut tx, tenant, ids).await?;
                decisions::erase(&mut tx, tenant, ids).await?;
                experiments::erase(&mut tx, tenant, ids).await?;
                contacts::erase(&mut tx, tenant, ids).await?;
            }
            Effect::Profile => {
                contacts::record_profile(
                    &mut tx,
                    tenant,
                    customer_id,
                    pii(&e.identity.email),
                    &e.traits,
                    e.occurred_at,
                )
                .await?;
                let ids = Ids {
                    user_id: e.identity.user_id.as_deref(),
                    anonymous_id: e.identity.anonymous_id.as_deref(),
                    phone: pii(&e.identity.phone),
                };
                contacts::record_ids(&mut tx, tenant, customer_id, ids).await?;
            }
            Effect::Activity => {
                contacts::record_activity(&mut tx, tenant, customer_id, e.occurred_at).await?;
                tracked = self.offer_outcome(&mut tx, e, now).await?;
                if let Some(name) = e.name.as_deref() {
                    experiments::record_goal(
                        &mut tx,
                        tenant,
                        customer_id,
                        name,
                        &e.properties,
                        e.occurred_at,
                    )
                    .await?;
                }
                signal = Some(Signal::Event {
                    name: e.name.as_deref().unwrap_or(e.kind.as_str()),
                    properties: &e.properties,
                });
            }
            Effect::Consent {
                purpose,
                channel,
                granted,
            } => {
                let change = Mirror::Consent {
                    purpose,
                    channel,
                    granted: *granted,
                    at: e.occurred_at,
                };
                contacts::record_mirror(&mut tx, tenant, customer_id, change).await?;
            }
            Effect::Segment { segment, entered } => {
                let change = Mirror::Segment(*segment, *entered);
                contacts::record_mirror(&mut tx, tenant, customer_id, change).await?;
                signal = Some(Signal::Segment {
                    segment: *segment,
                    entered: *entered,
                });
            }
            Effect::Stage(stage) => {
                contacts::record_mirror(&mut tx, tenant, customer_id, Mirror::Stage(stage)).await?;
                signal = Some(Signal::Stage { to: stage });
            }
            Effect::Tier(tier) => {
                contacts::record_mirror(&mut tx, tenant, customer_id, Mirror::Tier(tier)).await?;
            }
            Effect::LeadScore(score) => {
                let change = Mirror::LeadScore(*score);
                contacts::record_mirror(&mut tx, tenant, customer_id, change).await?;
            }
            Effect::Rfm(scores) => {
                contacts::record_mirror(&mut tx, tenant, customer_id, Mirror::Rfm(scores)).await?;
            }
        }
        let mut queued = false;
        let mut published = !tracked.is_empty();
        outbox::enqueue_all(&mut tx, &tracked).await?;
        if let Some(signal) = signal {
            let produced = self
                .runner
                .on_signal(&mut tx, tenant, customer_id, &signal, e.occurred_at, now)
                .await?;
            outbox::enqueue_all(&mut tx, &produced.out).await?;
            queued = produced.queued;
            published = !produced.out.is_empty();
        }
        tx.commit().await?;
        if published {
            self.relay.notify_one();
        }
        if queued {
            self.sends.notify_one();
        }
        Ok(())
    }
}

fn pii(v: &Option<crm_envelope::Pii<String>>) -> Option<&str> {
    v.as_deref().map(String::as_str)
}
