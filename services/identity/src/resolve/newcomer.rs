//! Customers created inside a batch without statements of their own: an event whose
//! identifiers nobody holds, that brings no consent, and that online matching cannot merge (the
//! tenant has no fitted model, or the traits make no person record) creates a customer whose
//! whole state is known in memory. The rows (customer, identifiers, blocking keys) join the
//! batch's deferred writes and go in with one statement per table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_envelope::{Envelope, Profile, ProfileIdentifier, TenantId};
use crm_kafka::HandleError;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::identifiers::{Extracted, IdentifierKey};
use crate::domain::matching::person;
use crate::domain::matching::person::person_of;
use crate::domain::settings::Settings;
use crate::domain::survivorship::Traits;
use crate::domain::traits::{combine_event, within_caps};
use crate::store::match_keys::keys_of;
use crate::store::search::search_text;

/// A customer to insert.
#[derive(Debug, Clone)]
pub(crate) struct NewCustomer {
    tenant: TenantId,
    id: Uuid,
    traits: Traits,
    quality: Map<String, Value>,
    occurred_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    search_text: String,
    identifiers: Vec<IdentifierKey>,
    match_keys: Vec<String>,
}

impl NewCustomer {
    /// The identifiers it links.
    pub(crate) fn identifiers(&self) -> &[IdentifierKey] {
        &self.identifiers
    }
}

/// Whether `envelope` may create its customer in memory, given that none of its identifiers
/// is held: it carries no consent (recorded by its own statements), and online matching could
/// not merge the new customer (no model, or no person record in its traits).
pub(crate) fn eligible(envelope: &Envelope, traits: &Map<String, Value>, has_model: bool) -> bool {
    !envelope.traits.contains_key("consent") && (!has_model || person_of(traits).is_none())
}

/// The new customer of `envelope` (identifiers within the tenant's caps, traits combined from
/// nothing, invalid values flagged) and its profile as a `profile.created` carries it.
pub(crate) fn create(
    settings: &Settings,
    envelope: &Envelope,
    incoming_traits: &Map<String, Value>,
    extracted: &Extracted,
    now: DateTime<Utc>,
) -> (NewCustomer, Profile) {
    let mut traits = Traits::default();
    let mut quality = Map::new();
    combine_event(
        settings,
        &mut traits,
        &mut quality,
        envelope,
        incoming_traits,
        extracted,
    );
    let mut identifiers: Vec<IdentifierKey> =
        within_caps(settings, &mut HashMap::new(), &extracted.keys)
            .into_iter()
            .cloned()
            .collect();
    // The order a profile lists identifiers linked at the same time in.
    identifiers.sort_by(|a, b| (&a.kind, &a.value).cmp(&(&b.kind, &b.value)));
    let emails: Vec<String> = identifiers
        .iter()
        .filter(|k| k.kind == "email")
        .map(|k| k.value.clone())
        .collect();
    let match_keys = person_of(&traits.values)
        .map(|record| keys_of(person::shared(), &record))
        .unwrap_or_default();
    let id = Uuid::now_v7();
    let profile = Profile {
        id,
        tenant_id: envelope.tenant_id.clone(),
        traits: traits.values.clone(),
        identifiers: identifiers
            .iter()
            .map(|k| ProfileIdentifier {
                kind: k.kind.clone(),
                value: k.value.clone(),
            })
            .collect(),
        unattached: Vec::new(),
        accounts: Vec::new(),
        event_count: 1,
        version: 1,
        first_seen_at: envelope.occurred_at,
        last_seen_at: envelope.occurred_at,
        created_at: now,
        updated_at: now,
    };
    let customer = NewCustomer {
        tenant: envelope.tenant_id.clone(),
        id,
        search_text: search_text(&traits.values, &emails),
        traits,
        quality,
        occurred_at: envelope.occurred_at,
        created_at: now,
        identifiers,
        match_keys,
    };
    (customer, profile)
}

