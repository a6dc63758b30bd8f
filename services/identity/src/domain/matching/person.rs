//! The person schema: names, postal address, date of birth and a national id, as customer
//! records and the Febrl reference data carry them. Values are standardised
//! ([`crate::domain::standardise`]) before they are compared.

use std::sync::LazyLock;

use serde_json::{Map, Value as Json};

use super::blocking::{BlockingKey, KeyPart, Transform};
use super::compare::{Comparator, Value};
use super::schema::{Field, Record, Schema};
use crate::domain::standardise::{address_key, name_key};

/// The person fields, in record order.
pub const FIELDS: [&str; 10] = [
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
];

/// The default person schema.
///
/// Names and address lines are compared by Jaro-Winkler in bands (0.92, 0.8), codes and numbers
/// by edit distance (one typing error is a level of its own), dates by [`Comparator::Date`].
/// Blocking keys cover each strong field on its own, so that one mistyped field does not hide
/// a duplicate: surname, date of birth, national id, address line with postcode, postcode with
/// street number, postcode with birth year, and the Soundex codes of both names in either
/// order. (A street name alone is too common a key in a large base.)
pub fn schema() -> Schema {
    let names = Comparator::JaroWinkler {
        bands: vec![0.92, 0.8],
    };
    let one_typo = Comparator::EditDistance { max: 1 };
    let comparator = |field: &str| match field {
        "given_name" | "surname" | "address_1" | "address_2" | "suburb" => names.clone(),
        "street_number" | "postcode" | "soc_sec_id" => one_typo.clone(),
        "date_of_birth" => Comparator::Date,
        _ => Comparator::Exact,
    };
    Schema {
        fields: FIELDS
            .iter()
            .map(|&name| Field {
                name: name.to_owned(),
                comparator: comparator(name),
            })
            .collect(),
        swappable: Some(("given_name".into(), "surname".into())),
        blocking: vec![
            key(&[KeyPart::whole("surname")]),
            key(&[KeyPart::whole("date_of_birth")]),
            key(&[KeyPart::whole("soc_sec_id")]),
            key(&[KeyPart::whole("address_1"), KeyPart::whole("postcode")]),
            key(&[KeyPart::whole("postcode"), KeyPart::whole("street_number")]),
            key(&[
                KeyPart::whole("postcode"),
                KeyPart::new("date_of_birth", Transform::Prefix(4)),
            ]),
            BlockingKey {
                parts: vec![
                    KeyPart::new("given_name", Transform::Soundex),
                    KeyPart::new("surname", Transform::Soundex),
                ],
                unordered: true,
            },
        ],
    }
}

/// The default person schema, built once (online matching uses it on every trait change).
pub fn shared() -> &'static Schema {
    static SCHEMA: LazyLock<Schema> = LazyLock::new(schema);
    &SCHEMA
}

fn key(parts: &[KeyPart]) -> BlockingKey {
    BlockingKey {
        parts: parts.to_vec(),
        unordered: false,
    }
}

/// A person record from raw values in [`FIELDS`] order (`None` or empty when absent),
/// standardised for matching: names folded, street types abbreviated, codes without spaces,
/// dates as digits (kept even when not a valid date: a mistyped date still nearly agrees).
pub fn record(raw: &[Option<&str>; 10]) -> Record {
    let values = FIELDS
        .iter()
        .zip(raw)
        .map(|(field, value)| {
            let value = value.unwrap_or("");
            let standard = match *field {
                "address_1" | "address_2" => address_key(value),
                "street_number" | "postcode" | "soc_sec_id" => name_key(value).replace(' ', ""),
                "date_of_birth" => value.chars().filter(char::is_ascii_digit).collect(),
                _ => name_key(value),
            };
            Value::new(&standard)
        })
        .collect();
    Record { values }
}

/// Trait names read as each person field, first found wins.
const TRAIT_NAMES: [&[&str]; 10] = [
    &["given_name", "first_name", "firstname"],
    &["surname", "last_name", "lastname", "family_name"],
    &["street_number", "house_number"],
    &["address_1", "address", "street", "address_line_1"],
    &["address_2", "address_line_2"],
    &["suburb", "city", "town", "locality"],
    &["postcode", "postal_code", "zip", "zip_code"],
    &["state", "region", "province"],
    &["date_of_birth", "birthday", "birth_date", "dob"],
    &["soc_sec_id", "national_id", "tax_id"],
];

/// The person record of a customer's traits, if it has at least two person fields.
pub fn person_of(traits: &Map<String, Json>) -> Option<Record> {
    let text = |names: &[&str]| {
        names.iter().find_map(|n| match traits.get(*n) {
            Some(Json::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Json::Number(x)) => Some(x.to_string()),
            _ => None,
        })
    };
    let values: Vec<Option<String>> = TRAIT_NAMES.iter().map(|names| text(names)).collect();
    if values.iter().filter(|v| v.is_some()).count() < 2 {
        return None;
    }
    let mut raw: [Option<&str>; 10] = [None; 10];
    for (slot, value) in raw.iter_mut().zip(&values) {
        *slot = value.as_deref();
    }
    Some(record(&raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matching::compare::MISSING;

    #[test]
    fn schema_is_valid_and_standardises() {
        let s = schema();
        s.validate().unwrap();
        let a = record(&[
            Some("Sophie"),
            Some("Snell"),
            Some("47"),
            Some("Vaughan Garden"),
            None,
            Some("Hahndorf"),
            Some("2372"),
            Some("TAS"),
            Some("1923-11-14"),
            Some("836 8391"),
        ]);
        let b = record(&[
            Some("snell"),
            Some("sophie"),
            Some("47"),
            Some("vaughan gardens"),
            Some(""),
            Some("hahndorf"),
            Some("2372"),
            Some("tas"),
            Some("19231114"),
            Some("8368391"),
        ]);
        let mut out = [0u8; 10];
        s.compare(&a, &b, &mut out);
        // Names swapped back; "Garden" and "gardens" share one abbreviation.
        assert_eq!(out, [0, 0, 0, 0, MISSING, 0, 0, 0, 0, 0]);
    }
}
