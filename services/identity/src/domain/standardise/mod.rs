//! Standardisation of identifiers and traits before they are stored or matched.
//!
//! Every function here is pure and returns a [`Checked`] value: the standardised form when the
//! input is valid, or the input as received with [`Quality::Invalid`], so nothing is dropped in
//! silence. Matching keys (accent-folded, abbreviated) are separate from display values: a
//! profile shows "José", matching compares "jose".

mod address;
mod date;
mod email;
mod name;
mod phone;
mod traits;

pub use address::{address_key, STREET_TYPES};
pub use date::birth_date;
pub use email::{email, EmailAddress, ProviderRules};
pub use name::{fold, name_display, name_key};
pub use phone::{phone, region, PhoneE164};
pub use traits::{standardise_traits, BIRTH_DATE_TRAITS, NAME_TRAITS};

use serde::Serialize;

/// What standardisation made of one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Valid and already in standard form.
    Valid,
    /// Valid once rewritten to the standard form.
    Standardised,
    /// Not valid: kept as received.
    Invalid,
}

/// A value after standardisation, with its quality flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// The standard form, or the input as received when invalid.
    pub value: String,
    /// How the value fared.
    pub quality: Quality,
}

impl Checked {
    /// `value` compared to what was received: `Valid` when unchanged, else `Standardised`.
    pub fn valid(received: &str, value: String) -> Self {
        let quality = if value == received {
            Quality::Valid
        } else {
            Quality::Standardised
        };
        Self { value, quality }
    }

    /// `standard` when the value parsed, else the input kept as received, flagged invalid.
    pub fn of(received: &str, standard: Option<&str>) -> Self {
        match standard {
            Some(value) => Self::valid(received, value.to_owned()),
            None => Self::invalid(received),
        }
    }

    /// The input kept as received, flagged invalid.
    pub fn invalid(received: &str) -> Self {
        Self {
            value: received.to_owned(),
            quality: Quality::Invalid,
        }
    }

    /// Whether the value is usable (valid or standardised).
    pub fn is_valid(&self) -> bool {
        self.quality != Quality::Invalid
    }
}

/// `s` with runs of whitespace collapsed to one space and the ends trimmed.
pub fn squash_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}
