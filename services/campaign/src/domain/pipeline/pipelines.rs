//! A pipeline as a tenant writes it: ordered stages, each with a default probability and at
//! most one of the `won` and `lost` flags, and the reasons an opportunity may be lost for.
//! Errors name the field by JSON pointer.

use serde::{Deserialize, Serialize};

/// Most stages per pipeline.
pub const MAX_STAGES: usize = 30;
/// Most lost reasons per pipeline.
pub const MAX_REASONS: usize = 50;

/// A pipeline: the stages an opportunity moves through, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PipelineDefinition)]
pub struct PipelineSpec {
    /// Unique among the tenant's pipelines (case-insensitive), 1 to 200 characters.
    pub name: String,
    /// The stages, first to last: at least one open stage, one won and one lost.
    pub stages: Vec<StageSpec>,
    /// Why an opportunity may be lost; closing as lost names one (1 to 50 of them).
    pub lost_reasons: Vec<String>,
    /// The currency of amounts when an opportunity names none (ISO 4217, default `EUR`).
    #[serde(default = "euro")]
    pub currency: String,
}

fn euro() -> String {
    "EUR".into()
}

/// One stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Stable key (`qualify`, `proposal`): lowercase letters, digits and `_`, unique.
    pub key: String,
    /// What people call it.
    pub name: String,
    /// Default chance to win from this stage, 0 to 100 (a won stage is 100, a lost one 0).
    pub probability: u8,
    /// Reaching it wins the opportunity.
    #[serde(default)]
    pub won: bool,
    /// Reaching it loses the opportunity (a lost reason is then required).
    #[serde(default)]
    pub lost: bool,
}

impl StageSpec {
    /// Won or lost: the opportunity is closed there.
    pub fn closed(&self) -> bool {
        self.won || self.lost
    }
}

/// A pipeline that fails its checks: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PipelineError {
    /// JSON pointer of the field.
    pub path: String,
    /// What to fix.
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> PipelineError {
    PipelineError {
        path: path.into(),
        message: message.into(),
    }
}

/// Whether `key` is a stage key: 1 to 50 of `a-z`, `0-9`, `_`.
pub fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 50
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `code` looks like an ISO 4217 code (three capital letters).
pub fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase())
}

fn text(path: &str, value: &str, max: usize) -> Result<(), PipelineError> {
    if value.trim().is_empty() || value.chars().count() > max || value.contains('\0') {
        return Err(err(
            path,
            format!("1 to {max} characters, not blank, without NUL"),
        ));
    }
    Ok(())
}

impl PipelineSpec {
    /// Checks every field; the first problem found, by JSON pointer.
    pub fn check(&self) -> Result<(), PipelineError> {
        text("/name", &self.name, 200)?;
        if !is_currency(&self.currency) {
            return Err(err(
                "/currency",
                "an ISO 4217 code of three capital letters",
            ));
        }
        if self.stages.len() < 3 || self.stages.len() > MAX_STAGES {
            return Err(err(
                "/stages",
                format!("3 to {MAX_STAGES} stages: at least one open, one won and one lost"),
            ));
        }
        for (i, stage) in self.stages.iter().enumerate() {
            let at = |field: &str| format!("/stages/{i}/{field}");
            if !is_key(&stage.key) {
                return Err(err(
                    at("key"),
                    "1 to 50 of lowercase letters, digits and `_`",
                ));
            }
            if self.stages[..i].iter().any(|s| s.key == stage.key) {
                return Err(err(
                    at("key"),
                    format!("`{}` is the key of an earlier stage", stage.key),
                ));
            }
            text(&at("name"), &stage.name, 100)?;
            if stage.probability > 100 {
                return Err(err(at("probability"), "0 to 100"));
            }
            if stage.won && stage.lost {
                return Err(err(at("lost"), "a stage is won or lost, not both"));
            }
            if stage.won && stage.probability != 100 {
                return Err(err(at("probability"), "a won stage's probability is 100"));
            }
            if stage.lost && stage.probability != 0 {
                return Err(err(at("probability"), "a lost stage's probability is 0"));
            }
        }
        if !self.stages.iter().any(|s| !s.closed()) {
            return Err(err(
                "/stages",
                "at least one open stage (neither won nor lost)",
            ));
        }
        if !self.stages.iter().any(|s| s.won) {
            return Err(err("/stages", "at least one stage with `won: true`"));
        }
        if !self.stages.iter().any(|s| s.lost) {
            return Err(err("/stages", "at least one stage with `lost: true`"));
        }
        if self.lost_reasons.is_empty() || self.lost_reasons.len() > MAX_REASONS {
            return Err(err("/lost_reasons", format!("1 to {MAX_REASONS} reasons")));
        }
        for (i, reason) in self.lost_reasons.iter().enumerate() {
            text(&format!("/lost_reasons/{i}"), reason, 100)?;
            if self.lost_reasons[..i].contains(reason) {
                return Err(err(format!("/lost_reasons/{i}"), "listed twice"));
            }
        }
        Ok(())
    }

