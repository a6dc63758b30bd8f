//! Test sends: one message to one address, outside any journey (no customer, no consent
//! needed, the suppression list still applies), queued for the delivery loop like any message.
//! Used by the template and journey test-send endpoints.

use chrono::Utc;
use crm_envelope::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::journeys::Channel;
use crate::domain::suppression::channel_str;
use crate::store::messages::{self, GateInputs, NewMessage, Start};

/// Queues `template` on `channel` to the normalised `address`; the message's id.
pub async fn queue(
    conn: &mut PgConnection,
    tenant: &TenantId,
    template: &str,
    channel: Channel,
    address: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    let send_key = format!("test:{}", Uuid::now_v7());
    let m = NewMessage {
        send_key: &send_key,
        customer: Uuid::nil(),
        journey: None,
        channel: channel_str(channel),
        template,
        message_type: "test",
        transactional: true,
        priority: 0,
        address: Some(address),
        gate: GateInputs {
            purpose: "transactional",
            holdout_percent: 0,
            time_zone: "UTC",
            quiet: None,
        },
        offer_placement: None,
        survey_id: None,
    };
    let start = Start::Queued {
        not_before: Utc::now(),
    };
    messages::record(conn, tenant, &m, start).await
}
