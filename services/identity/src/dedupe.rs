//! `crm-identity dedupe`: person records from a CSV file, deduplicated with the service's own
//! matching code, written as `record_id,cluster_id`.
//!
//! The input has a header row; the first column is an opaque record id (never used for
//! matching); columns named like the person fields ([`FIELDS`]) are matched, others ignored,
//! and `column=field` mappings name the field of a differently named column.

use std::collections::HashMap;
use std::io::{Read, Write};

use anyhow::{bail, Context};

use crate::domain::matching::person;
use crate::domain::matching::person::FIELDS;
use crate::domain::matching::schema::Record;

/// Records read from a CSV file.
#[derive(Debug, Clone)]
pub struct Input {
    /// Record ids, in file order.
    pub ids: Vec<String>,
    /// Prepared records, in file order.
    pub records: Vec<Record>,
    /// Which person fields were found, by column name.
    pub columns: Vec<(String, &'static str)>,
    /// Person fields no column provided (missing in every record).
    pub absent: Vec<&'static str>,
}

/// Parses a `--map column=field` argument.
pub fn parse_mapping(arg: &str) -> Result<(String, String), String> {
    let (column, field) = arg
        .split_once('=')
        .ok_or_else(|| format!("--map takes column=field, got {arg:?}"))?;
    if !FIELDS.contains(&field.trim()) {
        return Err(format!(
            "--map {arg}: unknown field {:?}; fields are {}",
            field.trim(),
            FIELDS.join(", ")
        ));
    }
    Ok((column.trim().to_owned(), field.trim().to_owned()))
}

/// Reads person records from CSV. `mappings` are `(column, field)` pairs from `--map`.
pub fn read_records(input: impl Read, mappings: &[(String, String)]) -> anyhow::Result<Input> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input);
    let headers = reader.headers().context("reading the header row")?.clone();
    if headers.len() < 2 {
        bail!("the input needs a header row with a record id column and at least one field");
    }
    let renamed: HashMap<&str, &str> = mappings
        .iter()
        .map(|(c, f)| (c.as_str(), f.as_str()))
        .collect();
    for (column, _) in mappings {
        if !headers.iter().skip(1).any(|h| h.trim() == column) {
            bail!("--map names column {column:?}, which the header row does not have");
        }
    }
    let mut slot: [Option<usize>; 10] = [None; 10];
    let mut columns = Vec::new();
    for (c, header) in headers.iter().enumerate().skip(1) {
        let header = header.trim();
        let field = renamed.get(header).copied().unwrap_or(header);
        if let Some(f) = FIELDS.iter().position(|name| *name == field) {
            if slot[f].is_some() {
                bail!("two columns map to field {field}");
            }
            slot[f] = Some(c);
            columns.push((header.to_owned(), FIELDS[f]));
        }
    }
    let absent: Vec<&'static str> = FIELDS
        .iter()
        .zip(&slot)
        .filter(|(_, s)| s.is_none())
        .map(|(f, _)| *f)
        .collect();
    if absent.len() == FIELDS.len() {
        bail!(
            "no column names a person field; expected some of {} (or --map column=field)",
            FIELDS.join(", ")
        );
    }
    let (mut ids, mut records) = (Vec::new(), Vec::new());
    for row in reader.records() {
        let row = row.context("reading a record")?;
        let line = row.position().map_or(0, |p| p.line());
        let id = row.get(0).unwrap_or("").trim();
        if id.is_empty() {
            bail!("line {line}: the record id (first column) is empty");
        }
        let raw: [Option<&str>; 10] = slot.map(|c| c.and_then(|c| row.get(c)));
        ids.push(id.to_owned());
        records.push(person::record(&raw));
    }
    Ok(Input {
        ids,
        records,
        columns,
        absent,
    })
}

/// Writes `record_id,cluster_id`, one row per record in input order; a cluster's id is the
/// id of its first record.
pub fn write_clusters(output: impl Write, ids: &[String], labels: &[u32]) -> anyhow::Result<()> {
    let mut first: HashMap<u32, usize> = HashMap::new();
    for (i, &label) in labels.iter().enumerate() {
        first.entry(label).or_insert(i);
    }
    let mut writer = csv::Writer::from_writer(output);
    writer.write_record(["record_id", "cluster_id"])?;
    for (id, label) in ids.iter().zip(labels) {
        let cluster = first.get(label).map_or(id.as_str(), |&i| ids[i].as_str());
        writer.write_record([id.as_str(), cluster])?;
    }
    writer.flush()?;
    Ok(())
}

/// Reads labelled true pairs (a header row, then two record ids per row) as index pairs of
/// `ids`; ids not in `ids` are an error.
pub fn read_true_pairs(input: impl Read, ids: &[String]) -> anyhow::Result<Vec<(u32, u32)>> {
    let index: HashMap<&str, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    let mut reader = csv::Reader::from_reader(input);
    let mut pairs = Vec::new();
    for row in reader.records() {
        let row = row.context("reading a true pair")?;
        let find = |c: usize| -> anyhow::Result<u32> {
            let id = row.get(c).unwrap_or("").trim();
            index
                .get(id)
                .copied()
                .with_context(|| format!("true pair names unknown record {id:?}"))
        };
        pairs.push((find(0)?, find(1)?));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "\
id,first,surname,postcode,extra
a,ana,rees,2161,x
b,ana,rees,2161,y
c,bob,smith,3000,z
";

    #[test]
    fn reads_maps_and_writes() {
        let mapping = parse_mapping("first=given_name").unwrap();
        let input = read_records(CSV.as_bytes(), &[mapping]).unwrap();
        assert_eq!(input.ids, ["a", "b", "c"]);
        assert_eq!(
            input.columns,
            vec![
                ("first".to_owned(), "given_name"),
                ("surname".to_owned(), "surname"),
                ("postcode".to_owned(), "postcode"),
            ]
        );
        assert!(input.absent.contains(&"date_of_birth"));
        let mut out = Vec::new();
        write_clusters(&mut out, &input.ids, &[0, 0, 1]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "record_id,cluster_id\na,a\nb,a\nc,c\n"
        );
    }

    #[test]
    fn errors_say_what_to_fix() {
        assert!(parse_mapping("first").unwrap_err().contains("column=field"));
        assert!(parse_mapping("first=nick")
            .unwrap_err()
            .contains("unknown field"));
        let err = read_records(CSV.as_bytes(), &[("nope".into(), "surname".into())]);
        assert!(err.unwrap_err().to_string().contains("\"nope\""));
        let err = read_records("id,a,b\n1,2,3\n".as_bytes(), &[]).unwrap_err();
        assert!(err.to_string().contains("no column names a person field"));
        let err = read_records("id,surname\n,smith\n".as_bytes(), &[]).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = read_records("id,surname\na,smith,extra\n".as_bytes(), &[]).unwrap_err();
        assert!(format!("{err:#}").contains("record"), "{err:#}");
    }

    #[test]
    fn true_pairs_must_name_known_records() {
        let ids = vec!["a".to_owned(), "b".to_owned()];
        let pairs = read_true_pairs("x,y\nb,a\n".as_bytes(), &ids).unwrap();
        assert_eq!(pairs, vec![(1, 0)]);
        assert!(read_true_pairs("x,y\na,z\n".as_bytes(), &ids).is_err());
    }
}
