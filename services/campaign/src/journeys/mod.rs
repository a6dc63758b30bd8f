//! Running journeys (a use case): what a signal (event, segment change, stage change) does to
//! the customer's live instances and to the published journeys it may start, and what a due
//! timer does to its instance. Everything happens in the caller's transaction: the consumer's,
//! which dedupes the message, or the timer loop's, which claimed the timer. So a step, its
//! messages and its `crm.interactions.v1` events commit together or not at all.
//!
//! Order on a signal, for each live instance: the event is recorded as seen, the goal checked
//! (counted in every arm and in the holdout), the exit criteria checked (an exit cancels the
//! pending wait and any queued message at once), then a `wait_for` that awaited it resumes.
//! Then published journeys whose trigger matches enter the customer (re-entry rules and one
//! live instance per entry key are the store's).

pub mod effects;
pub mod recent;
pub mod scheduled;
pub mod timers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use crm_kafka::outbox::Outgoing;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::gate::holdout;
use crate::domain::journeys::signal::{self, Signal};
use crate::domain::journeys::step::Facts;
use crate::domain::journeys::{Channel, Journey, Node};
use crate::engine::{self, Instance, Outcome};
use crate::interactions::interaction;
use crate::store::contacts::{self, Reach};
use crate::store::instances::{self, Entrant, Live};
use crate::store::{journeys as journey_store, messages};

/// Parsed journey versions by (tenant, journey, version): versions never change once
/// published, so the cache needs no invalidation.
type Cache = HashMap<(TenantId, Uuid, i32), Arc<Journey>>;

/// Runs journeys; cheap to clone (the cache of parsed versions is shared).
#[derive(Clone)]
pub struct Runner {
    cache: Arc<Mutex<Cache>>,
    profile_grace: chrono::Duration,
    pub(crate) recent: recent::Recent,
}

impl Default for Runner {
    fn default() -> Self {
        Self::new(chrono::Duration::seconds(30))
    }
}

/// What a run produced: events for the outbox, and whether messages were queued (the
/// delivery loop is woken).
#[derive(Debug, Default)]
pub struct Produced {
    /// For the outbox.
    pub out: Vec<Outgoing>,
    /// Messages were queued.
    pub queued: bool,
}

impl Produced {
    fn add(&mut self, other: Produced) {
        self.out.extend(other.out);
        self.queued |= other.queued;
    }
}

impl Runner {
    /// A runner with an empty cache; a send whose customer's profile has not arrived yet waits
    /// `profile_grace` for it (then passes the gate at delivery).
    pub fn new(profile_grace: chrono::Duration) -> Self {
        Self {
            cache: Arc::default(),
            profile_grace,
            recent: recent::Recent::default(),
        }
    }

