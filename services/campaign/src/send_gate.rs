//! The send gate with what it reads loaded (a use case over the pure `domain::gate`): the
//! tenant's contact policy, the customer's recent messages, consent and the suppression list.
//! It runs at the `send` node, or at delivery for a message queued before campaign had heard
//! of the customer's profile.
//!
//! Caps are decided one message at a time per customer: the decision takes a
//! transaction-scoped advisory lock on (tenant, customer), so two journeys sending to the same
//! customer at once (a timer worker and the consumer, or two replicas) cannot both take the
//! last slot. Callers that gate several customers in one transaction do so in ascending
//! (tenant, customer) order, so these locks are always taken in one order.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use crm_envelope::TenantId;
use crm_kafka::outbox::Outgoing;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::gate::policy::ContactPolicy;
use crate::domain::gate::{self, Candidate, Decision, SkipReason};
use crate::domain::journeys::Channel;
use crate::domain::suppression;
use crate::interactions::interaction;
use crate::store::contacts::Reach;
use crate::store::messages::Displaced;
use crate::store::{messages, suppressions};

/// One message before the gate.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The customer.
    pub customer: Uuid,
    /// The journey (salt of its control group) and its control group in percent.
    pub journey: (Uuid, u8),
    /// The customer's time zone.
    pub zone: Tz,
    /// The channel.
    pub channel: Channel,
    /// Its type for caps.
    pub message_type: &'a str,
    /// Its template's consent purpose (`transactional` needs none).
    pub purpose: &'a str,
    /// Exempt from caps and quiet hours.
    pub transactional: bool,
    /// Its journey's priority (higher wins a cap's last slot).
    pub priority: i32,
    /// The normalised address.
    pub address: &'a str,
    /// The message itself, when it is already stored (not counted against the caps).
    pub except: Option<Uuid>,
}

/// Whether the customer consents to `purpose` on `channel` (or on `any`).
pub fn consented(reach: &Reach, purpose: &str, channel: Channel) -> bool {
    let name = suppression::channel_str(channel);
    purpose == "transactional"
        || reach.consents.iter().any(|c| {
            c.split_once(':')
                .is_some_and(|(p, ch)| p == purpose && (ch == name || ch == "any"))
        })
}

/// What the gate decided, and the queued messages of lower priority that gave up their cap
/// slots for it (already recorded as skipped: publish [`displaced_events`]).
#[derive(Debug)]
pub struct Gated {
    /// The decision.
    pub decision: Decision,
    /// Messages skipped as `frequency_cap` to make room.
    pub displaced: Vec<Displaced>,
}

/// The gate's decision for `c` under the tenant's `policy` about a customer whose mirror is
/// `reach`, at `now`. Run it in the transaction that records the message: the cap decision
/// holds the customer's lock until that commits.
pub async fn decide(
    conn: &mut PgConnection,
    c: &Check<'_>,
    policy: &ContactPolicy,
    reach: &Reach,
    now: DateTime<Utc>,
) -> Result<Gated, sqlx::Error> {
    let capped = !policy.caps.is_empty() && !c.transactional;
    let history = if capped {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(format!("caps:{}:{}", c.tenant.as_str(), c.customer))
            .execute(&mut *conn)
            .await?;
        let since = now - Duration::hours(policy.history_hours());
        messages::history(conn, c.tenant, c.customer, since, c.except).await?
    } else {
        Vec::new()
    };
    let candidate = Candidate {
        customer: c.customer,
        channel: c.channel,
        message_type: c.message_type,
        transactional: c.transactional,
        consented: consented(reach, c.purpose, c.channel),
        suppressed: suppressions::is_suppressed(conn, c.tenant, c.channel, c.address).await?,
        journey: c.journey,
        global_holdout: (c.tenant.as_str(), policy.global_holdout_percent),
        time_zone: c.zone,
        priority: c.priority,
        caps: &policy.caps,
        history: &history,
        quiet: policy.quiet(),
    };
    let (decision, displacing) = gate::decide_displacing(&candidate, now);
    if displacing.is_empty() {
        return Ok(Gated {
            decision,
            displaced: Vec::new(),
        });
    }
    match messages::displace(conn, c.tenant, &displacing).await? {
        Some(displaced) => Ok(Gated {
            decision,
            displaced,
        }),
        // One of them left meanwhile: its slot is taken for good.
        None => Ok(Gated {
            decision: Decision::Skip(SkipReason::FrequencyCap),
            displaced: Vec::new(),
        }),
    }
}

/// The `message.skipped` events of messages that yielded their slots.
pub fn displaced_events(
    tenant: &TenantId,
    displaced: &[Displaced],
    by_priority: i32,
) -> Result<Vec<Outgoing>, sqlx::Error> {
    displaced
        .iter()
        .map(|d| {
            interaction(
                tenant,
                "message.skipped",
                d.customer_id,
                json!({"message_id": d.id, "journey_id": d.journey_id,
                       "instance_id": d.instance_id, "node": d.node, "channel": d.channel,
                       "template": d.template, "reason": "frequency_cap",
                       "priority": d.priority, "yielded_to_priority": by_priority}),
            )
        })
        .collect()
}
