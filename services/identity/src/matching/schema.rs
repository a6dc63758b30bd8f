//! What a record is made of for matching: its fields, how each is compared, which two fields
//! may be swapped (given name and surname typed the wrong way round), and its blocking keys.

use serde::{Deserialize, Serialize};

use super::blocking::BlockingKey;
use super::compare::{Comparator, Value, MISSING};
use super::similarity::jaro_winkler;

/// One compared field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Field name, as in records and explanations.
    pub name: String,
    /// How two values are compared.
    pub comparator: Comparator,
}

/// The matching schema of a kind of record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Compared fields, in record order.
    pub fields: Vec<Field>,
    /// Two fields (by name) that are compared crossed when that agrees better, both present.
    #[serde(default)]
    pub swappable: Option<(String, String)>,
    /// Blocking keys: two records are compared when they share the value of any key.
    pub blocking: Vec<BlockingKey>,
}

/// A record ready for matching: one optional value per schema field.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Values in schema field order; `None` when missing.
    pub values: Vec<Option<Value>>,
}

impl Schema {
    /// Index of the field named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Checks that every field named by the swap and the blocking keys exists, and that
    /// comparators are well formed.
    pub fn validate(&self) -> Result<(), String> {
        if self.fields.is_empty() {
            return Err("a matching schema needs at least one field".into());
        }
        for f in &self.fields {
            match &f.comparator {
                Comparator::JaroWinkler { bands } | Comparator::Number { bands }
                    if bands.len() > 8 =>
                {
                    return Err(format!("field {}: at most 8 bands", f.name));
                }
                Comparator::EditDistance { max } if *max > 8 => {
                    return Err(format!("field {}: max edit distance is 8", f.name));
                }
                _ => {}
            }
        }
        if let Some((a, b)) = &self.swappable {
            for name in [a, b] {
                if self.index(name).is_none() {
                    return Err(format!("swappable names unknown field {name}"));
                }
            }
        }
        if self.blocking.is_empty() {
            return Err("a matching schema needs at least one blocking key".into());
        }
        for key in &self.blocking {
            for part in &key.parts {
                if self.index(&part.field).is_none() {
                    return Err(format!("blocking key names unknown field {}", part.field));
                }
            }
        }
        Ok(())
    }

    /// Writes the comparison pattern of `a` and `b` (one level per field, [`MISSING`] where
    /// either lacks the value) into `out`, which has one slot per field.
    pub fn compare(&self, a: &Record, b: &Record, out: &mut [u8]) {
        let swap = self.swap_indices().filter(|&(x, y)| crossed_is_better(a, b, x, y));
        for (i, field) in self.fields.iter().enumerate() {
            let j = match swap {
                Some((x, y)) if i == x => y,
                Some((x, y)) if i == y => x,
                _ => i,
            };
            out[i] = match (&a.values[i], &b.values[j]) {
                (Some(va), Some(vb)) => field.comparator.level(va, vb),
                _ => MISSING,
            };
        }
    }

    fn swap_indices(&self) -> Option<(usize, usize)> {
        let (a, b) = self.swappable.as_ref()?;
        Some((self.index(a)?, self.index(b)?))
    }
}

/// Whether comparing field `x` of `a` with field `y` of `b` (and `y` with `x`) agrees better
/// than comparing them straight.
fn crossed_is_better(a: &Record, b: &Record, x: usize, y: usize) -> bool {
    let (Some(ax), Some(ay), Some(bx), Some(by)) =
        (&a.values[x], &a.values[y], &b.values[x], &b.values[y])
    else {
        return false;
    };
    if ax.text == bx.text || ay.text == by.text {
        return false;
    }
    let straight = jaro_winkler(&ax.chars, &bx.chars) + jaro_winkler(&ay.chars, &by.chars);
    let crossed = jaro_winkler(&ax.chars, &by.chars) + jaro_winkler(&ay.chars, &bx.chars);
    crossed > straight
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::blocking::KeyPart;

    fn schema() -> Schema {
        let jw = Comparator::JaroWinkler { bands: vec![0.9] };
        Schema {
            fields: vec![
                Field {
                    name: "given".into(),
                    comparator: jw.clone(),
                },
                Field {
                    name: "surname".into(),
                    comparator: jw,
                },
                Field {
                    name: "state".into(),
                    comparator: Comparator::Exact,
                },
            ],
            swappable: Some(("given".into(), "surname".into())),
            blocking: vec![BlockingKey {
                parts: vec![KeyPart::whole("surname")],
                unordered: false,
            }],
        }
    }

    fn record(values: &[&str]) -> Record {
        Record {
            values: values.iter().map(|v| Value::new(v)).collect(),
        }
    }

    #[test]
    fn swapped_names_compare_crossed() {
        let s = schema();
        s.validate().unwrap();
        let mut out = [0u8; 3];
        s.compare(
            &record(&["snell", "sophie", "tas"]),
            &record(&["sophie", "snekl", ""]),
            &mut out,
        );
        assert_eq!(out, [1, 0, MISSING]);
        s.compare(
            &record(&["ana", "rees", "qld"]),
            &record(&["ana", "reese", "nsw"]),
            &mut out,
        );
        assert_eq!(out, [0, 1, 1]);
    }

    #[test]
    fn validation_names_the_unknown_field() {
        let mut s = schema();
        s.blocking[0].parts[0].field = "nope".into();
        assert_eq!(
            s.validate().unwrap_err(),
            "blocking key names unknown field nope"
        );
    }
}
