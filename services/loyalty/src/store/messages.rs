//! Messages on `crm.loyalty.v1`.

use crm_envelope::{TenantId, Topic};
use crm_kafka::outbox::Outgoing;
use uuid::Uuid;

/// A `kind` message about `customer` with `properties`.
pub fn message(
    tenant: &TenantId,
    kind: &str,
    customer: Uuid,
    properties: serde_json::Value,
) -> Result<Outgoing, sqlx::Error> {
    Outgoing::domain(
        Topic::Loyalty,
        tenant,
        kind,
        customer,
        "loyalty",
        properties,
    )
}
