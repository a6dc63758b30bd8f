//! Applying a step's effects, in the step's transaction: a `send` passes the send gate and is
//! recorded as a queued message (sent by the delivery loop) or a skipped one (published as
//! `message.skipped` with the reason); `set_trait` and `add_points` become events on
//! `crm.ingest.v1` (identity owns traits, loyalty owns points) with ids derived from the step,
//! so a redelivery is deduped downstream; a webhook call is queued like a message.

use crate::domain::pipeline::leads::LeadSource;
use crate::pipeline::leads::{self, LeadError, LeadRequest};
use crate::pipeline::SYSTEM;
use chrono::{DateTime, Duration, Utc};
use crm_envelope::{Envelope, Identity, TenantId, Topic};
use crm_kafka::outbox::Outgoing;
use serde_json::{json, Map, Value};
use sqlx::PgConnection;

use super::Produced;
use crate::domain::gate::quiet::Policy;
use crate::domain::gate::Decision;
use crate::domain::journeys::step::{customer_zone, Effect};
use crate::domain::journeys::{Channel, Journey};
use crate::domain::suppression;
use crate::interactions::{interaction, SOURCE};
use crate::send_gate::{self, Check};
use crate::store::contacts::Reach;
use crate::store::instances::Live;
use crate::store::messages::{self, GateInputs, NewMessage, Start};

/// Whom the effects are for.
pub struct Target<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The instance.
    pub live: &'a Live,
    /// Its journey version.
    pub journey: &'a Journey,
    /// The customer's mirror.
    pub reach: &'a Reach,
    /// How long a send waits for a profile that has not arrived.
    pub profile_grace: Duration,
    /// Recently read templates and policies.
    pub recent: &'a super::recent::Recent,
}

/// Applies `effects` (each with the node that made it).
pub async fn apply(
    conn: &mut PgConnection,
    t: &Target<'_>,
    effects: Vec<(String, Effect)>,
    now: DateTime<Utc>,
) -> Result<Produced, sqlx::Error> {
    let mut produced = Produced::default();
    for (node, effect) in effects {
        let step_key = format!("{}:{node}:1", t.live.id);
        match effect {
            Effect::Send {
                template,
                channel,
                transactional,
                quiet,
                offer_placement,
                survey,
            } => {
                let spec = SendSpec {
                    node: &node,
                    step_key: &step_key,
                    template: &template,
                    channel,
                    transactional,
                    quiet,
                    offer_placement: offer_placement.as_deref(),
                    survey,
                };
                produced.add(send(conn, t, &spec, now).await?);
            }
            Effect::SetTrait { name, value } => {
                let mut traits = Map::new();
                traits.insert(name.clone(), value.clone());
                if let Some(m) = ingest(t, &step_key, "identify", None, traits, Map::new())? {
                    produced.out.push(m);
                }
            }
            Effect::AddPoints { points, reason } => {
                let props = json!({"points": points, "reason": reason,
                                   "journey_id": t.live.journey_id, "node": node});
                let props = props.as_object().cloned().unwrap_or_default();
                let name = Some("Journey Points Awarded");
                if let Some(m) = ingest(t, &step_key, "track", name, Map::new(), props)? {
                    produced.out.push(m);
                }
            }
            Effect::OpenLead { campaign } => {
                // Keyed by the step, so a replayed step opens nothing more; one open lead
                // per customer and source besides.
                let request = LeadRequest {
                    customer_id: t.live.customer_id,
                    source: LeadSource::Journey,
                    campaign: Some(campaign.unwrap_or_else(|| t.journey.name.clone())),
                    owner: None,
                };
                let origin = format!("journey:{step_key}");
                match leads::open(conn, t.tenant, &request, Some(&origin), SYSTEM, now).await {
                    Ok(Some(opened)) => produced.out.extend(opened.out),
                    Ok(None) => {}
                    Err(LeadError::Db(e)) => return Err(e),
                    Err(why) => tracing::info!(reason = %why, "journey lead not opened"),
                }
            }
            Effect::Webhook { channel } => {
                let m = NewMessage {
                    send_key: &step_key,
                    customer: t.live.customer_id,
                    journey: Some((t.live.journey_id, t.live.id, &node)),
                    channel: "webhook",
                    template: &channel,
                    message_type: "webhook",
                    transactional: true,
                    priority: t.journey.priority,
                    address: None,
                    gate: GateInputs {
                        purpose: "transactional",
                        holdout_percent: 0,
                        time_zone: &t.journey.time_zone,
                        quiet: None,
                    },
                    offer_placement: None,
                    survey_id: None,
                };
                let start = Start::Queued { not_before: now };
                if messages::record(conn, t.tenant, &m, start).await?.is_some() {
                    produced.queued = true;
                }
            }
        }
    }
    Ok(produced)
}

/// What a `send` node asks for.
struct SendSpec<'a> {
    node: &'a str,
    step_key: &'a str,
    template: &'a str,
    channel: Channel,
    transactional: bool,
    quiet: Option<Policy>,
    offer_placement: Option<&'a str>,
    survey: Option<uuid::Uuid>,
}

