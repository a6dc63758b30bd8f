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
use crate::domain::pipeline::leads::LeadSource;
use crate::journeys::Runner;
use crate::offers::outcomes::{self, ReportError};
use crate::pipeline::leads::{self, LeadError, LeadRequest};
use crate::pipeline::settings_cache::{self, SettingsCache};
use crate::pipeline::SYSTEM;
use crate::store::contacts::{self, Ids, Mirror};
use crate::store::leads as lead_store;
use crate::store::opportunities as opportunity_store;
use crate::store::surveys as survey_store;
use crate::store::tasks as task_store;
use crate::store::{decisions, experiments, instances, messages};

/// Applies each message to the contacts and the journeys, once per message id and topic.
#[derive(Clone)]
pub struct CampaignHandler {
    pool: PgPool,
    runner: Runner,
    relay: Arc<Notify>,
    sends: Arc<Notify>,
    lead_settings: SettingsCache,
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
            lead_settings: SettingsCache::new(settings_cache::TTL),
        }
    }

    pub(crate) fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    /// Opens the lead a message asks for, keyed by the message's id (a replay opens none);
    /// the events to publish. A lead the tenant's settings or data refuse is logged, not an
    /// error: the message is applied without it.
    async fn open_lead(
        &self,
        tx: &mut sqlx::PgConnection,
        e: &Envelope,
        request: &LeadRequest,
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<crm_kafka::outbox::Outgoing>, HandleError> {
        let origin = format!("event:{}", e.id);
        match leads::open(tx, &e.tenant_id, request, Some(&origin), SYSTEM, now).await {
            Ok(Some(opened)) => Ok(opened.out),
            Ok(None) => Ok(Vec::new()),
            Err(LeadError::Db(err)) => Err(err.into()),
            Err(why) => {
                tracing::info!(reason = %why, source = request.source.as_str(), "lead not opened");
                Ok(Vec::new())
            }
        }
    }

    /// The lead a tracked event opens under the tenant's `leads_from_events` rules (a form
    /// submitted, a survey answered), its campaign from the rule's property; the events to
    /// publish.
    async fn lead_from_event(
        &self,
        tx: &mut sqlx::PgConnection,
        e: &Envelope,
        customer_id: uuid::Uuid,
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<crm_kafka::outbox::Outgoing>, HandleError> {
        let Some(name) = e.name.as_deref().filter(|_| e.kind == "track") else {
            return Ok(Vec::new());
        };
        let settings = self.lead_settings.get(tx, &e.tenant_id).await?;
        let Some(rule) = settings.event_rule(name) else {
            return Ok(Vec::new());
        };
        let campaign = e
            .properties
            .get(&rule.campaign_property)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|c| !c.is_empty() && c.chars().count() <= 200 && !c.contains('\0'))
            .map(str::to_owned);
        let request = LeadRequest {
            customer_id,
            source: rule.source,
            campaign,
            owner: None,
        };
        self.open_lead(tx, e, &request, now).await
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
                lead_store::merge(&mut tx, tenant, *merged, *survivor, now).await?;
                opportunity_store::merge(&mut tx, tenant, *merged, *survivor).await?;
                task_store::merge(&mut tx, tenant, *merged, *survivor).await?;
                survey_store::merge(&mut tx, tenant, *merged, *survivor).await?;
            }
            Effect::Erase(ids) => {
                instances::erase(&mut tx, tenant, ids).await?;
                messages::erase(&mut tx, tenant, ids).await?;
                decisions::erase(&mut tx, tenant, ids).await?;
                experiments::erase(&mut tx, tenant, ids).await?;
                lead_store::erase(&mut tx, tenant, ids).await?;
                opportunity_store::erase(&mut tx, tenant, ids).await?;
                task_store::erase(&mut tx, tenant, ids).await?;
                survey_store::erase(&mut tx, tenant, ids).await?;
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
                tracked.extend(self.lead_from_event(&mut tx, e, customer_id, now).await?);
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
            Effect::LeadScore { score, qualified } => {
                let change = Mirror::LeadScore(*score);
                contacts::record_mirror(&mut tx, tenant, customer_id, change).await?;
                if *qualified {
                    // One open lead per customer and source: a customer who qualifies again
                    // while their lead is open opens none, and the event id keys the lead
                    // against a replay.
                    let request = LeadRequest {
                        customer_id,
                        source: LeadSource::Score,
                        campaign: None,
                        owner: None,
                    };
                    tracked.extend(self.open_lead(&mut tx, e, &request, now).await?);
                }
            }
            Effect::Rfm(scores) => {
                contacts::record_mirror(&mut tx, tenant, customer_id, Mirror::Rfm(scores)).await?;
            }
            Effect::Value(value) => {
                let change = Mirror::Value(*value);
                contacts::record_mirror(&mut tx, tenant, customer_id, change).await?;
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
