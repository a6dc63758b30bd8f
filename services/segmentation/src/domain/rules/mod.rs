//! The segment rule language: the grammar and its checks are `crm_rules` (shared with
//! offers' eligibility in campaign); here is what segmentation adds: evaluation over a
//! customer's [`crate::domain::facts::Facts`] ([`eval`]), the facts a rule depends on
//! ([`Dependencies`], [`Windows`]) and property filters on events ([`filter`]).
//! docs/segmentation.md lists every node with an example.

mod deps;
pub(crate) mod eval;
pub mod filter;

pub use crm_rules::*;
pub use deps::{Dependencies, Windows};
pub use eval::{evaluate, Context};

/// Refuses the nodes only a decision can answer (`consent`, `context`): a segment's
/// membership is computed ahead of any contact, with no context, and consent gates contact,
/// not membership. The error names the node.
pub fn segment_nodes_only(rule: &Rule) -> Result<(), RuleError> {
    for (path, leaf) in rule.leaves() {
        if let Rule::Consent(_) | Rule::Context(_) = leaf {
            return Err(RuleError {
                path: format!("{path}/{}", leaf.kind()),
                message: format!(
                    "`{}` is decided at contact time; segments cannot test it (offers' \
                     eligibility can)",
                    leaf.kind()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_refuse_consent_and_context_by_path() {
        let rule = parse(
            r#"{"all": [{"stage": {"in": ["active"]}},
                         {"not": {"context": {"field": "page", "op": "eq", "value": "home"}}}]}"#,
        )
        .unwrap();
        let e = segment_nodes_only(&rule).unwrap_err();
        assert_eq!(e.path, "/all/1/not/context");
        let rule = parse(r#"{"consent": {"purpose": "marketing"}}"#).unwrap();
        assert_eq!(segment_nodes_only(&rule).unwrap_err().path, "/consent");
        let rule = parse(r#"{"stage": {"in": ["active"]}}"#).unwrap();
        assert!(segment_nodes_only(&rule).is_ok());
    }
}
