//! A generator of Febrl-like person records with controlled duplicates and corruptions, so that
//! the matcher can be measured at any size with its precision and recall known.
//!
//! It follows Febrl's data set generator (`dsgen`, Christen 2005): originals are drawn from
//! frequency tables; some originals get duplicates; each duplicate takes a few modifications,
//! each in one field. The tables here are built from syllables (so a million records still
//! have tens of thousands of surnames, with a skewed frequency as real names have), and the
//! modifications are Febrl's kinds:
//!
//! - a typing error: one character inserted, deleted, substituted by a neighbour on the
//!   keyboard, or two adjacent characters swapped;
//! - a phonetic variation (`ph`↔`f`, `c`↔`k`, `ie`↔`y`, a doubled letter single, …);
//! - a missing value;
//! - given name and surname swapped;
//! - day and month of the birth date swapped;
//! - a street type abbreviated or spelled out (`street`↔`st`).
//!
//! Every record is a row of Febrl's columns (`rec_id, given_name, surname, street_number,
//! address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id`). Ids are random
//! looking and say nothing of the truth, which is written apart: every pair of records of the
//! same person, as in Febrl's `*_true_pairs.csv`. Deterministic for a seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Febrl's columns, in order: the record id, then the person fields.
pub fn columns() -> impl Iterator<Item = &'static str> {
    std::iter::once("rec_id").chain(super::person::FIELDS)
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Records in all (originals and duplicates).
    pub records: usize,
    /// Share of originals that get duplicates (Febrl's examples use 0.2 to 0.5).
    pub duplicated_share: f64,
    /// Most duplicates of one original (each duplicated original gets 1 to this many).
    pub max_duplicates: usize,
    /// Most modifications of one duplicate (each gets 1 to this many).
    pub max_modifications: usize,
    /// The random seed.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            records: 10_000,
            duplicated_share: 0.2,
            max_duplicates: 3,
            max_modifications: 2,
            seed: 1,
        }
    }
}

/// Why options cannot be used.
pub fn problem(o: &Options) -> Option<String> {
    if o.records < 2 {
        return Some("records must be at least 2".into());
    }
    if !(0.0..=1.0).contains(&o.duplicated_share) {
        return Some("the duplicated share must be between 0 and 1".into());
    }
    if o.max_duplicates == 0 || o.max_modifications == 0 {
        return Some("max duplicates and max modifications must be at least 1".into());
    }
    None
}

/// One generated record: its id and Febrl's ten fields after it.
pub type Row = [String; 11];

const ONSETS: [&str; 24] = [
    "b", "br", "c", "ch", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "ph", "r", "s", "sh",
    "st", "t", "th", "v", "w", "z",
];
const VOWELS: [&str; 10] = ["a", "e", "i", "o", "u", "ai", "ea", "ie", "ou", "y"];
const CODAS: [&str; 14] = [
    "", "", "n", "r", "l", "s", "th", "ck", "rd", "nn", "ll", "tt", "m", "ng",
];
const STREET_TYPES: [(&str, &str); 8] = [
    ("street", "st"),
    ("road", "rd"),
    ("avenue", "ave"),
    ("crescent", "cres"),
    ("place", "pl"),
    ("drive", "dr"),
    ("court", "ct"),
    ("circuit", "cct"),
];
const STATES: [&str; 8] = ["nsw", "vic", "qld", "wa", "sa", "tas", "act", "nt"];
const BUILDINGS: [&str; 6] = ["villa", "house", "lodge", "park", "gardens", "court"];

/// A word of `syllables` syllables.
fn word(rng: &mut StdRng, syllables: usize) -> String {
    let mut w = String::new();
    for _ in 0..syllables {
        w.push_str(ONSETS[rng.random_range(0..ONSETS.len())]);
        w.push_str(VOWELS[rng.random_range(0..VOWELS.len())]);
    }
    w.push_str(CODAS[rng.random_range(0..CODAS.len())]);
    w
}

