//! Reading an import file into identify events, row by row: CSV with a header row, or NDJSON
//! (one JSON object a line). A row's columns `user_id`, `anonymous_id`, `email`, `phone` and
//! `handle_<network>` are its identity, `occurred_at` its time, everything else its traits.
//! A row that cannot be read is reported with its number and the reason; the others go on.
//!
//! Event ids come from the row's content, so importing the same file again (or the same row in
//! another file) is deduplicated like any redelivered event: it creates nothing new.

use chrono::{DateTime, Utc};
use crm_envelope::{Envelope, Handle, Identity, Pii, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Comma-separated, header row first.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl Format {
    /// Parses `csv` or `ndjson`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            _ => None,
        }
    }
}

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// 1-based data row number (the CSV header is not counted).
    pub row: u64,
    /// Stable code: `malformed_row`, `invalid_json`, `no_identifier`, `invalid_time`.
    pub code: String,
    /// What to fix.
    pub detail: String,
}

/// One row: its event, or why it has none.
pub type Row = Result<Envelope, RowError>;

fn row_error(row: u64, code: &str, detail: impl Into<String>) -> RowError {
    RowError {
        row,
        code: code.to_owned(),
        detail: detail.into(),
    }
}

/// Reads every row of `text`.
pub fn read(tenant: &TenantId, format: Format, text: &str) -> Vec<Row> {
    match format {
        Format::Csv => read_csv(tenant, text),
        Format::Ndjson => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(n, line)| {
                let row = n as u64 + 1;
                match serde_json::from_str::<Value>(line) {
                    Ok(Value::Object(fields)) => event_of(tenant, row, fields),
                    Ok(_) => Err(row_error(
                        row,
                        "invalid_json",
                        "a line must be a JSON object",
                    )),
                    Err(e) => Err(row_error(row, "invalid_json", e.to_string())),
                }
            })
            .collect(),
    }
}

fn read_csv(tenant: &TenantId, text: &str) -> Vec<Row> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|h| h.trim().to_owned()).collect(),
        Err(e) => {
            return vec![Err(row_error(
                0,
                "malformed_row",
                format!("header row: {e}"),
            ))]
        }
    };
    reader
        .records()
        .enumerate()
        .map(|(n, record)| {
            let row = n as u64 + 1;
            let record = record.map_err(|e| row_error(row, "malformed_row", e.to_string()))?;
            if record.len() != headers.len() {
                return Err(row_error(
                    row,
                    "malformed_row",
                    format!(
                        "{} fields where the header has {}",
                        record.len(),
                        headers.len()
                    ),
                ));
            }
            let fields: Map<String, Value> = headers
                .iter()
                .zip(record.iter())
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(h, v)| (h.clone(), Value::String(v.trim().to_owned())))
                .collect();
            event_of(tenant, row, fields)
        })
        .collect()
}

/// The identify event of one row's fields.
fn event_of(tenant: &TenantId, row: u64, mut fields: Map<String, Value>) -> Row {
    let id = content_id(&fields);
    let mut take = |key: &str| match fields.remove(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut identity = Identity {
        user_id: take("user_id"),
        anonymous_id: take("anonymous_id"),
        email: take("email").map(Pii::new),
        phone: take("phone").map(Pii::new),
        handles: Vec::new(),
    };
    let occurred_at = match take("occurred_at") {
        None => None,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(&t)
                .map_err(|_| {
                    row_error(
                        row,
                        "invalid_time",
                        format!("occurred_at {t:?} is not RFC 3339"),
                    )
                })?
                .with_timezone(&Utc),
        ),
    };
    let handle_keys: Vec<String> = fields
        .keys()
        .filter(|k| k.starts_with("handle_"))
        .cloned()
        .collect();
    for key in handle_keys {
        if let Some(Value::String(handle)) = fields.remove(&key) {
            let network = key.trim_start_matches("handle_").to_owned();
            if !network.is_empty() && !handle.trim().is_empty() {
                identity.handles.push(Handle {
                    network,
                    handle: handle.into(),
                });
            }
        }
    }
    if identity.user_id.is_none()
        && identity.anonymous_id.is_none()
        && identity.email.is_none()
        && identity.phone.is_none()
        && identity.handles.is_empty()
    {
        return Err(row_error(
            row,
            "no_identifier",
            "a row needs user_id, anonymous_id, email, phone or a handle_<network> column",
        ));
    }
    let traits = match fields.remove("traits") {
        Some(Value::Object(nested)) => {
            let mut all = fields;
            all.extend(nested);
            all
        }
        Some(other) => {
            let mut all = fields;
            all.insert("traits".into(), other);
            all
        }
        None => fields,
    };
    let now = Utc::now();
    Ok(Envelope {
        id,
        tenant_id: tenant.clone(),
        kind: "identify".into(),
        name: None,
        occurred_at: occurred_at.unwrap_or(now),
        received_at: now,
        source: "import".into(),
        identity,
        customer_id: None,
        traits,
        properties: Map::new(),
        context: Map::new(),
    })
}

