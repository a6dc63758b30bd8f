//! Messages on `crm.loyalty.v1`.

use crm_envelope::{Envelope, TenantId, Topic};
use crm_kafka::outbox::Outgoing;
use uuid::Uuid;

/// A `kind` message about `customer` with `properties`.
pub fn message(
    tenant: &TenantId,
    kind: &str,
    customer: Uuid,
    properties: serde_json::Value,
) -> Result<Outgoing, sqlx::Error> {
    let mut e = Envelope::domain(tenant.clone(), kind, customer, "loyalty");
    if let serde_json::Value::Object(p) = properties {
        e.properties = p;
    }
    Outgoing::new(Topic::Loyalty, &e).map_err(|err| sqlx::Error::Encode(Box::new(err)))
}
