//! A survey (or form): its questions, its hidden fields, and which answers become traits of the
//! customer and by which rule. Checked when saved, so an answer never meets a definition that
//! cannot be answered.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// What kind of answer a question takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One of `options`.
    Single,
    /// Any of `options` (at least one when required).
    Multiple,
    /// An integer from `min` to `max`.
    Scale,
    /// Net Promoter Score: an integer from 0 to 10.
    Nps,
    /// Free text, up to 2,000 characters.
    Text,
}

/// How a mapped answer is written to its trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The answer replaces the trait's value.
    #[default]
    Overwrite,
    /// The answer is written only when the trait has no value.
    IfEmpty,
    /// The answer is added to the trait's list (a value becomes a list), without repeats.
    Append,
}

impl Rule {
    /// Its name in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overwrite => "overwrite",
            Self::IfEmpty => "if_empty",
            Self::Append => "append",
        }
    }
}

/// A trait an answer is written to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The trait's name (`favourite_colour`, `company.size`).
    #[serde(rename = "trait")]
    pub name: String,
    /// How it is written.
    #[serde(default)]
    pub rule: Rule,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Its id in answers and reports (`[a-z0-9_]`, 1 to 64 characters).
    pub id: String,
    /// Its kind.
    pub kind: Kind,
    /// What is asked.
    pub label: String,
    /// The choices of `single` and `multiple`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The lowest value of a `scale` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// The highest value of a `scale` (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// Whether an answer must have it.
    #[serde(default)]
    pub required: bool,
    /// The trait the answer is written to, if any.
    #[serde(default, rename = "maps_to", skip_serializing_if = "Option::is_none")]
    pub mapping: Option<Mapping>,
}

impl Question {
    /// The bounds of a `scale` or `nps` question.
    pub fn bounds(&self) -> (i64, i64) {
        match self.kind {
            Kind::Nps => (0, 10),
            _ => (self.min.unwrap_or(1), self.max.unwrap_or(5)),
        }
    }
}

/// A hidden field: filled by the link or the page (a campaign, an email typed in a form), never
/// shown as a question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hidden {
    /// Its id (`[a-z0-9_]`).
    pub id: String,
    /// The trait it is written to, if any (`email` here also identifies an anonymous answer).
    #[serde(default, rename = "maps_to", skip_serializing_if = "Option::is_none")]
    pub mapping: Option<Mapping>,
}

/// A survey's questions and hidden fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The questions, in order (1 to 50).
    pub questions: Vec<Question>,
    /// The hidden fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<Hidden>,
    /// What the respondent sees once they have answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thank_you: Option<String>,
}

/// The most questions a survey has.
pub const MAX_QUESTIONS: usize = 50;
/// The longest free-text answer, in characters.
pub const MAX_TEXT: usize = 2000;

