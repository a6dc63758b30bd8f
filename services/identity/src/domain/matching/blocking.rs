//! Blocking: instead of comparing every pair of records, compare only records that share the
//! value of at least one blocking key. Several keys on different fields keep recall high when
//! any single field is mistyped.

use std::collections::HashMap;

pub use super::keys::{BlockingKey, KeyPart, Transform};
use super::schema::{Record, Schema};

/// Candidate pairs of a set of records, each `(i, j)` with `i < j`, sorted and without
/// repeats; blocks larger than `max_block` are skipped (and counted), because a key shared by
/// thousands of records (a placeholder value) says nothing and would swamp the comparison.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// The pairs.
    pub pairs: Vec<(u32, u32)>,
    /// Blocks skipped for their size.
    pub skipped_blocks: usize,
    /// Records in the skipped blocks, counted once per block.
    pub skipped_records: usize,
}

/// Builds the candidate pairs of `records` under `schema`'s blocking keys.
pub fn candidate_pairs(schema: &Schema, records: &[Record], max_block: usize) -> Candidates {
    let mut out = Candidates::default();
    let mut packed: Vec<u64> = Vec::new();
    for key in &schema.blocking {
        let Some(indices) = key
            .parts
            .iter()
            .map(|p| schema.index(&p.field))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let mut blocks: HashMap<String, Vec<u32>> = HashMap::new();
        for (n, record) in records.iter().enumerate() {
            if let Some(k) = key.key_of(record, &indices) {
                blocks.entry(k).or_default().push(n as u32);
            }
        }
        for members in blocks.values() {
            if members.len() > max_block {
                out.skipped_blocks += 1;
                out.skipped_records += members.len();
                continue;
            }
            for (x, &i) in members.iter().enumerate() {
                for &j in &members[x + 1..] {
                    packed.push((u64::from(i) << 32) | u64::from(j));
                }
            }
        }
    }
    packed.sort_unstable();
    packed.dedup();
    out.pairs = packed
        .into_iter()
        .map(|p| ((p >> 32) as u32, p as u32))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matching::compare::{Comparator, Value};
    use crate::domain::matching::schema::Field;

    fn schema(fields: &[&str], keys: Vec<BlockingKey>) -> Schema {
        Schema {
            fields: fields
                .iter()
                .map(|n| Field {
                    name: (*n).into(),
                    comparator: Comparator::Exact,
                })
                .collect(),
            swappable: None,
            blocking: keys,
        }
    }

    fn rec(values: &[&str]) -> Record {
        Record {
            values: values.iter().map(|v| Value::new(v)).collect(),
        }
    }

    #[test]
    fn pairs_share_a_key_and_are_not_repeated() {
        let s = schema(
            &["given", "surname"],
            vec![
                BlockingKey {
                    parts: vec![KeyPart::whole("surname")],
                    unordered: false,
                },
                BlockingKey {
                    parts: vec![
                        KeyPart::new("given", Transform::Soundex),
                        KeyPart::new("surname", Transform::Soundex),
                    ],
                    unordered: true,
                },
            ],
        );
        let records = [
            rec(&["sophie", "snell"]),
            rec(&["snell", "sophie"]), // swapped: shares the unordered soundex key
            rec(&["sophie", "snell"]), // shares both keys with 0
            rec(&["bob", ""]),         // no surname: no key at all
        ];
        let c = candidate_pairs(&s, &records, 100);
        assert_eq!(c.pairs, vec![(0, 1), (0, 2), (1, 2)]);
        // The soundex block holds three records: skipped; the surname block of two stays.
        let c = candidate_pairs(&s, &records, 2);
        assert_eq!(c.pairs, vec![(0, 2)]);
        assert_eq!((c.skipped_blocks, c.skipped_records), (1, 3));
    }

    #[test]
    fn prefix_keys() {
        let key = BlockingKey {
            parts: vec![
                KeyPart::whole("postcode"),
                KeyPart::new("dob", Transform::Prefix(4)),
            ],
            unordered: false,
        };
        let r = rec(&["2161", "19860810"]);
        assert_eq!(key.key_of(&r, &[0, 1]).unwrap(), "2161\u{1f}1986");
    }
}
