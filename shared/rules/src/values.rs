//! The comparison of a JSON value against an operator, as rules compare traits and event
//! properties.

use std::cmp::Ordering;

use serde_json::Value;

use crate::MatchOp;

/// Whether `field op expected` holds. A missing or null field satisfies only `missing` and
/// `ne`.
pub fn value_matches(field: Option<&Value>, op: MatchOp, expected: Option<&Value>) -> bool {
    let field = field.filter(|v| !v.is_null());
    match op {
        MatchOp::Exists => field.is_some(),
        MatchOp::Missing => field.is_none(),
        MatchOp::Ne => !field.is_some_and(|f| expected.is_some_and(|e| equal(f, e))),
        _ => {
            let (Some(f), Some(e)) = (field, expected) else {
                return false;
            };
            match op {
                MatchOp::Eq => equal(f, e),
                MatchOp::In => e
                    .as_array()
                    .is_some_and(|list| list.iter().any(|x| equal(f, x))),
                MatchOp::Contains => match (f, e) {
                    (Value::String(f), Value::String(e)) => {
                        f.to_lowercase().contains(&e.to_lowercase())
                    }
                    (Value::Array(items), e) => items.iter().any(|i| equal(i, e)),
                    _ => false,
                },
                MatchOp::StartsWith => match (f, e) {
                    (Value::String(f), Value::String(e)) => {
                        f.to_lowercase().starts_with(&e.to_lowercase())
                    }
                    _ => false,
                },
                MatchOp::Gt => order(f, e) == Some(Ordering::Greater),
                MatchOp::Gte => matches!(order(f, e), Some(Ordering::Greater | Ordering::Equal)),
                MatchOp::Lt => order(f, e) == Some(Ordering::Less),
                MatchOp::Lte => matches!(order(f, e), Some(Ordering::Less | Ordering::Equal)),
                MatchOp::Exists | MatchOp::Missing | MatchOp::Ne => false,
            }
        }
    }
}

/// Equality of JSON scalars; numbers by value (1 == 1.0), strings case-sensitively.
fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Order of two numbers, or of two strings (ISO dates compare correctly as text).
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_and_mismatched_types_never_match_by_accident() {
        assert!(!value_matches(None, MatchOp::Eq, Some(&json!(1))));
        assert!(!value_matches(
            Some(&json!("10")),
            MatchOp::Gt,
            Some(&json!(5))
        ));
        assert!(value_matches(
            Some(&json!(1)),
            MatchOp::Eq,
            Some(&json!(1.0))
        ));
        assert!(value_matches(
            Some(&json!("2026-01-02")),
            MatchOp::Gt,
            Some(&json!("2026-01-01"))
        ));
        assert!(value_matches(Some(&Value::Null), MatchOp::Missing, None));
    }
}
