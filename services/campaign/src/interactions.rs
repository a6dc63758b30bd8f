//! What campaign tells the other parts on `crm.interactions.v1` (ARCHITECTURE.md): journeys
//! entered and exited, messages sent, skipped (with the reason), delivered, opened, clicked,
//! bounced, complained, and unsubscribes. Each is a domain event about one customer, written to
//! the outbox in the transaction of the change it announces; identity shows them on the
//! customer's timeline and segmentation rules can count them.

use crm_envelope::{TenantId, Topic};
use crm_kafka::outbox::Outgoing;
use serde_json::Value;
use uuid::Uuid;

/// The part's `source` on the events it publishes.
pub const SOURCE: &str = "campaign";

/// A `kind` event about `customer` with `properties`, for `crm.interactions.v1`.
pub fn interaction(
    tenant: &TenantId,
    kind: &str,
    customer: Uuid,
    properties: Value,
) -> Result<Outgoing, sqlx::Error> {
    Outgoing::domain(
        Topic::Interactions,
        tenant,
        kind,
        customer,
        SOURCE,
        properties,
    )
}
