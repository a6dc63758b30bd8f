//! The send gate with what it reads loaded (a use case over the pure `domain::gate`): the
//! tenant's contact policy, the customer's recent messages, consent and the suppression list.
//! It runs at the `send` node, or at delivery for a message queued before campaign had heard
//! of the customer's profile.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use crm_envelope::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::gate::policy::ContactPolicy;
use crate::domain::gate::{self, Candidate, Decision};
use crate::domain::journeys::Channel;
use crate::domain::suppression;
use crate::store::contacts::Reach;
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

/// The gate's decision for `c` under the tenant's `policy` about a customer whose mirror is
/// `reach`, at `now`.
pub async fn decide(
    conn: &mut PgConnection,
    c: &Check<'_>,
    policy: &ContactPolicy,
    reach: &Reach,
    now: DateTime<Utc>,
) -> Result<Decision, sqlx::Error> {
    let history = if policy.caps.is_empty() {
        Vec::new()
    } else {
        let since = now - Duration::hours(policy.history_hours());
        messages::history(conn, c.tenant, c.customer, since, c.except).await?
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
        caps: &policy.caps,
        history: &history,
        quiet: policy.quiet(),
    };
    Ok(gate::decide(&candidate, now))
}