    /// Version `version` of `journey`, parsed (from the cache when it was read before).
    pub async fn definition(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
        journey: Uuid,
        version: i32,
    ) -> Result<Option<Arc<Journey>>, sqlx::Error> {
        let key = (tenant.clone(), journey, version);
        if let Some(j) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(Some(j));
        }
        let Some(doc) = journey_store::version(conn, tenant, journey, version).await? else {
            return Ok(None);
        };
        // A published version was checked when it was saved; limits may have tightened
        // since, so it is parsed with no limits rather than refused.
        let parsed = match serde_json::from_value::<Journey>(doc) {
            Ok(j) => Arc::new(j),
            Err(e) => {
                tracing::error!(%journey, version, error = %e, "a published journey no longer parses");
                return Ok(None);
            }
        };
        if let Ok(mut c) = self.cache.lock() {
            if c.len() > 10_000 {
                c.clear();
            }
            c.insert(key, parsed.clone());
        }
        Ok(Some(parsed))
    }

    /// Applies `signal` about `customer` (which happened at `at`) to their live instances and
    /// to the tenant's published journeys.
    pub async fn on_signal(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
        customer: Uuid,
        signal: &Signal<'_>,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Produced, sqlx::Error> {
        let mut produced = Produced::default();
        // Merged ids act on the survivor; erased ids start nothing.
        let Some(customer) = contacts::live_id(conn, tenant, customer).await? else {
            return Ok(produced);
        };
        let reach = contacts::reach(conn, tenant, customer)
            .await?
            .unwrap_or_default();
        let mut running = Vec::new();
        for live in instances::live_locked(conn, tenant, customer).await? {
            let Some(journey) = self
                .definition(conn, tenant, live.journey_id, live.version)
                .await?
            else {
                continue;
            };
            running.push(live.journey_id);
            let r = self
                .signal_instance(conn, tenant, &live, &journey, signal, &reach, at, now)
                .await?;
            produced.add(r);
        }
        for (id, version) in journey_store::published(conn, tenant).await? {
            let Some(journey) = self.definition(conn, tenant, id, version).await? else {
                continue;
            };
            let Some(key) = signal::starts(&journey, signal, customer) else {
                continue;
            };
            let entrant = Entrant {
                journey: id,
                version,
                customer,
                entry_key: &key,
                start: &journey.start,
            };
            let r = self
                .enter(conn, tenant, &entrant, &journey, &reach, now)
                .await?;
            produced.add(r);
        }
        Ok(produced)
    }

    #[allow(clippy::too_many_arguments)]
    async fn signal_instance(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
        live: &Live,
        journey: &Journey,
        signal: &Signal<'_>,
        reach: &Reach,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Produced, sqlx::Error> {
        let mut produced = Produced::default();
        let mut live = live.clone();
        if let Signal::Event { name, .. } = signal {
            instances::saw(conn, tenant, live.id, name).await?;
            live.seen.push((*name).to_owned());
        }
        if signal::reaches_goal(journey, signal, live.entered_at, at)
            && instances::reach_goal(conn, tenant, live.id, at).await?
        {
            produced.out.push(interaction(
                tenant,
                "journey.goal_reached",
                live.customer_id,
                json!({"journey_id": live.journey_id, "instance_id": live.id,
                       "version": live.version, "goal": journey.goal.as_ref().map(|g| &g.event)}),
            )?);
            if signal::exits_on_goal(journey) {
                produced.add(end(conn, tenant, &live, "goal_reached", now).await?);
                return Ok(produced);
            }
        }
        if let Some(reason) = signal::exits(journey, signal) {
            produced.add(end(conn, tenant, &live, reason, now).await?);
            return Ok(produced);
        }
        if let Some(Node::WaitFor { what, next, .. }) = journey.nodes.get(&live.node) {
            if signal::awaited(what, signal) {
                instances::cancel_timer(conn, tenant, live.id).await?;
                instances::move_to(conn, tenant, live.id, next, None).await?;
                let r = self
                    .run(conn, tenant, &live, journey, next.clone(), reach, now)
                    .await?;
                produced.add(r);
            }
        }
        Ok(produced)
    }

    /// Enters the customer if the journey's entry rules allow, then runs the first nodes.
    async fn enter(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
        entrant: &Entrant<'_>,
        journey: &Journey,
        reach: &Reach,
        now: DateTime<Utc>,
    ) -> Result<Produced, sqlx::Error> {
        let mut produced = Produced::default();
        let Some(id) = instances::enter(conn, tenant, entrant, &journey.entry, now).await? else {
            return Ok(produced);
        };
        let held_out = holdout::held_out(
            &entrant.journey.to_string(),
            entrant.customer,
            journey.holdout_percent,
        );
        if held_out {
            instances::mark_held_out(conn, tenant, id).await?;
        }
        produced.out.push(interaction(
            tenant,
            "journey.entered",
            entrant.customer,
            json!({"journey_id": entrant.journey, "instance_id": id, "version": entrant.version,
                   "journey_name": journey.name, "held_out": held_out}),
        )?);
        let live = Live {
            id,
            journey_id: entrant.journey,
            version: entrant.version,
            customer_id: entrant.customer,
            node: journey.start.clone(),
            entered_at: now,
            seen: Vec::new(),
            goal_at: None,
        };
        let r = self
            .run(
                conn,
                tenant,
                &live,
                journey,
                journey.start.clone(),
                reach,
                now,
            )
            .await?;
        produced.add(r);
        Ok(produced)
    }

    /// Runs the instance from `node` until it waits or ends, and applies the effects.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
        live: &Live,
        journey: &Journey,
        node: String,
        reach: &Reach,
        now: DateTime<Utc>,
    ) -> Result<Produced, sqlx::Error> {
        let facts = facts(conn, tenant, live, journey, reach).await?;
        let instance = Instance {
            tenant,
            id: live.id,
            journey_id: live.journey_id,
            customer: live.customer_id,
        };
        let (done, outcome) = engine::advance(conn, instance, journey, node, &facts, now).await?;
        let target = effects::Target {
            tenant,
            live,
            journey,
            reach,
            profile_grace: self.profile_grace,
            recent: &self.recent,
        };
        let mut produced = effects::apply(conn, &target, done, now).await?;
        if outcome == Outcome::Exited {
            produced.out.push(exited(tenant, live, "completed")?);
        }
        Ok(produced)
    }
}

