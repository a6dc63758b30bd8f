//! Property filters on an event: the shared ground of rule evaluation and lead scoring (both
//! filter events by their properties). Values are compared by `crm_rules::value_matches`.

use serde_json::Value;

use super::{MatchOp, PropertyFilter};
use crate::domain::facts::EventFact;
use crm_rules::value_matches;

/// Whether property filter `f` holds for event `e`. `products.category` holds when any
/// product's `category` does.
pub fn filter_holds(f: &PropertyFilter, e: &EventFact) -> bool {
    match f.property.split_once('.') {
        Some((list, field)) => {
            let items = e.properties.get(list).and_then(Value::as_array);
            match f.op {
                MatchOp::Missing | MatchOp::Ne => !items.is_some_and(|items| {
                    items
                        .iter()
                        .any(|i| !value_matches(i.get(field), f.op, f.value.as_ref()))
                }),
                _ => items.is_some_and(|items| {
                    items
                        .iter()
                        .any(|i| value_matches(i.get(field), f.op, f.value.as_ref()))
                }),
            }
        }
        None => value_matches(e.properties.get(&f.property), f.op, f.value.as_ref()),
    }
}
