//! What an event brings to a customer: its traits in standard form, combined into the
//! customer's by the tenant's survivorship rule (invalid values and malformed consent flagged),
//! and the identifiers a customer may link within the tenant's caps. Pure: resolution of a
//! known customer and the creation of a new one both call it, so they cannot disagree.

use std::collections::HashMap;

use chrono::Utc;
use crm_envelope::Envelope;
use serde_json::{json, Map, Value};

use crate::domain::consent::parse_consent;
use crate::domain::identifiers::{Extracted, IdentifierKey};
use crate::domain::settings::Settings;
use crate::domain::standardise::{standardise_traits, Quality};
use crate::domain::survivorship;
use crate::domain::survivorship::Traits;
use crate::domain::trait_rules;

/// The event's traits with names and dates of birth in standard form; invalid ones stay as
/// received, and every check is recorded in `extracted`.
pub fn standardised_traits(envelope: &Envelope, extracted: &mut Extracted) -> Map<String, Value> {
    let mut traits = envelope.traits.clone();
    for (field, received, checked) in standardise_traits(&mut traits, Utc::now().date_naive()) {
        extracted.check(&field, &received, &checked);
    }
    traits
}

/// Combines an event's standardised traits into `traits`: those its `context.trait_rules` name
/// by their rule ([`trait_rules`]), the rest by the tenant's survivorship rule,
/// and flags in `quality` its invalid values and a malformed `consent` (kept as received, not
/// applied); whether the trait values changed.
pub fn combine_event(
    settings: &Settings,
    traits: &mut Traits,
    quality: &mut Map<String, Value>,
    e: &Envelope,
    incoming_traits: &Map<String, Value>,
    extracted: &Extracted,
) -> bool {
    let mut values = incoming_traits.clone();
    let consent = values.remove("consent");
    let mut incoming = survivorship::from_event(&values, &e.source, e.occurred_at);
    let rules = trait_rules::rules_of(&e.context);
    let ruled = trait_rules::apply(
        &rules,
        trait_rules::verified(&e.context),
        traits,
        &mut incoming,
    );
    let changed = survivorship::combine(
        settings.survivorship,
        &settings.source_trust,
        traits,
        &incoming,
    ) || ruled;
    if let Some(raw) = consent.filter(|v| parse_consent(v).is_err()) {
        quality.insert(
            "consent".into(),
            json!({"value": raw, "quality": "invalid", "at": e.occurred_at}),
        );
    }
    for check in extracted
        .checks
        .iter()
        .filter(|c| c.quality == Quality::Invalid)
    {
        quality.insert(
            check.field.clone(),
            json!({"value": check.received, "quality": "invalid", "at": e.occurred_at}),
        );
    }
    changed
}

/// The identifiers of `keys` a customer holding `held` (count per kind) may link: at most one
/// user_id, and up to the tenant's cap of any other kind; `held` counts them in.
pub fn within_caps<'k>(
    settings: &Settings,
    held: &mut HashMap<String, i64>,
    keys: impl IntoIterator<Item = &'k IdentifierKey>,
) -> Vec<&'k IdentifierKey> {
    keys.into_iter()
        .filter(|key| {
            let cap = if key.kind == "user_id" {
                1
            } else {
                i64::from(settings.max_identifiers_per_kind)
            };
            let count = held.entry(key.kind.clone()).or_insert(0);
            let fits = *count < cap;
            if fits {
                *count += 1;
            }
            fits
        })
        .collect()
}
