//! The delivery loop: claims queued messages whose time has come (`sending`, committed before
//! anything leaves), checks consent and the suppression list again (they may have changed
//! while the message waited for quiet hours to end), renders the template, hands the message to
//! its channel, and records the outcome with its `crm.interactions.v1` event.
//!
//! At most once: a message is marked `sending` in its own commit before the SMTP or HTTP
//! transaction and `sent` after it. A crash in between leaves it `sending`; after the lease it
//! is recorded as skipped (`send_interrupted`) and never sent again. The window in which a
//! crash loses a message is one SMTP transaction (at most the 30 s SMTP timeout); no window
//! sends one twice.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use crm_envelope::TenantId;
use crm_kafka::outbox;
use futures::StreamExt;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::guard::Guard;
use super::provider::Provider;
use super::smtp::Smtp;
use super::webhook::{self, Call};
use super::{Outbound, Send, SendError};
use crate::domain::channels::Settings;
use crate::domain::gate::quiet::Policy;
use crate::domain::gate::Decision;
use crate::domain::journeys::Channel;
use crate::domain::suppression;
use crate::domain::templates::{self, Limits};
use crate::domain::tracking::{self, Action, Claims, TrackingKey};
use crate::domain::webhooks::{after_attempt, AfterAttempt, Secret};
use crate::interactions::interaction;
use crate::offers::cache::Catalogue;
use crate::offers::decide::{decide, DecisionRequest};
use crate::offers::outcomes::{self, OutcomeReport, ReportError};
use crate::send_gate::{self, Check};
use crate::store::contacts::{self, Reach};
use crate::store::decisions::OutcomeKind;
use crate::store::messages::{self, Claimed, Outcome};
use crate::store::offers::CustomerRef;
use crate::store::{channels, policies, suppressions, templates as template_store};

/// Where tracking links point and how they are signed.
#[derive(Debug, Clone)]
pub struct Tracking {
    /// The public base URL of the gateway (`https://crm.example.com`).
    pub base_url: String,
    /// The signing key.
    pub key: TrackingKey,
    /// How long links stay valid.
    pub ttl: Duration,
}

impl Tracking {
    /// A signed tracking URL for `action` on `message` (`o` open, `c` click, `u` unsubscribe).
    pub fn url(&self, tenant: &TenantId, message: uuid::Uuid, action: Action) -> String {
        let path = match action {
            Action::Open => "o",
            Action::Click { .. } => "c",
            Action::Unsubscribe => "u",
            Action::Status => "status",
            Action::Survey { .. } => "s",
        };
        let token = self.key.issue(&Claims {
            tenant: tenant.as_str().to_owned(),
            message,
            action,
            expires: (Utc::now() + self.ttl).timestamp(),
        });
        format!("{}/t/{path}/{token}", self.base_url.trim_end_matches('/'))
    }
}

/// What the delivery loop needs.
#[derive(Clone)]
pub struct Delivery {
    /// The part's database.
    pub pool: PgPool,
    /// The SMTP relay.
    pub smtp: Smtp,
    /// Outbound HTTP guard.
    pub guard: Guard,
    /// Tracking links.
    pub tracking: Tracking,
    /// Template limits.
    pub limits: Limits,
    /// Wakes the outbox relay.
    pub relay: Arc<Notify>,
    /// How many messages are sent at once.
    pub concurrency: usize,
    /// How long a message may stay `sending` before it counts as interrupted by a crash
    /// (`CRM_CAMPAIGN__SEND_LEASE_SECS`).
    pub lease: Duration,
    /// Where deliveries are counted (`crm_messages_delivered_total`), when set.
    pub metrics: Option<crm_telemetry::Metrics>,
    /// The offer catalogue, for messages that show the best offer of a placement.
    pub catalogue: Catalogue,
}

