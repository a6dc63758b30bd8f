//! An answer checked against its survey: every question's value of the right kind and within
//! its bounds, required questions present, no field the survey does not have; and what the
//! answer writes to the customer: each mapped value with its trait rule.

use serde_json::{Map, Value};

use super::definition::{Definition, Kind, Rule, MAX_TEXT};

/// An answer that passed its checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Values by question id (text trimmed; unanswered optional questions left out).
    pub answers: Map<String, Value>,
    /// Hidden fields by id.
    pub hidden: Map<String, Value>,
    /// The first NPS question's score, if answered.
    pub nps: Option<i64>,
    /// The traits the answer writes.
    pub traits: Map<String, Value>,
    /// Each written trait's rule (`overwrite`, `if_empty`, `append`).
    pub rules: Map<String, Value>,
}

/// NPS: 9 and 10 promote, 7 and 8 are passive, 0 to 6 detract.
pub fn nps_category(score: i64) -> &'static str {
    match score {
        9.. => "promoter",
        7 | 8 => "passive",
        _ => "detractor",
    }
}

type Fault = (String, String);

fn fault<T>(path: String, why: &str) -> Result<T, Fault> {
    Err((path, why.to_owned()))
}

fn blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Checks `answers` and `hidden` against `def`; the JSON pointer of the first fault and why.
pub fn check(
    def: &Definition,
    answers: &Map<String, Value>,
    hidden: &Map<String, Value>,
) -> Result<Checked, Fault> {
    if let Some(unknown) = answers.keys().find(|k| def.question(k).is_none()) {
        return fault(
            format!("/answers/{unknown}"),
            "the survey has no such question",
        );
    }
    if let Some(unknown) = hidden
        .keys()
        .find(|k| !def.hidden.iter().any(|h| &h.id == *k))
    {
        return fault(
            format!("/hidden/{unknown}"),
            "the survey has no such hidden field",
        );
    }
    let mut out = Checked {
        answers: Map::new(),
        hidden: Map::new(),
        nps: None,
        traits: Map::new(),
        rules: Map::new(),
    };
    for q in &def.questions {
        let at = format!("/answers/{}", q.id);
        let value = match answers.get(&q.id) {
            Some(v) if !blank(v) => v,
            _ if q.required => return fault(at, "this question must be answered"),
            _ => continue,
        };
        let value = match q.kind {
            Kind::Single => match value.as_str() {
                Some(s) if q.options.iter().any(|o| o == s) => value.clone(),
                _ => return fault(at, "one of the question's options"),
            },
            Kind::Multiple => {
                let Some(items) = value.as_array() else {
                    return fault(at, "a list of the question's options");
                };
                let mut chosen: Vec<Value> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) if q.options.iter().any(|o| o == s) => {
                            if !chosen.contains(item) {
                                chosen.push(item.clone());
                            }
                        }
                        _ => return fault(format!("{at}/{i}"), "one of the question's options"),
                    }
                }
                Value::Array(chosen)
            }
            Kind::Scale | Kind::Nps => {
                let (min, max) = q.bounds();
                match value.as_i64() {
                    Some(n) if (min..=max).contains(&n) => {
                        if q.kind == Kind::Nps && out.nps.is_none() {
                            out.nps = Some(n);
                        }
                        Value::from(n)
                    }
                    _ => return fault(at, &format!("a whole number from {min} to {max}")),
                }
            }
            Kind::Text => match value.as_str() {
                Some(s) if s.chars().count() <= MAX_TEXT && !s.contains('\0') => {
                    Value::String(s.trim().to_owned())
                }
                _ => return fault(at, "text of up to 2,000 characters"),
            },
        };
        if let Some(m) = &q.mapping {
            out.traits.insert(m.name.clone(), value.clone());
            out.rules
                .insert(m.name.clone(), Value::from(m.rule.as_str()));
        }
        out.answers.insert(q.id.clone(), value);
    }
    for h in &def.hidden {
        let Some(v) = hidden.get(&h.id).filter(|v| !blank(v)) else {
            continue;
        };
        let Some(s) = v
            .as_str()
            .filter(|s| s.chars().count() <= 500 && !s.contains('\0'))
        else {
            return fault(format!("/hidden/{}", h.id), "text of up to 500 characters");
        };
        let s = Value::String(s.trim().to_owned());
        if let Some(m) = &h.mapping {
            out.traits.insert(m.name.clone(), s.clone());
            out.rules
                .insert(m.name.clone(), Value::from(m.rule.as_str()));
        }
        out.hidden.insert(h.id.clone(), s);
    }
    Ok(out)
}

