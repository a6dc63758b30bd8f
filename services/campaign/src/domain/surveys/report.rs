//! A survey's report, folded from its answers counted by question and value (the store counts
//! them in SQL): the Net Promoter Score (promoters' share minus detractors', from -100 to 100)
//! and, per question, how many answered it, how often each option or value was chosen, and the
//! mean of a scale.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answer::nps_category;
use super::definition::{Definition, Kind};

/// The Net Promoter Score of the first NPS question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Nps {
    /// The question.
    pub question: String,
    /// Promoters' share minus detractors', in percent (-100 to 100), one decimal.
    pub score: f64,
    /// Answers of 9 and 10.
    pub promoters: i64,
    /// Answers of 7 and 8.
    pub passives: i64,
    /// Answers of 0 to 6.
    pub detractors: i64,
}

/// How often one option or value was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Count {
    /// The option or value.
    pub value: Value,
    /// How many answers chose it.
    pub count: i64,
}

/// One question's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuestionReport {
    /// The question's id.
    pub id: String,
    /// Its kind.
    pub kind: Kind,
    /// What it asks.
    pub label: String,
    /// How many answers have it.
    pub answered: i64,
    /// Per option (in the survey's order, zeros included) or value (ascending); empty for
    /// free text.
    pub counts: Vec<Count>,
    /// The mean of a scale or NPS question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
}

/// A survey's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// Answers in all.
    pub answers: i64,
    /// The NPS, when the survey has an NPS question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nps: Option<Nps>,
    /// Per question, in the survey's order.
    pub questions: Vec<QuestionReport>,
}

/// One counted value: the question, the value (an option, a number; free text is counted as
/// `null`) and how many answers gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    /// The question's id.
    pub question: String,
    /// The value.
    pub value: Value,
    /// Answers that gave it (for a multiple choice, answers that chose it).
    pub count: i64,
    /// Answers of the question (for a multiple choice: the answers, not the choices).
    pub answered: i64,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Folds counted values into the report of `def`, with `answers` answers in all.
pub fn fold(def: &Definition, answers: i64, counted: &[Counted]) -> Report {
    let mut nps = None;
    let questions = def
        .questions
        .iter()
        .map(|q| {
            let mine: Vec<&Counted> = counted.iter().filter(|c| c.question == q.id).collect();
            let answered = mine.iter().map(|c| c.answered).max().unwrap_or(0);
            let counts: Vec<Count> = match q.kind {
                Kind::Single | Kind::Multiple => q
                    .options
                    .iter()
                    .map(|o| Count {
                        value: Value::from(o.as_str()),
                        count: mine
                            .iter()
                            .filter(|c| c.value.as_str() == Some(o))
                            .map(|c| c.count)
                            .sum(),
                    })
                    .collect(),
                Kind::Scale | Kind::Nps => {
                    let mut values: Vec<(i64, i64)> = mine
                        .iter()
                        .filter_map(|c| c.value.as_i64().map(|v| (v, c.count)))
                        .collect();
                    values.sort_unstable();
                    values
                        .into_iter()
                        .map(|(v, count)| Count {
                            value: Value::from(v),
                            count,
                        })
                        .collect()
                }
                Kind::Text => Vec::new(),
            };
            let numeric: Vec<(i64, i64)> = counts
                .iter()
                .filter_map(|c| c.value.as_i64().map(|v| (v, c.count)))
                .collect();
            let n: i64 = numeric.iter().map(|(_, c)| c).sum();
            let mean = (matches!(q.kind, Kind::Scale | Kind::Nps) && n > 0).then(|| {
                let sum: i64 = numeric.iter().map(|(v, c)| v * c).sum();
                (sum as f64 / n as f64 * 100.0).round() / 100.0
            });
            if q.kind == Kind::Nps && nps.is_none() {
                let of = |cat: &str| {
                    numeric
                        .iter()
                        .filter(|(v, _)| nps_category(*v) == cat)
                        .map(|(_, c)| c)
                        .sum::<i64>()
                };
                let (p, pa, d) = (of("promoter"), of("passive"), of("detractor"));
                let total = p + pa + d;
                nps = Some(Nps {
                    question: q.id.clone(),
                    score: if total == 0 {
                        0.0
                    } else {
                        round1((p - d) as f64 * 100.0 / total as f64)
                    },
                    promoters: p,
                    passives: pa,
                    detractors: d,
                });
            }
            QuestionReport {
                id: q.id.clone(),
                kind: q.kind,
                label: q.label.clone(),
                answered,
                counts,
                mean,
            }
        })
        .collect();
    Report {
        answers,
        nps,
        questions,
    }
}

#[cfg(test)]
mod tests {
    use super::super::definition::tests::sample;
    use super::*;
    use serde_json::json;

    fn c(q: &str, v: Value, count: i64, answered: i64) -> Counted {
        Counted {
            question: q.into(),
            value: v,
            count,
            answered,
        }
    }

    #[test]
    fn nps_and_counts_follow_the_answers() {
        // Ten answers: 5 promoters, 2 passives, 3 detractors: NPS 20.
        let counted = vec![
            c("nps", json!(10), 3, 10),
            c("nps", json!(9), 2, 10),
            c("nps", json!(8), 2, 10),
            c("nps", json!(3), 3, 10),
            c("sports", json!("swim"), 4, 5),
            c("sports", json!("run"), 2, 5),
            c("ease", json!(7), 1, 2),
            c("ease", json!(4), 1, 2),
            c("why", Value::Null, 6, 6),
        ];
        let r = fold(&sample(), 10, &counted);
        let nps = r.nps.unwrap();
        assert_eq!((nps.promoters, nps.passives, nps.detractors), (5, 2, 3));
        assert_eq!(nps.score, 20.0);
        let sports = &r.questions[3];
        assert_eq!(sports.answered, 5);
        assert_eq!(
            sports.counts,
            vec![
                Count {
                    value: json!("run"),
                    count: 2
                },
                Count {
                    value: json!("swim"),
                    count: 4
                },
                Count {
                    value: json!("ride"),
                    count: 0
                },
            ]
        );
        assert_eq!(r.questions[4].mean, Some(5.5));
        assert_eq!(r.questions[4].counts[0].value, json!(4));
        assert_eq!(r.questions[5].answered, 6);
        assert!(r.questions[5].counts.is_empty());
        assert_eq!(r.questions[1].answered, 0);
        let empty = fold(&sample(), 0, &[]);
        assert_eq!(empty.nps.unwrap().score, 0.0);
    }
}
