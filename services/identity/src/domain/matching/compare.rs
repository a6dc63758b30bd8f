//! Field comparators: each turns two values of a field into an agreement level, 0 for the
//! strongest agreement up to `levels() - 1` for disagreement. The Fellegi–Sunter model learns
//! how much each level of each field says about a match.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::similarity::{jaro_winkler, osa_within};

/// Level of a field missing on either side: it says nothing, in either direction.
pub const MISSING: u8 = u8::MAX;

/// How one field is compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Comparator {
    /// Levels: equal, different.
    Exact,
    /// Levels: equal, then one per band of Jaro-Winkler similarity at or above it (bands
    /// from high to low), then different.
    JaroWinkler {
        /// Similarity bands, descending, each in (0, 1).
        bands: Vec<f64>,
    },
    /// Levels: one per edit distance 0..=max (optimal string alignment: a swap of two
    /// adjacent characters is one edit), then different.
    EditDistance {
        /// Largest distance with a level of its own.
        max: u8,
    },
    /// Dates as `YYYYMMDD` digits (or ISO). Levels: equal; close (one typing error, or day
    /// and month swapped); same year; different.
    Date,
    /// Numbers. Levels: one per band of absolute difference at or below it (ascending, the
    /// first usually 0), then different.
    Number {
        /// Difference bands, ascending.
        bands: Vec<f64>,
    },
}

impl Comparator {
    /// How many levels the comparator gives (missing aside).
    pub fn levels(&self) -> usize {
        match self {
            Self::Exact => 2,
            Self::JaroWinkler { bands } => bands.len() + 2,
            Self::EditDistance { max } => usize::from(*max) + 2,
            Self::Date => 4,
            Self::Number { bands } => bands.len() + 1,
        }
    }

    /// The level of agreement between `a` and `b`.
    pub fn level(&self, a: &Value, b: &Value) -> u8 {
        let last = (self.levels() - 1) as u8;
        match self {
            Self::Exact => u8::from(a.text != b.text),
            Self::JaroWinkler { bands } => {
                if a.text == b.text {
                    return 0;
                }
                jw_band(bands, similarity(a, b))
            }
            Self::EditDistance { max } => {
                if a.text == b.text {
                    return 0;
                }
                if a.ascii && b.ascii {
                    osa_within(a.text.as_bytes(), b.text.as_bytes(), usize::from(*max))
                } else {
                    osa_within(&a.chars, &b.chars, usize::from(*max))
                }
                .map_or(last, |d| d as u8)
            }
            Self::Date => date_level(&a.digits(), &b.digits()),
            Self::Number { bands } => match (a.number, b.number) {
                (Some(x), Some(y)) => {
                    let diff = (x - y).abs();
                    bands
                        .iter()
                        .position(|band| diff <= *band)
                        .map_or(last, |i| i as u8)
                }
                _ => last,
            },
        }
    }
}

/// Jaro-Winkler similarity of two values (over bytes when both are ASCII: the same answer,
/// a quarter of the memory to scan).
pub fn similarity(a: &Value, b: &Value) -> f64 {
    if a.ascii && b.ascii {
        jaro_winkler(a.text.as_bytes(), b.text.as_bytes())
    } else {
        jaro_winkler(&a.chars, &b.chars)
    }
}

/// The level of a Jaro-Winkler comparison of two different values with similarity `sim`.
fn jw_band(bands: &[f64], sim: f64) -> u8 {
    bands
        .iter()
        .position(|band| sim >= *band)
        .map_or(bands.len() as u8 + 1, |i| i as u8 + 1)
}

impl Comparator {
    /// The level of `a` and `b` when their Jaro-Winkler similarity `sim` is already known
    /// (used when it was computed to decide a swap); other comparators ignore `sim`.
    pub fn level_knowing_similarity(&self, a: &Value, b: &Value, sim: f64) -> u8 {
        match self {
            Self::JaroWinkler { bands } if a.text != b.text => jw_band(bands, sim),
            _ => self.level(a, b),
        }
    }
}

fn date_level(a: &[char], b: &[char]) -> u8 {
    if a == b {
        return 0;
    }
    if a.len() != 8 || b.len() != 8 {
        return 3;
    }
    let swapped = a[..4] == b[..4] && a[4..6] == b[6..8] && a[6..8] == b[4..6];
    if swapped || osa_within(a, b, 1).is_some() {
        1
    } else if a[..4] == b[..4] {
        2
    } else {
        3
    }
}

/// One field's value, prepared once so comparisons allocate nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The standardised text.
    pub text: Box<str>,
    /// Its characters.
    pub chars: Box<[char]>,
    /// The text read as a number, when it is one.
    pub number: Option<f64>,
    /// Whether the text is all ASCII (compared byte by byte).
    pub ascii: bool,
}

impl Value {
    /// Prepares `text`; `None` when it is empty.
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        Some(Self {
            text: text.into(),
            chars: text.chars().collect(),
            number: text.parse().ok(),
            ascii: text.is_ascii(),
        })
    }

    /// The digits of the value (borrowed when it is all digits, as standardised dates are).
    fn digits(&self) -> Cow<'_, [char]> {
        if self.chars.iter().all(char::is_ascii_digit) {
            Cow::Borrowed(&self.chars)
        } else {
            Cow::Owned(
                self.chars
                    .iter()
                    .copied()
                    .filter(char::is_ascii_digit)
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(c: &Comparator, a: &str, b: &str) -> u8 {
        c.level(&Value::new(a).unwrap(), &Value::new(b).unwrap())
    }

    #[test]
    fn levels_of_each_comparator() {
        assert_eq!(level(&Comparator::Exact, "qld", "qld"), 0);
        assert_eq!(level(&Comparator::Exact, "qld", "nsw"), 1);

        let jw = Comparator::JaroWinkler {
            bands: vec![0.92, 0.8],
        };
        assert_eq!(jw.levels(), 4);
        assert_eq!(level(&jw, "imgraben", "imgraben"), 0);
        assert_eq!(level(&jw, "imgraben", "imgrabem"), 1);
        assert_eq!(level(&jw, "coleman", "colemxyz"), 2);
        assert_eq!(level(&jw, "coleman", "rees"), 3);

        let ed = Comparator::EditDistance { max: 1 };
        assert_eq!(level(&ed, "7528902", "7528902"), 0);
        assert_eq!(level(&ed, "7528902", "7529802"), 1);
        assert_eq!(level(&ed, "7528902", "7000000"), 2);

        assert_eq!(level(&Comparator::Date, "19860810", "19860810"), 0);
        assert_eq!(level(&Comparator::Date, "19860810", "19861008"), 1);
        assert_eq!(level(&Comparator::Date, "19860810", "19860811"), 1);
        assert_eq!(level(&Comparator::Date, "1986-08-10", "19860810"), 0);
        assert_eq!(level(&Comparator::Date, "19860810", "19860322"), 2);
        assert_eq!(level(&Comparator::Date, "19860810", "19570322"), 3);

        let n = Comparator::Number {
            bands: vec![0.0, 5.0],
        };
        assert_eq!(level(&n, "100", "100"), 0);
        assert_eq!(level(&n, "100", "104.5"), 1);
        assert_eq!(level(&n, "100", "110"), 2);
        assert_eq!(level(&n, "100", "abc"), 2);
    }

    #[test]
    fn empty_values_are_missing() {
        assert_eq!(Value::new("  "), None);
    }
}