/// The rule written in an event for `trait`, as [`Rule`].
pub fn rule_of(name: &str) -> Option<Rule> {
    match name {
        "overwrite" => Some(Rule::Overwrite),
        "if_empty" => Some(Rule::IfEmpty),
        "append" => Some(Rule::Append),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::definition::tests::sample;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_full_answer_maps_its_traits_with_their_rules() {
        let c = check(
            &sample(),
            &map(
                json!({"nps": 9, "colour": "blue", "size": "m", "sports": ["run", "swim", "run"],
                        "ease": 6, "why": "  buen servicio "}),
            ),
            &map(json!({"email": "ana@example.com", "campaign": "spring"})),
        )
        .unwrap();
        assert_eq!(c.nps, Some(9));
        assert_eq!(nps_category(9), "promoter");
        assert_eq!(c.answers["why"], "buen servicio");
        assert_eq!(c.answers["sports"], json!(["run", "swim"]));
        assert_eq!(
            c.traits,
            map(
                json!({"colour": "blue", "size": "m", "sports": ["run", "swim"],
                       "email": "ana@example.com"})
            )
        );
        assert_eq!(
            c.rules,
            map(
                json!({"colour": "overwrite", "size": "if_empty", "sports": "append",
                       "email": "overwrite"})
            )
        );
        assert_eq!(c.hidden["campaign"], "spring");
    }

    #[test]
    fn faults_name_the_field() {
        let def = sample();
        let none = Map::new();
        let path = |a: Value, h: Value| check(&def, &map(a), &map(h)).unwrap_err().0;
        assert_eq!(path(json!({}), json!({})), "/answers/nps");
        assert_eq!(path(json!({"nps": 11}), json!({})), "/answers/nps");
        assert_eq!(path(json!({"nps": 7.5}), json!({})), "/answers/nps");
        assert_eq!(
            path(json!({"nps": 7, "colour": "green"}), json!({})),
            "/answers/colour"
        );
        assert_eq!(
            path(json!({"nps": 7, "sports": ["run", "fly"]}), json!({})),
            "/answers/sports/1"
        );
        assert_eq!(
            path(json!({"nps": 7, "ease": 0}), json!({})),
            "/answers/ease"
        );
        assert_eq!(
            path(json!({"nps": 7, "other": 1}), json!({})),
            "/answers/other"
        );
        assert_eq!(path(json!({"nps": 7}), json!({"who": "x"})), "/hidden/who");
        assert!(check(&def, &map(json!({"nps": 0})), &none).is_ok());
        assert_eq!(nps_category(0), "detractor");
        assert_eq!(nps_category(8), "passive");
    }

    proptest! {
        /// Whatever is posted, an answer either fails with a path or holds only the survey's
        /// questions, each within its bounds.
        #[test]
        fn checked_answers_stay_within_the_definition(
            nps in proptest::option::of(-3i64..14),
            colour in proptest::option::of("[a-z]{1,5}"),
            ease in proptest::option::of(-2i64..10),
            text in proptest::option::of(".{0,40}"),
        ) {
            let mut a = Map::new();
            if let Some(n) = nps { a.insert("nps".into(), json!(n)); }
            if let Some(c) = colour { a.insert("colour".into(), json!(c)); }
            if let Some(e) = ease { a.insert("ease".into(), json!(e)); }
            if let Some(t) = text { a.insert("why".into(), json!(t)); }
            let def = sample();
            match check(&def, &a, &Map::new()) {
                Ok(c) => {
                    let n = c.nps.unwrap();
                    prop_assert!((0..=10).contains(&n));
                    if let Some(e) = c.answers.get("ease") {
                        prop_assert!((1..=7).contains(&e.as_i64().unwrap()));
                    }
                    if let Some(col) = c.answers.get("colour") {
                        prop_assert!(col == "red" || col == "blue");
                    }
                    prop_assert!(c.answers.keys().all(|k| def.question(k).is_some()));
                }
                Err((path, _)) => prop_assert!(path.starts_with("/answers/")),
            }
        }
    }
}