/// A table of `n` distinct words, drawn with a skew: the k-th is about `1/(k+1)^0.6` as
/// frequent as the first (names are skewed, but a million people still share few exact
/// name pairs).
struct Table {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Table {
    fn new(rng: &mut StdRng, n: usize, syllables: std::ops::RangeInclusive<usize>) -> Self {
        let mut seen = std::collections::HashSet::new();
        let mut words = Vec::with_capacity(n);
        while words.len() < n {
            let s = rng.random_range(syllables.clone());
            let w = word(rng, s);
            if w.len() >= 3 && seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|k| {
                total += 1.0 / ((k + 1) as f64).powf(0.6);
                total
            })
            .collect();
        Self { words, cumulative }
    }

    fn draw(&self, rng: &mut StdRng) -> &str {
        let last = self.cumulative.last().copied().unwrap_or(1.0);
        let x = rng.random_range(0.0..last);
        let i = self.cumulative.partition_point(|c| *c < x);
        &self.words[i.min(self.words.len() - 1)]
    }
}

/// The frequency tables of a run.
struct Tables {
    given: Table,
    surnames: Table,
    streets: Table,
    /// Suburb, its postcode and state.
    suburbs: Vec<(String, String, &'static str)>,
}

impl Tables {
    fn new(rng: &mut StdRng, records: usize) -> Self {
        let scale =
            |per_million: usize, least: usize| (records * per_million / 1_000_000).max(least);
        let suburbs = (0..scale(4_000, 200))
            .map(|i| {
                let state = STATES[i % STATES.len()];
                (word(rng, 2), format!("{:04}", 2000 + (i * 7) % 7000), state)
            })
            .collect();
        Self {
            given: Table::new(rng, scale(3_000, 300), 1..=3),
            surnames: Table::new(rng, scale(80_000, 1_000), 2..=3),
            streets: Table::new(rng, scale(8_000, 500), 1..=3),
            suburbs,
        }
    }