impl Delivery {
    /// Claims and sends one batch; how many were claimed.
    pub async fn deliver_batch(&self, limit: i64) -> Result<usize, sqlx::Error> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let interrupted = messages::abandon_interrupted(&mut tx, now, self.lease).await?;
        let mut out = Vec::new();
        for m in &interrupted {
            out.push(skipped_event(m, "send_interrupted")?);
        }
        outbox::enqueue_all(&mut tx, &out).await?;
        let claimed = messages::claim_due(&mut tx, now, limit).await?;
        tx.commit().await?;
        let n = claimed.len();
        let results: Vec<Result<(), sqlx::Error>> = futures::stream::iter(claimed)
            .map(|m| async move { self.deliver_one(&m).await })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for r in results {
            r?;
        }
        if n > 0 || !interrupted.is_empty() {
            self.relay.notify_one();
        }
        Ok(n)
    }

    async fn deliver_one(&self, m: &Claimed) -> Result<(), sqlx::Error> {
        let outcome = match m.channel.as_str() {
            "webhook" => self.call_webhook(m).await?,
            _ => self.send_message(m).await?,
        };
        if let Some(metrics) = &self.metrics {
            let word = match &outcome {
                Done::Sent { .. } => "sent",
                Done::Skipped(_) => "skipped",
                Done::Failed(_) => "failed",
                Done::Retry { .. } => "retry",
            };
            metrics
                .messages_delivered
                .with_label_values(&[m.channel.as_str(), word])
                .inc();
        }
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let (finish, event) = match &outcome {
            Done::Sent {
                address,
                subject,
                links,
                provider_id,
                ..
            } => (
                Outcome::Sent {
                    address,
                    subject: subject.as_deref(),
                    links,
                    provider_id: provider_id.as_deref(),
                },
                Some(interaction(
                    &m.tenant_id,
                    "message.sent",
                    m.customer_id,
                    json!({"message_id": m.id, "journey_id": m.journey_id,
                           "instance_id": m.instance_id, "node": m.node, "channel": m.channel,
                           "template": m.template}),
                )?),
            ),
            Done::Skipped(reason) => (Outcome::Skipped(reason), Some(skipped_event(m, reason)?)),
            Done::Failed(error) => (
                Outcome::Failed(error),
                Some(interaction(
                    &m.tenant_id,
                    "message.failed",
                    m.customer_id,
                    json!({"message_id": m.id, "journey_id": m.journey_id, "node": m.node,
                           "channel": m.channel, "error": error}),
                )?),
            ),
            Done::Retry { at, error } => (
                Outcome::Retry {
                    retry_at: *at,
                    error,
                },
                None,
            ),
        };
        // A test send is to an address, not a customer: nothing goes on a timeline.
        let event = event.filter(|_| !m.customer_id.is_nil());
        if messages::finish(&mut tx, &m.tenant_id, m.id, &finish, now).await? {
            let mut out: Vec<_> = event.into_iter().collect();
            if let Done::Sent {
                shown: Some(shown), ..
            } = &outcome
            {
                out.extend(Self::offer_shown(&mut tx, m, *shown).await?);
            }
            outbox::enqueue_all(&mut tx, &out).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Renders and sends an email, SMS or push message.
    async fn send_message(&self, m: &Claimed) -> Result<Done, sqlx::Error> {
        let tenant = &m.tenant_id;
        let mut conn = self.pool.acquire().await?;
        let channel = suppression::channel_of(&m.channel).unwrap_or(Channel::Push);
        let reach = contacts::reach(&mut conn, tenant, m.customer_id).await?;
        let Some(tpl) =
            template_store::get(&mut conn, tenant, m.template.as_deref().unwrap_or("")).await?
        else {
            return Ok(Done::Skipped("template_missing"));
        };
        let test_send = m.instance_id.is_none();
        let reach = match reach {
            Some(r) => r,
            None if test_send => Reach::default(),
            None => return Ok(Done::Skipped("erased")),
        };
        let address = if test_send {
            m.address.clone()
        } else {
            reach.address(channel).map(str::to_owned)
        };
        let Some(address) = address.and_then(|a| suppression::normalise(channel, &a).ok()) else {
            return Ok(Done::Skipped("no_address"));
        };
        if m.gate_pending {
            // Queued before campaign had heard of the customer's profile: the whole gate now,
            // in a transaction of its own (the customer's cap lock is held until it commits).
            let zone = reach
                .traits
                .get("timezone")
                .and_then(|z| z.as_str())
                .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
                .or_else(|| m.time_zone.parse().ok())
                .unwrap_or(chrono_tz::UTC);
            let check = Check {
                tenant,
                customer: m.customer_id,
                journey: (
                    m.journey_id.unwrap_or_default(),
                    u8::try_from(m.holdout_percent).unwrap_or(0),
                ),
                zone,
                channel,
                message_type: &m.message_type,
                purpose: &m.purpose,
                transactional: m.transactional,
                priority: m.priority,
                address: &address,
                except: Some(m.id),
            };
            let quiet = match m.quiet_policy.as_deref() {
                Some("drop") => Some(Policy::Drop),
                Some("defer") => Some(Policy::Defer),
                _ => None,
            };
            let policy = policies::get(&mut conn, tenant).await?.for_message(quiet);
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let gated = send_gate::decide(&mut tx, &check, &policy, &reach, Utc::now()).await?;
            let displaced = send_gate::displaced_events(tenant, &gated.displaced, m.priority)?;
            outbox::enqueue_all(&mut tx, &displaced).await?;
            tx.commit().await?;
            match gated.decision {
                Decision::Send => {}
                Decision::Defer(at) => {
                    return Ok(Done::Retry {
                        at,
                        error: "quiet hours".to_owned(),
                    })
                }
                Decision::Skip(reason) => return Ok(Done::Skipped(reason.as_str())),
            }
        }
        // Consent and suppression again: they may have changed while the message waited.
        if !test_send && !send_gate::consented(&reach, &tpl.purpose, channel) {
            return Ok(Done::Skipped("no_consent"));
        }
        if suppressions::is_suppressed(&mut conn, tenant, channel, &address).await? {
            return Ok(Done::Skipped("suppressed"));
        }
        let Some((settings, secrets)) =
            channels::of_kind(&mut conn, tenant, suppression::channel_str(channel)).await?
        else {
            return Ok(Done::Skipped("no_channel"));
        };
        drop(conn);
        // The best offer of the node's placement, decided now (with its own connection).
        let offer = match (&m.offer_placement, test_send) {
            (Some(placement), false) => self.best_offer(m, placement, channel).await,
            _ => None,
        };
        // A personal survey link whose id is the message's: one answer per message.
        let survey_url = m.survey_id.map(|survey| {
            crate::domain::surveys::links::issue_as(
                &self.tracking.key,
                &self.tracking.base_url,
                tenant,
                m.id,
                survey,
                Some(m.customer_id),
                crate::domain::surveys::links::MESSAGE_DAYS,
                Utc::now(),
            )
            .url
        });
        let context = json!({
            "customer": reach.traits, "traits": reach.traits, "stage": reach.stage,
            "tier": reach.tier, "segments": reach.segments, "survey_url": survey_url,
            "offer": offer.as_ref().map(|(decision, o)| json!({
                "decision_id": decision, "offer_id": o.offer_id, "name": o.name,
                "content": o.content})),
        });
        let rendered = match templates::render(&tpl.parts, &context, &self.limits) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(message = %m.id, code = e.code, part = e.part, "template failed to render");
                return Ok(Done::Failed(format!("template {}: {}", e.part, e.code)));
            }
        };
        let (html, links) = match rendered.html {
            Some(html) => {
                let (html, links) = tracking::rewrite_links(&html, |url| {
                    self.tracking.url(
                        tenant,
                        m.id,
                        Action::Click {
                            url: url.to_owned(),
                        },
                    )
                });
                let pixel = self.tracking.url(tenant, m.id, Action::Open);
                (Some(tracking::add_pixel(&html, &pixel)), links)
            }
            None => (None, Vec::new()),
        };
        if !links.is_empty() {
            let mut conn = self.pool.acquire().await?;
            messages::record_links(&mut conn, tenant, m.id, &links).await?;
        }
        let unsubscribe =
            (!m.transactional).then(|| self.tracking.url(tenant, m.id, Action::Unsubscribe));
        let mut outbound = Outbound {
            send_key: format!("{}:{}", tenant.as_str(), m.send_key),
            to: address.clone(),
            from: String::new(),
            from_name: None,
            reply_to: None,
            subject: rendered.subject.clone(),
            html,
            text: rendered.text,
            unsubscribe,
            in_reply_to: None,
            references: Vec::new(),
        };
        let sent = match settings.settings {
            Settings::Email {
                from,
                from_name,
                reply_to,
            } => {
                outbound.from = from;
                outbound.from_name = from_name;
                outbound.reply_to = reply_to;
                self.smtp.send(&outbound).await
            }
            Settings::Sms { url, account, from } => {
                outbound.from = from;
                let provider = Provider {
                    url,
                    account,
                    token: secrets.first().cloned().unwrap_or_default(),
                    status_callback: Some(self.tracking.url(tenant, m.id, Action::Status)),
                    guard: self.guard,
                };
                provider.send(&outbound).await
            }
            Settings::Push { url, account } => {
                let provider = Provider {
                    url,
                    account,
                    token: secrets.first().cloned().unwrap_or_default(),
                    status_callback: None,
                    guard: self.guard,
                };
                provider.send(&outbound).await
            }
            Settings::Webhook { .. } => return Ok(Done::Skipped("no_channel")),
        };
        Ok(match sent {
            Ok(accepted) => Done::Sent {
                address,
                subject: Some(rendered.subject),
                links,
                provider_id: accepted.provider_id,
                shown: offer.as_ref().map(|(decision, o)| (*decision, o.offer_id)),
            },
            Err(SendError::Permanent(e)) => Done::Failed(e),
            Err(SendError::Transient(e)) => Done::Retry {
                at: Utc::now() + Duration::seconds(30),
                error: e,
            },
        })
    }

    /// The best offer of `placement` for the message's customer: a decision like the API's,
    /// with the channel as context. A failure leaves the message without an offer (templates
    /// test `{% if offer %}`), logged.
    async fn best_offer(
        &self,
        m: &Claimed,
        placement: &str,
        channel: Channel,
    ) -> Option<(Uuid, crate::domain::offers::decide::Offered)> {
        let mut context = serde_json::Map::new();
        context.insert("channel".into(), json!(suppression::channel_str(channel)));
        let request = DecisionRequest {
            customer: CustomerRef::Id(m.customer_id),
            placement: placement.to_owned(),
            context,
            limit: 1,
        };
        match decide(
            &self.pool,
            &self.catalogue,
            &m.tenant_id,
            request,
            Utc::now(),
        )
        .await
        {
            Ok(d) => {
                let id = d.decision_id;
                d.offers.into_iter().next().map(|o| (id, o))
            }
            Err(e) => {
                tracing::warn!(message = %m.id, error = %e, "no offer decided for the message");
                None
            }
        }
    }

    /// Records the offer a sent message carried as an impression of its decision, in the
    /// transaction that records the send (both or neither).
    async fn offer_shown(
        tx: &mut PgConnection,
        m: &Claimed,
        (decision, offer): (Uuid, Uuid),
    ) -> Result<Vec<crm_kafka::outbox::Outgoing>, sqlx::Error> {
        let report = OutcomeReport {
            offer_id: offer,
            kind: OutcomeKind::Impression,
            at: None,
        };
        match outcomes::record(tx, &m.tenant_id, decision, &report, "message", Utc::now()).await {
            Ok(done) => Ok(done.out),
            Err(ReportError::Db(e)) => Err(e),
            Err(e) => {
                tracing::warn!(message = %m.id, error = %e, "offer impression not recorded");
                Ok(Vec::new())
            }
        }
    }

    /// Calls a webhook channel, signed; retries on the specification's schedule.
    async fn call_webhook(&self, m: &Claimed) -> Result<Done, sqlx::Error> {
        let tenant = &m.tenant_id;
        let key = m.template.as_deref().unwrap_or("");
        let mut conn = self.pool.acquire().await?;
        let Some((row, secrets)) = channels::get(&mut conn, tenant, key).await? else {
            return Ok(Done::Failed(format!("no webhook channel {key:?}")));
        };
        if row.disabled_at.is_some() {
            return Ok(Done::Skipped("channel_disabled"));
        }
        let Settings::Webhook { url } = &row.settings else {
            return Ok(Done::Failed(format!("channel {key:?} is not a webhook")));
        };
        let reach = contacts::reach(&mut conn, tenant, m.customer_id)
            .await?
            .unwrap_or_default();
        let secrets: Vec<Secret> = secrets
            .iter()
            .filter_map(|s| Secret::parse(s).ok())
            .collect();
        let body = json!({
            "type": "journey.webhook",
            "timestamp": Utc::now(),
            "data": {"tenant_id": tenant, "customer_id": m.customer_id,
                     "journey_id": m.journey_id, "node": m.node, "traits": reach.traits,
                     "segments": reach.segments, "stage": reach.stage, "tier": reach.tier},
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let id = format!("msg_{}", m.id.simple());
        let answer = webhook::call(
            &self.guard,
            &Call {
                url,
                secrets: &secrets,
                id: &id,
                body: &body,
            },
        )
        .await;
        let status = match answer {
            Ok(s) => s,
            Err(refused) => return Ok(Done::Failed(refused)),
        };
        let attempts = usize::try_from(m.attempts).unwrap_or(1);
        Ok(match after_attempt(status, attempts) {
            AfterAttempt::Delivered => Done::Sent {
                address: url.clone(),
                subject: None,
                links: Vec::new(),
                provider_id: status.map(|s| s.to_string()),
                shown: None,
            },
            AfterAttempt::Retry(delay) => Done::Retry {
                at: Utc::now() + Duration::from_std(delay).unwrap_or(Duration::seconds(5)),
                error: format!("endpoint answered {status:?}"),
            },
            AfterAttempt::Failed => Done::Failed(format!("endpoint answered {status:?}")),
            AfterAttempt::Disable => {
                let mut conn = self.pool.acquire().await?;
                channels::disable(&mut conn, tenant, key, "410 Gone").await?;
                Done::Failed("endpoint answered 410 Gone: channel disabled".to_owned())
            }
        })
    }
}

/// What delivering a message came to.
enum Done {
    Sent {
        address: String,
        subject: Option<String>,
        links: Vec<String>,
        provider_id: Option<String>,
        /// The decision and offer the message showed, recorded as an impression when the
        /// send is.
        shown: Option<(Uuid, Uuid)>,
    },
    Skipped(&'static str),
    Failed(String),
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
}

fn skipped_event(m: &Claimed, reason: &str) -> Result<crm_kafka::outbox::Outgoing, sqlx::Error> {
    interaction(
        &m.tenant_id,
        "message.skipped",
        m.customer_id,
        json!({"message_id": m.id, "journey_id": m.journey_id, "instance_id": m.instance_id,
               "node": m.node, "channel": m.channel, "template": m.template, "reason": reason}),
    )
}

/// Runs the delivery loop until `shutdown`: batches while messages are due, else sleeps up to
/// `idle` or until `wake` is notified.
pub async fn run(
    delivery: Delivery,
    wake: Arc<Notify>,
    idle: StdDuration,
    batch: i64,
    shutdown: CancellationToken,
) {
    loop {
        // A batch in flight is finished even during shutdown: its messages are `sending`.
        let sent = delivery.deliver_batch(batch).await;
        if shutdown.is_cancelled() {
            return;
        }
        match sent {
            Ok(n) if n as i64 >= batch => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "delivering messages failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(idle) => {}
        }
    }
}