    /// The stage with this key, and its position.
    pub fn stage(&self, key: &str) -> Option<(usize, &StageSpec)> {
        self.stages.iter().enumerate().find(|(_, s)| s.key == key)
    }

    /// The first open stage: where a new opportunity starts unless it names one.
    pub fn first_open(&self) -> Option<&StageSpec> {
        self.stages.iter().find(|s| !s.closed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sales() -> PipelineSpec {
        serde_json::from_value(json!({
            "name": "Sales",
            "stages": [
                {"key": "qualify", "name": "Qualify", "probability": 10},
                {"key": "proposal", "name": "Proposal", "probability": 50},
                {"key": "won", "name": "Won", "probability": 100, "won": true},
                {"key": "lost", "name": "Lost", "probability": 0, "lost": true}
            ],
            "lost_reasons": ["price", "competitor", "no budget"]
        }))
        .unwrap()
    }

    #[test]
    fn a_pipeline_with_open_won_and_lost_stages_passes() {
        let p = sales();
        assert_eq!(p.check(), Ok(()));
        assert_eq!(p.currency, "EUR");
        assert_eq!(p.first_open().map(|s| s.key.as_str()), Some("qualify"));
        assert_eq!(p.stage("won").map(|(i, _)| i), Some(2));
    }

    #[test]
    fn each_broken_rule_is_named_by_its_pointer() {
        type Break = Box<dyn Fn(&mut PipelineSpec)>;
        let cases: Vec<(Break, &str)> = vec![
            (Box::new(|p| p.name = " ".into()), "/name"),
            (Box::new(|p| p.currency = "eur".into()), "/currency"),
            (Box::new(|p| p.stages.truncate(2)), "/stages"),
            (
                Box::new(|p| p.stages[1].key = "Pro posal".into()),
                "/stages/1/key",
            ),
            (
                Box::new(|p| p.stages[1].key = "qualify".into()),
                "/stages/1/key",
            ),
            (
                Box::new(|p| p.stages[0].probability = 101),
                "/stages/0/probability",
            ),
            (
                Box::new(|p| p.stages[2].probability = 90),
                "/stages/2/probability",
            ),
            (
                Box::new(|p| p.stages[3].probability = 5),
                "/stages/3/probability",
            ),
            (Box::new(|p| p.stages[2].lost = true), "/stages/2/lost"),
            (Box::new(|p| p.stages[3].lost = false), "/stages"),
            (
                Box::new(|p| {
                    p.stages[0].won = true;
                    p.stages[0].probability = 100;
                    p.stages[1].lost = true;
                    p.stages[1].probability = 0;
                }),
                "/stages",
            ),
            (Box::new(|p| p.lost_reasons.clear()), "/lost_reasons"),
            (
                Box::new(|p| p.lost_reasons.push("price".into())),
                "/lost_reasons/3",
            ),
            (
                Box::new(|p| p.stages[0].name = "a\0b".into()),
                "/stages/0/name",
            ),
        ];
        for (break_it, path) in cases {
            let mut p = sales();
            break_it(&mut p);
            let e = p.check().unwrap_err();
            assert_eq!(e.path, path, "{e}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut v = serde_json::to_value(sales()).unwrap();
        v["stages"][0]["colour"] = json!("red");
        assert!(serde_json::from_value::<PipelineSpec>(v).is_err());
    }
}
