use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{Pii, TenantId};

/// A social network handle, such as `{"network": "twitter", "handle": "@ana"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Handle {
    /// The network, lower case (`twitter`, `instagram`, ...).
    pub network: String,
    /// The handle on that network.
    #[schema(value_type = String)]
    pub handle: Pii<String>,
}

/// The identifiers an event carries. At least `user_id` or `anonymous_id` is present on
/// `crm.ingest.v1`, because one of them is the message key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The customer's id in the sending system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// A device or browser id, before the customer is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// An email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Pii<String>>,
    /// A phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Pii<String>>,
    /// Social network handles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handles: Vec<Handle>,
}

/// One event, as carried by every topic of the suite (ARCHITECTURE.md, "The event envelope").
///
/// Its `Debug` shows the identifiers redacted ([`Pii`]) and only the keys of `traits`,
/// `properties` and `context`, whose values (names, addresses, IPs) are personal data.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Envelope {
    /// Message id: client-supplied, or a new UUIDv7. Consumers dedupe on `(tenant_id, id)`.
    pub id: String,
    /// The tenant this event belongs to.
    #[schema(value_type = String)]
    pub tenant_id: TenantId,
    /// `track`, `identify`, `page`, `screen`, `group`, `alias`, or a domain kind such as
    /// `profile.merged`.
    pub kind: String,
    /// The event name (`Order Completed`); required for `track`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the event happened, as the sender says.
    pub occurred_at: DateTime<Utc>,
    /// When the suite received it.
    pub received_at: DateTime<Utc>,
    /// Where it came from: `api`, `segment`, `kafka`, `identity`, ...
    pub source: String,
    /// The identifiers it carries.
    #[serde(default)]
    pub identity: Identity,
    /// Set by identity; absent on `crm.ingest.v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Uuid>,
    /// Profile traits (identify).
    #[serde(default)]
    pub traits: Map<String, Value>,
    /// Event properties (track).
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// Context: ip, user agent, library, ...
    #[serde(default)]
    pub context: Map<String, Value>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = |m: &Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
        f.debug_struct("Envelope")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("occurred_at", &self.occurred_at)
            .field("received_at", &self.received_at)
            .field("source", &self.source)
            .field("identity", &self.identity)
            .field("customer_id", &self.customer_id)
            .field("traits", &keys(&self.traits))
            .field("properties", &keys(&self.properties))
            .field("context", &keys(&self.context))
            .finish()
    }
}

impl Envelope {
    /// A new domain event (such as `profile.updated`) about a customer, with a fresh UUIDv7 id.
    pub fn domain(tenant_id: TenantId, kind: &str, customer_id: Uuid, source: &str) -> Self {
        let now = Utc::now();
        Self {
            id: Uuid::now_v7().to_string(),
            tenant_id,
            kind: kind.to_owned(),
            name: None,
            occurred_at: now,
            received_at: now,
            source: source.to_owned(),
            identity: Identity::default(),
            customer_id: Some(customer_id),
            traits: Map::new(),
            properties: Map::new(),
            context: Map::new(),
        }
    }

    /// `properties[key]` as a UUID (the ids domain events carry: `survivor_id`, `merged_id`,
    /// `restored_id`, ...), if it is one.
    pub fn uuid_property(&self, key: &str) -> Option<Uuid> {
        self.properties
            .get(key)
            .and_then(serde_json::Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
    }

    /// The ids a `profile.erased` names: `properties.erased_ids` and `customer_id`, each once.
    pub fn erased_ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .properties
            .get("erased_ids")
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        ids.extend(self.customer_id);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The Kafka key: `tenant:customer_id` once resolved, else `tenant:user_id`, else
    /// `tenant:anonymous_id`. Keys keep one customer's events in one partition.
    pub fn partition_key(&self) -> String {
        let who = match (
            &self.customer_id,
            &self.identity.user_id,
            &self.identity.anonymous_id,
        ) {
            (Some(c), _, _) => c.to_string(),
            (None, Some(u), _) => u.clone(),
            (None, None, Some(a)) => a.clone(),
            (None, None, None) => self.id.clone(),
        };
        format!("{}:{}", self.tenant_id, who)
    }
}