    fn original(&self, rng: &mut StdRng, ssn: u64) -> [String; 10] {
        let (suburb, postcode, state) = &self.suburbs[rng.random_range(0..self.suburbs.len())];
        let (street_type, _) = STREET_TYPES[rng.random_range(0..STREET_TYPES.len())];
        let address_2 = if rng.random_bool(0.35) {
            format!(
                "{} {}",
                word(rng, 2),
                BUILDINGS[rng.random_range(0..BUILDINGS.len())]
            )
        } else {
            String::new()
        };
        let year = rng.random_range(1925..2008);
        let month = rng.random_range(1..=12);
        let day = rng.random_range(1..=28);
        [
            self.given.draw(rng).to_owned(),
            self.surnames.draw(rng).to_owned(),
            rng.random_range(1..400).to_string(),
            format!("{} {street_type}", self.streets.draw(rng)),
            address_2,
            suburb.clone(),
            postcode.clone(),
            (*state).to_owned(),
            format!("{year:04}{month:02}{day:02}"),
            format!("{ssn:07}"),
        ]
    }
}

/// Keys next to each other on a QWERTY keyboard, for substitutions.
fn neighbour(c: char, rng: &mut StdRng) -> char {
    const ROWS: [&str; 4] = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"];
    for row in ROWS {
        if let Some(i) = row.find(c) {
            let bytes = row.as_bytes();
            let left = i.checked_sub(1).map(|j| bytes[j] as char);
            let right = bytes.get(i + 1).map(|b| *b as char);
            return match (left, right) {
                (Some(l), Some(r)) => {
                    if rng.random_bool(0.5) {
                        l
                    } else {
                        r
                    }
                }
                (Some(l), None) => l,
                (None, Some(r)) => r,
                (None, None) => c,
            };
        }
    }
    c
}

/// One typing error in `value` (unchanged when empty).
fn typo(value: &str, rng: &mut StdRng) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    let i = rng.random_range(0..chars.len());
    match rng.random_range(0..4) {
        0 => {
            let c = chars[i];
            chars.insert(i, neighbour(c, rng));
        }
        1 if chars.len() > 2 => {
            chars.remove(i);
        }
        2 if i + 1 < chars.len() => chars.swap(i, i + 1),
        _ => chars[i] = neighbour(chars[i], rng),
    }
    chars.into_iter().collect()
}

/// A phonetic variation of `value`, or a typing error when none applies.
fn phonetic(value: &str, rng: &mut StdRng) -> String {
    const RULES: [(&str, &str); 10] = [
        ("ph", "f"),
        ("f", "ph"),
        ("ck", "k"),
        ("c", "k"),
        ("ie", "y"),
        ("y", "ie"),
        ("th", "t"),
        ("ll", "l"),
        ("nn", "n"),
        ("tt", "t"),
    ];
    let start = rng.random_range(0..RULES.len());
    for k in 0..RULES.len() {
        let (from, to) = RULES[(start + k) % RULES.len()];
        if let Some(i) = value.find(from) {
            return format!("{}{to}{}", &value[..i], &value[i + from.len()..]);
        }
    }
    typo(value, rng)
}

/// The fields (index into the ten after the id) a modification may touch.
const FIELDS: usize = 10;

/// One modification of `fields`, in place.
fn modify(fields: &mut [String; 10], rng: &mut StdRng) {
    match rng.random_range(0..100) {
        // Names and address lines: typing errors and phonetic variations.
        0..=29 => {
            let f = [0, 1, 3, 5][rng.random_range(0..4)];
            fields[f] = typo(&fields[f], rng);
        }
        30..=44 => {
            let f = [0, 1, 5][rng.random_range(0..3)];
            fields[f] = phonetic(&fields[f], rng);
        }
        // Numbers and codes: typing errors.
        45..=59 => {
            let f = [2, 6, 8, 9][rng.random_range(0..4)];
            fields[f] = typo(&fields[f], rng);
        }
        // A missing value (never both names, so a person stays nameable).
        60..=74 => {
            let f = rng.random_range(2..FIELDS);
            fields[f] = String::new();
        }
        75..=79 => {
            let f = rng.random_range(0..2);
            fields[f] = String::new();
        }
        80..=86 => fields.swap(0, 1),
        87..=92 => {
            let d = &fields[8];
            if d.len() == 8 {
                fields[8] = format!("{}{}{}", &d[..4], &d[6..8], &d[4..6]);
            }
        }
        _ => {
            let a = &fields[3];
            for (long, short) in STREET_TYPES {
                if let Some(stem) = a.strip_suffix(long) {
                    fields[3] = format!("{stem}{short}");
                    return;
                }
                if let Some(stem) = a.strip_suffix(short) {
                    fields[3] = format!("{stem}{long}");
                    return;
                }
            }
            fields[3] = typo(a, rng);
        }
    }
}

/// Record `i`'s id: a bijection of `i` onto 48 bits, so ids never collide and tell nothing.
fn record_id(i: u64) -> String {
    const ODD: u64 = 0x9E37_79B9_7F4A_7C15;
    format!("r{:012x}", i.wrapping_mul(ODD) & 0xffff_ffff_ffff)
}

/// Generates `options.records` records, handing each to `row` and each true pair (two record
/// ids of one person) to `pair`, in generation order: an original, then its duplicates.
pub fn generate(
    options: &Options,
    mut row: impl FnMut(Row) -> std::io::Result<()>,
    mut pair: impl FnMut(&str, &str) -> std::io::Result<()>,
) -> std::io::Result<Summary> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let tables = Tables::new(&mut rng, options.records);
    let mut summary = Summary::default();
    let mut next = 0u64;
    let mut ssn = 1_000_000u64;
    while (next as usize) < options.records {
        ssn += rng.random_range(1..7);
        let original = tables.original(&mut rng, ssn);
        let left = options.records - next as usize - 1;
        let copies = if left > 0 && rng.random_bool(options.duplicated_share) {
            rng.random_range(1..=options.max_duplicates).min(left)
        } else {
            0
        };
        let mut ids = vec![record_id(next)];
        next += 1;
        row(with_id(&ids[0], &original))?;
        summary.originals += 1;
        for _ in 0..copies {
            let mut fields = original.clone();
            for _ in 0..rng.random_range(1..=options.max_modifications) {
                modify(&mut fields, &mut rng);
                summary.modifications += 1;
            }
            let id = record_id(next);
            next += 1;
            row(with_id(&id, &fields))?;
            summary.duplicates += 1;
            for other in &ids {
                pair(other, &id)?;
                summary.true_pairs += 1;
            }
            ids.push(id);
        }
    }
    Ok(summary)
}