/// `import-` and the SHA-256 of the row's fields in key order: equal rows, equal ids.
fn content_id(fields: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort();
    let mut hash = Sha256::new();
    for k in keys {
        hash.update(k.as_bytes());
        hash.update([0x1f]);
        hash.update(fields[k].to_string().as_bytes());
        hash.update([0x1e]);
    }
    format!("import-{}", hex::encode(&hash.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn csv_rows_become_identify_events_and_bad_rows_are_reported() {
        let text = "user_id,email,first_name,plan,occurred_at\n\
                    u1,Ana@Example.com,Ana,pro,2026-01-01T00:00:00Z\n\
                    ,,Nobody,free,\n\
                    u3,x@example.com,Xavi\n\
                    u4,,Rui,,yesterday\n";
        let rows = read(&tenant(), Format::Csv, text);
        assert_eq!(rows.len(), 4);
        let first = rows[0].as_ref().unwrap();
        assert_eq!(first.identity.user_id.as_deref(), Some("u1"));
        assert_eq!(
            first.identity.email.as_ref().map(|e| e.as_str()),
            Some("Ana@Example.com")
        );
        assert_eq!(first.traits["first_name"], "Ana");
        assert_eq!(first.traits["plan"], "pro");
        assert!(!first.traits.contains_key("occurred_at"));
        assert_eq!(first.occurred_at.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(first.source, "import");
        let codes: Vec<(u64, &str)> = rows
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|e| (e.row, e.code.as_str()))
            .collect();
        assert_eq!(
            codes,
            vec![
                (2, "no_identifier"),
                (3, "malformed_row"),
                (4, "invalid_time")
            ]
        );
    }

    #[test]
    fn ids_depend_on_content_only() {
        let a = read(&tenant(), Format::Csv, "user_id,plan\nu1,pro\nu2,free\n");
        let b = read(&tenant(), Format::Csv, "plan,user_id\nfree,u2\npro,u1\n");
        let id = |rows: &[Row], i: usize| rows[i].as_ref().unwrap().id.clone();
        assert_eq!(id(&a, 0), id(&b, 1));
        assert_eq!(id(&a, 1), id(&b, 0));
        assert_ne!(id(&a, 0), id(&a, 1));
    }

    #[test]
    fn ndjson_rows() {
        let text = "{\"email\": \"a@example.com\", \"traits\": {\"age\": 40}, \"handle_twitter\": \"@a\"}\n\
                    \n\
                    [1, 2]\n\
                    {\"email\": \n";
        let rows = read(&tenant(), Format::Ndjson, text);
        assert_eq!(rows.len(), 3);
        let first = rows[0].as_ref().unwrap();
        assert_eq!(first.traits["age"], 40);
        assert_eq!(first.identity.handles[0].network, "twitter");
        assert_eq!(rows[1].as_ref().unwrap_err().code, "invalid_json");
        assert_eq!(rows[2].as_ref().unwrap_err().row, 4);
        assert_eq!(Format::parse("JSONL"), Some(Format::Ndjson));
    }
}
