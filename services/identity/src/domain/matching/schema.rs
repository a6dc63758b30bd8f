//! What a record is made of for matching: its fields, how each is compared, which two fields
//! may be swapped (given name and surname typed the wrong way round), and its blocking keys.

use serde::{Deserialize, Serialize};

use super::compare::{similarity, Comparator, Value, MISSING};
pub use super::keys::BlockingKey;
pub use super::record::Record;

/// Most fields a schema may have: a comparison pattern packs one 8-bit level per field into
/// 128 bits (`fellegi_sunter`).
pub const MAX_FIELDS: usize = 16;

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

impl Schema {
    /// Index of the field named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Checks that every field named by the swap and the blocking keys exists, and that
    /// comparators are well formed.
    pub fn validate(&self) -> Result<(), String> {
        if self.fields.is_empty() || self.fields.len() > MAX_FIELDS {
            return Err(format!(
                "a matching schema has 1 to {MAX_FIELDS} fields, not {}",
                self.fields.len()
            ));
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

    /// A comparer of records under this schema (field lookups done once).
    pub fn comparer(&self) -> Comparer<'_> {
        let swap = self
            .swappable
            .as_ref()
            .and_then(|(a, b)| Some((self.index(a)?, self.index(b)?)));
        Comparer { schema: self, swap }
    }

    /// The comparison pattern of `a` and `b`; see [`Comparer::compare`].
    pub fn compare(&self, a: &Record, b: &Record, out: &mut [u8]) {
        self.comparer().compare(a, b, out);
    }
}

/// Compares records under a schema.
#[derive(Debug, Clone, Copy)]
pub struct Comparer<'s> {
    schema: &'s Schema,
    swap: Option<(usize, usize)>,
}

impl Comparer<'_> {
    /// Writes the comparison pattern of `a` and `b` (one level per field, [`MISSING`] where
    /// either lacks the value) into `out`, which has one slot per field.
    pub fn compare(&self, a: &Record, b: &Record, out: &mut [u8]) {
        for (i, field) in self.schema.fields.iter().enumerate() {
            if matches!(self.swap, Some((x, y)) if i == x || i == y) {
                continue;
            }
            out[i] = match (&a.values[i], &b.values[i]) {
                (Some(va), Some(vb)) => field.comparator.level(va, vb),
                _ => MISSING,
            };
        }
        if let Some((x, y)) = self.swap {
            self.compare_swappable(a, b, x, y, out);
        }
    }

    /// Compares fields `x` and `y`, crossed (`x` of `a` with `y` of `b` and the other way)
    /// when that agrees better by Jaro-Winkler than straight, all four values present and
    /// neither straight comparison exact.
    fn compare_swappable(&self, a: &Record, b: &Record, x: usize, y: usize, out: &mut [u8]) {
        let sim = |p: &Option<Value>, q: &Option<Value>| match (p, q) {
            (Some(p), Some(q)) if p.text == q.text => Some(1.0),
            (Some(p), Some(q)) => Some(similarity(p, q)),
            _ => None,
        };
        let (sx, sy) = (
            sim(&a.values[x], &b.values[x]),
            sim(&a.values[y], &b.values[y]),
        );
        let (mut bx, mut by, mut simx, mut simy) = (x, y, sx, sy);
        if let (Some(sx), Some(sy)) = (sx, sy) {
            if sx < 1.0 && sy < 1.0 {
                if let (Some(xy), Some(yx)) = (
                    sim(&a.values[x], &b.values[y]),
                    sim(&a.values[y], &b.values[x]),
                ) {
                    if xy + yx > sx + sy {
                        (bx, by, simx, simy) = (y, x, Some(xy), Some(yx));
                    }
                }
            }
        }
        let fields = &self.schema.fields;
        out[x] = match (&a.values[x], &b.values[bx], simx) {
            (Some(p), Some(q), Some(s)) => fields[x].comparator.level_knowing_similarity(p, q, s),
            _ => MISSING,
        };
        out[y] = match (&a.values[y], &b.values[by], simy) {
            (Some(p), Some(q), Some(s)) => fields[y].comparator.level_knowing_similarity(p, q, s),
            _ => MISSING,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matching::blocking::KeyPart;

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