fn with_id(id: &str, fields: &[String; 10]) -> Row {
    let mut out: Row = Default::default();
    out[0] = id.to_owned();
    out[1..].clone_from_slice(fields);
    out
}

/// What a run generated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Originals written.
    pub originals: u64,
    /// Duplicates written.
    pub duplicates: u64,
    /// Modifications made to duplicates.
    pub modifications: u64,
    /// Pairs of records of one person.
    pub true_pairs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(o: &Options) -> (Vec<Row>, Vec<(String, String)>, Summary) {
        let (mut rows, mut pairs) = (Vec::new(), Vec::new());
        let s = generate(
            o,
            |r| {
                rows.push(r);
                Ok(())
            },
            |a, b| {
                pairs.push((a.to_owned(), b.to_owned()));
                Ok(())
            },
        )
        .unwrap();
        (rows, pairs, s)
    }

    #[test]
    fn the_count_the_truth_and_the_seed_hold() {
        let o = Options {
            records: 5_000,
            ..Options::default()
        };
        let (rows, pairs, s) = run(&o);
        assert_eq!(rows.len(), 5_000);
        assert_eq!((s.originals + s.duplicates) as usize, rows.len());
        assert_eq!(pairs.len() as u64, s.true_pairs);
        // About a fifth of originals duplicated, two copies each on average.
        let share = s.duplicates as f64 / s.originals as f64;
        assert!((0.3..0.5).contains(&share), "{share}");
        let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(ids.len(), rows.len(), "ids are unique");
        assert!(pairs
            .iter()
            .all(|(a, b)| ids.contains(a.as_str()) && ids.contains(b.as_str())));
        // Records of one person differ in a few fields at most: a modification changes one
        // field (two for swapped names), and a pair may be two duplicates.
        let by_id: std::collections::HashMap<&str, &Row> =
            rows.iter().map(|r| (r[0].as_str(), r)).collect();
        for (a, b) in pairs.iter().take(500) {
            let (x, y) = (by_id[a.as_str()], by_id[b.as_str()]);
            let differing = (1..11).filter(|i| x[*i] != y[*i]).count();
            assert!(differing <= 4 * o.max_modifications, "{x:?} {y:?}");
        }
        // The same seed gives the same file; another seed another.
        assert_eq!(run(&o).0, rows);
        assert_ne!(run(&Options { seed: 2, ..o }).0, rows);
    }

    #[test]
    fn modifications_are_the_kinds_febrl_makes() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let t = typo("stevens", &mut rng);
            let d = strsim::damerau_levenshtein("stevens", &t);
            assert!(d <= 1, "{t}");
        }
        assert_eq!(phonetic("philips", &mut StdRng::seed_from_u64(0)), "filips");
        let mut f: [String; 10] = Default::default();
        f[8] = "19860810".into();
        f[3] = "wade street".into();
        let mut seen_swap = false;
        for seed in 0..400 {
            let mut g = f.clone();
            modify(&mut g, &mut StdRng::seed_from_u64(seed));
            seen_swap |= g[8] == "19861008";
            if g[3] == "wade st" {
                assert_eq!(g[8], f[8]);
            }
        }
        assert!(seen_swap, "day and month swapped at least once in 400");
    }
}