fn id_ok(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn trait_ok(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !matches!(name, "consent" | "id" | "customer_id")
}

impl Definition {
    /// Checks the definition: the JSON pointer of the first fault and why.
    pub fn check(&self) -> Result<(), (String, String)> {
        let fault = |path: String, why: &str| Err((path, why.to_owned()));
        if self.questions.is_empty() || self.questions.len() > MAX_QUESTIONS {
            return fault("/questions".into(), "1 to 50 questions");
        }
        let mut ids = HashSet::new();
        let mut traits = HashSet::new();
        for (i, q) in self.questions.iter().enumerate() {
            let at = |f: &str| format!("/questions/{i}{f}");
            if !id_ok(&q.id) {
                return fault(at("/id"), "1 to 64 of a-z, 0-9 and _");
            }
            if !ids.insert(q.id.as_str()) {
                return fault(
                    at("/id"),
                    "ids are unique among questions and hidden fields",
                );
            }
            if q.label.trim().is_empty() || q.label.chars().count() > 500 {
                return fault(at("/label"), "1 to 500 characters");
            }
            match q.kind {
                Kind::Single | Kind::Multiple => {
                    if q.options.len() < 2 || q.options.len() > 50 {
                        return fault(at("/options"), "2 to 50 options");
                    }
                    let mut seen = HashSet::new();
                    for (j, o) in q.options.iter().enumerate() {
                        if o.trim().is_empty() || o.chars().count() > 200 || !seen.insert(o) {
                            return fault(
                                at(&format!("/options/{j}")),
                                "distinct, 1 to 200 characters",
                            );
                        }
                    }
                }
                _ if !q.options.is_empty() => {
                    return fault(at("/options"), "only single and multiple have options");
                }
                _ => {}
            }
            if q.kind == Kind::Scale {
                let (min, max) = q.bounds();
                if min >= max || min < -100 || max > 100 {
                    return fault(at("/max"), "min below max, both from -100 to 100");
                }
            } else if q.min.is_some() || q.max.is_some() {
                return fault(at("/min"), "only a scale has min and max");
            }
            if let Some(m) = &q.mapping {
                if !trait_ok(&m.name) {
                    return fault(
                        at("/maps_to/trait"),
                        "a trait name (letters, digits, _ . -)",
                    );
                }
                if !traits.insert(m.name.as_str()) {
                    return fault(at("/maps_to/trait"), "one field per trait");
                }
            }
        }
        for (i, h) in self.hidden.iter().enumerate() {
            if !id_ok(&h.id) {
                return fault(format!("/hidden/{i}/id"), "1 to 64 of a-z, 0-9 and _");
            }
            if !ids.insert(h.id.as_str()) {
                return fault(
                    format!("/hidden/{i}/id"),
                    "ids are unique among questions and hidden fields",
                );
            }
            if let Some(m) = &h.mapping {
                if !trait_ok(&m.name) || !traits.insert(m.name.as_str()) {
                    return fault(
                        format!("/hidden/{i}/maps_to/trait"),
                        "a trait name, one field per trait",
                    );
                }
            }
        }
        if self
            .thank_you
            .as_ref()
            .is_some_and(|t| t.chars().count() > 2000)
        {
            return fault("/thank_you".into(), "up to 2,000 characters");
        }
        Ok(())
    }

    /// The question with id `id`.
    pub fn question(&self, id: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.id == id)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Definition {
        serde_json::from_value(json!({
            "questions": [
                {"id": "nps", "kind": "nps", "label": "¿Nos recomendarías?", "required": true},
                {"id": "colour", "kind": "single", "label": "Colour", "options": ["red", "blue"],
                 "maps_to": {"trait": "colour", "rule": "overwrite"}},
                {"id": "size", "kind": "single", "label": "Size", "options": ["s", "m", "l"],
                 "maps_to": {"trait": "size", "rule": "if_empty"}},
                {"id": "sports", "kind": "multiple", "label": "Sports",
                 "options": ["run", "swim", "ride"], "maps_to": {"trait": "sports", "rule": "append"}},
                {"id": "ease", "kind": "scale", "label": "Ease", "min": 1, "max": 7},
                {"id": "why", "kind": "text", "label": "Why?"}
            ],
            "hidden": [{"id": "email", "maps_to": {"trait": "email"}}, {"id": "campaign"}]
        }))
        .unwrap()
    }

    #[test]
    fn a_good_definition_passes_and_faults_are_named_by_path() {
        assert_eq!(sample().check(), Ok(()));
        let mut d = sample();
        d.questions[1].options = vec!["red".into()];
        assert_eq!(d.check().unwrap_err().0, "/questions/1/options");
        let mut d = sample();
        d.questions[2].id = "nps".into();
        assert_eq!(d.check().unwrap_err().0, "/questions/2/id");
        let mut d = sample();
        d.questions[4].min = Some(9);
        assert_eq!(d.check().unwrap_err().0, "/questions/4/max");
        let mut d = sample();
        d.questions[5].mapping = Some(Mapping {
            name: "colour".into(),
            rule: Rule::Append,
        });
        assert_eq!(d.check().unwrap_err().0, "/questions/5/maps_to/trait");
        let mut d = sample();
        d.hidden[1].id = "Bad Id".into();
        assert_eq!(d.check().unwrap_err().0, "/hidden/1/id");
        let mut d = sample();
        d.questions[1].mapping = Some(Mapping {
            name: "consent".into(),
            rule: Rule::Overwrite,
        });
        assert_eq!(d.check().unwrap_err().0, "/questions/1/maps_to/trait");
    }
}