/// Ends the instance (`reason`), cancelling its pending wait and queued messages.
pub async fn end(
    conn: &mut PgConnection,
    tenant: &TenantId,
    live: &Live,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Produced, sqlx::Error> {
    let mut produced = Produced::default();
    if instances::exit(conn, tenant, live.id, reason, now).await? {
        let cancelled = messages::cancel_for_instance(conn, tenant, live.id).await?;
        if cancelled > 0 {
            tracing::debug!(instance = %live.id, cancelled, "queued messages cancelled by an exit");
        }
        produced.out.push(exited(tenant, live, reason)?);
    }
    Ok(produced)
}

fn exited(tenant: &TenantId, live: &Live, reason: &str) -> Result<Outgoing, sqlx::Error> {
    interaction(
        tenant,
        "journey.exited",
        live.customer_id,
        json!({"journey_id": live.journey_id, "instance_id": live.id, "version": live.version,
               "reason": reason}),
    )
}

/// What the instance's branches see: the contact's mirror, the events it saw, and which of
/// its messages were opened or clicked.
pub async fn facts(
    conn: &mut PgConnection,
    tenant: &TenantId,
    live: &Live,
    journey: &Journey,
    reach: &Reach,
) -> Result<Facts, sqlx::Error> {
    let mut facts = Facts {
        traits: reach.traits.clone(),
        segments: reach.segments.iter().copied().collect(),
        stage: reach.stage.clone(),
        tier: reach.tier.clone(),
        // Segmentation's prediction; a `predicted_value` trait where none has arrived.
        value: reach.predicted_value.or_else(|| {
            reach
                .traits
                .get("predicted_value")
                .and_then(serde_json::Value::as_f64)
        }),
        events_seen: live.seen.iter().cloned().collect(),
        ..Facts::default()
    };
    for pair in &reach.consents {
        let Some((purpose, channel)) = pair.split_once(':') else {
            continue;
        };
        let channels: &[Channel] = match channel {
            "email" => &[Channel::Email],
            "sms" => &[Channel::Sms],
            "push" => &[Channel::Push],
            "any" => &[Channel::Email, Channel::Sms, Channel::Push],
            _ => &[],
        };
        for c in channels {
            facts.consents.insert((purpose.to_owned(), *c));
        }
    }
    // Opens and clicks are read only by journeys that branch on them.
    let engagement = if journey.reads_engagement() {
        messages::engagement(conn, tenant, live.id).await?
    } else {
        Vec::new()
    };
    for (node, opened, clicked) in engagement {
        if opened || clicked {
            facts.opened.insert(node.clone());
        }
        if clicked {
            facts.clicked.insert(node);
        }
    }
    Ok(facts)
}
