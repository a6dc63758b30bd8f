//! Blocking keys: which parts of which fields make a key (part of a schema's definition), and
//! the key of a record. Generating candidate pairs from them is [`super::blocking`]'s.

use serde::{Deserialize, Serialize};

use super::record::Record;
use super::similarity::soundex;

/// How a field's value is turned into part of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// The whole standardised value.
    Whole,
    /// Its first N characters.
    Prefix(usize),
    /// Its Soundex code.
    Soundex,
}

/// One part of a blocking key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPart {
    /// Field name.
    pub field: String,
    /// What of the value goes into the key.
    pub transform: Transform,
}

impl KeyPart {
    /// The whole value of `field`.
    pub fn whole(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            transform: Transform::Whole,
        }
    }

    /// `transform` of `field`.
    pub fn new(field: &str, transform: Transform) -> Self {
        Self {
            field: field.to_owned(),
            transform,
        }
    }
}

/// A blocking key: its parts joined; a record without one of the parts has no key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockingKey {
    /// The parts, all required.
    pub parts: Vec<KeyPart>,
    /// Sort the parts before joining, so names typed the wrong way round share the key.
    #[serde(default)]
    pub unordered: bool,
}

impl BlockingKey {
    /// The key of `record`, or `None` when a part is missing. `indices` are the parts' field
    /// indices in the schema.
    pub fn key_of(&self, record: &Record, indices: &[usize]) -> Option<String> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for (part, &i) in self.parts.iter().zip(indices) {
            let value = record.values.get(i)?.as_ref()?;
            let text = match part.transform {
                Transform::Whole => value.text.to_string(),
                Transform::Prefix(n) => value.chars.iter().take(n).collect(),
                Transform::Soundex => soundex(&value.text),
            };
            if text.is_empty() {
                return None;
            }
            parts.push(text);
        }
        if self.unordered {
            parts.sort_unstable();
        }
        Some(parts.join("\u{1f}"))
    }
}