/// A `send` node: the gate, then a queued or a skipped message.
async fn send(
    conn: &mut PgConnection,
    t: &Target<'_>,
    spec: &SendSpec<'_>,
    now: DateTime<Utc>,
) -> Result<Produced, sqlx::Error> {
    let SendSpec {
        node,
        step_key,
        template,
        channel,
        transactional,
        quiet,
        offer_placement,
        survey,
    } = *spec;
    let mut produced = Produced::default();
    let tpl = t.recent.template(conn, t.tenant, template).await?;
    let (message_type, purpose) = tpl.as_ref().map_or(("marketing", "marketing"), |x| {
        (x.message_type.as_str(), x.purpose.as_str())
    });
    let address = t.reach.address(channel);
    let normalised = address.and_then(|a| suppression::normalise(channel, a).ok());
    let zone = customer_zone(t.journey, &t.reach.traits);
    let start = match (&tpl, &normalised) {
        (None, _) => Start::Skipped("template_missing"),
        // The trigger overtook the customer's profile (another topic): the gate runs at
        // delivery, once the profile has had time to arrive.
        (Some(_), _) if !t.reach.profile_seen => Start::AwaitingProfile {
            not_before: now + t.profile_grace,
        },
        (Some(_), None) => Start::Skipped("no_address"),
        (Some(_), Some(addr)) => {
            let check = Check {
                tenant: t.tenant,
                customer: t.live.customer_id,
                journey: (t.live.journey_id, t.journey.holdout_percent),
                zone,
                channel,
                message_type,
                purpose,
                transactional,
                priority: t.journey.priority,
                address: addr,
                except: None,
            };
            let policy = t.recent.policy(conn, t.tenant).await?.for_message(quiet);
            let gated = send_gate::decide(conn, &check, &policy, t.reach, now).await?;
            let displaced =
                send_gate::displaced_events(t.tenant, &gated.displaced, t.journey.priority)?;
            produced.out.extend(displaced);
            // Capped messages wait the tenant's priority hold, during which a message of a
            // higher priority may still take their slot.
            let hold = if transactional {
                Duration::zero()
            } else {
                policy.priority_hold()
            };
            match gated.decision {
                Decision::Send => Start::Queued {
                    not_before: now + hold,
                },
                Decision::Defer(at) => Start::Queued {
                    not_before: at.max(now + hold),
                },
                Decision::Skip(reason) => Start::Skipped(reason.as_str()),
            }
        }
    };
    let m = NewMessage {
        send_key: step_key,
        customer: t.live.customer_id,
        journey: Some((t.live.journey_id, t.live.id, node)),
        channel: suppression::channel_str(channel),
        template,
        message_type,
        transactional,
        priority: t.journey.priority,
        address: normalised.as_deref(),
        gate: GateInputs {
            purpose,
            holdout_percent: t.journey.holdout_percent,
            time_zone: &t.journey.time_zone,
            quiet,
        },
        offer_placement,
        survey_id: survey,
    };
    let Some(id) = messages::record(conn, t.tenant, &m, start).await? else {
        return Ok(produced);
    };
    match start {
        Start::Queued { .. } | Start::AwaitingProfile { .. } => produced.queued = true,
        Start::Skipped(reason) => produced.out.push(interaction(
            t.tenant,
            "message.skipped",
            t.live.customer_id,
            json!({"message_id": id, "journey_id": t.live.journey_id, "instance_id": t.live.id,
                   "node": node, "channel": m.channel, "template": template, "reason": reason}),
        )?),
    }
    Ok(produced)
}

/// An event about the customer for `crm.ingest.v1`, addressed by the identifiers identity
/// knows them by; `None` (logged) when the contact has none.
fn ingest(
    t: &Target<'_>,
    step_key: &str,
    kind: &str,
    name: Option<&str>,
    traits: Map<String, Value>,
    properties: Map<String, Value>,
) -> Result<Option<Outgoing>, sqlx::Error> {
    if t.reach.user_id.is_none() && t.reach.anonymous_id.is_none() {
        tracing::warn!(
            instance = %t.live.id,
            kind,
            "the customer has no user_id or anonymous_id yet: the journey action is not sent"
        );
        return Ok(None);
    }
    let now = Utc::now();
    let envelope = Envelope {
        id: format!("journey:{step_key}"),
        tenant_id: t.tenant.clone(),
        kind: kind.to_owned(),
        name: name.map(str::to_owned),
        occurred_at: now,
        received_at: now,
        source: SOURCE.to_owned(),
        identity: Identity {
            user_id: t.reach.user_id.clone(),
            anonymous_id: t.reach.anonymous_id.clone(),
            ..Identity::default()
        },
        customer_id: None,
        traits,
        properties,
        context: Map::new(),
    };
    Outgoing::new(Topic::Ingest, &envelope)
        .map(Some)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))
}