/// Inserts `customers` with their identifiers and blocking keys, one statement per table. An
/// identifier that another transaction linked meanwhile fails the batch as transient: retrying
/// resolves the event against the identifier's new owner.
pub(crate) async fn insert_all(
    tx: &mut PgConnection,
    customers: &[NewCustomer],
) -> Result<(), HandleError> {
    if customers.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = customers.iter().map(|c| c.tenant.as_str()).collect();
    let ids: Vec<Uuid> = customers.iter().map(|c| c.id).collect();
    let json = |f: fn(&NewCustomer) -> &Map<String, Value>| {
        customers
            .iter()
            .map(|c| sqlx::types::Json(f(c)))
            .collect::<Vec<_>>()
    };
    let seen: Vec<DateTime<Utc>> = customers.iter().map(|c| c.occurred_at).collect();
    let created: Vec<DateTime<Utc>> = customers.iter().map(|c| c.created_at).collect();
    let texts: Vec<&str> = customers.iter().map(|c| c.search_text.as_str()).collect();
    sqlx::query(
        "INSERT INTO customers (tenant_id, id, traits, trait_sources, quality, event_count, version,
                                first_seen_at, last_seen_at, created_at, updated_at, search_text)
         SELECT t, i, tr, s, q, 1, 1, o, o, c, c, x
         FROM unnest($1::text[], $2::uuid[], $3::jsonb[], $4::jsonb[], $5::jsonb[],
                     $6::timestamptz[], $7::timestamptz[], $8::text[])
              AS n(t, i, tr, s, q, o, c, x)",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(json(|c| &c.traits.values))
    .bind(json(|c| &c.traits.sources))
    .bind(json(|c| &c.quality))
    .bind(&seen)
    .bind(&created)
    .bind(&texts)
    .execute(&mut *tx)
    .await?;

    let (mut t, mut kinds, mut values, mut owners) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for c in customers {
        for k in &c.identifiers {
            t.push(c.tenant.as_str());
            kinds.push(k.kind.as_str());
            values.push(k.value.as_str());
            owners.push(c.id);
        }
    }
    let linked = sqlx::query(
        "INSERT INTO identifiers (tenant_id, kind, value, customer_id)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[])
         ON CONFLICT DO NOTHING",
    )
    .bind(&t)
    .bind(&kinds)
    .bind(&values)
    .bind(&owners)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if linked != kinds.len() as u64 {
        return Err(HandleError::Transient(anyhow::anyhow!(
            "identifier claimed concurrently"
        )));
    }

    let (mut t, mut keys, mut owners) = (Vec::new(), Vec::new(), Vec::new());
    for c in customers {
        for k in &c.match_keys {
            t.push(c.tenant.as_str());
            keys.push(k.as_str());
            owners.push(c.id);
        }
    }
    if !keys.is_empty() {
        sqlx::query(
            "INSERT INTO match_keys (tenant_id, key, customer_id)
             SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[]) ON CONFLICT DO NOTHING",
        )
        .bind(&t)
        .bind(&keys)
        .bind(&owners)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_envelope::Identity;
    use serde_json::json;

    fn identify(traits: Value) -> Envelope {
        let mut e = Envelope::domain(
            TenantId::parse("t").unwrap(),
            "identify",
            Uuid::nil(),
            "crm",
        );
        e.customer_id = None;
        e.identity = Identity {
            user_id: Some("u1".into()),
            email: Some("Ana@Example.com".into()),
            ..Identity::default()
        };
        e.traits = traits.as_object().cloned().unwrap_or_default();
        e
    }

    #[test]
    fn a_new_customer_is_complete_in_memory() {
        let settings = Settings::default();
        let e = identify(json!({"first_name": "ana", "birthday": "31/31/1990"}));
        let mut extracted = crate::identifiers_of(&e, &settings);
        let traits = crate::domain::traits::standardised_traits(&e, &mut extracted);
        let now = Utc::now();
        let (customer, profile) = create(&settings, &e, &traits, &extracted, now);
        assert_eq!(profile.id, customer.id);
        assert_eq!(profile.traits["first_name"], "Ana");
        assert_eq!(profile.event_count, 1);
        let kinds: Vec<&str> = profile
            .identifiers
            .iter()
            .map(|i| i.kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            ["email", "user_id"],
            "sorted as the database lists them"
        );
        assert_eq!(customer.quality["birthday"]["quality"], "invalid");
        assert!(customer.search_text.contains("ana@example.com"));
        assert!(!eligible(&identify(json!({"consent": {}})), &traits, false));
    }
}
