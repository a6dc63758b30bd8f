//! An experiment as a tenant writes it, its checks when saved (errors with the JSON pointer),
//! and its lifecycle: a `draft` is edited, `start` runs it (customers are exposed and
//! assigned), `stop` ends exposure (results stay, conversions inside the window still count).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crm_rules::RuleError;

use super::assign::{assign, Assignment};

/// Most arms.
pub const MAX_ARMS: usize = 10;

/// What is tested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Subject {
    /// The offers decided at a placement: each arm restricts arbitration to its `offer_ids`
    /// (none: every eligible offer); decisions expose and assign the customer.
    Offers {
        /// The placement.
        placement: String,
    },
    /// Message variants: the caller (a journey webhook, a sending system) asks for the
    /// assignment and uses the arm's `variant`.
    Message,
    /// Whole journeys: as `message`, the variant naming the journey.
    Journey,
}

/// One arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Its key (`control`, `b`, …), unique in the experiment.
    pub key: String,
    /// Its share of the customers outside the holdout, relative to the other arms.
    pub weight: u32,
    /// For an offers experiment: the offers this arm may offer (empty: any eligible offer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offer_ids: Vec<Uuid>,
    /// What the caller needs to apply the arm (a template key, a journey id), at most 4 KiB.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub variant: Map<String, Value>,
}

/// What counts as a conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    /// The event name (`Order Completed`).
    pub event: String,
    /// The numeric property of the event that is revenue (`revenue`); absent: no revenue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue_property: Option<String>,
    /// Days after exposure a goal event counts (1 to 90).
    pub window_days: u32,
}

/// An experiment as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ExperimentDefinition)]
pub struct ExperimentSpec {
    /// Its name.
    pub name: String,
    /// What it tests.
    pub subject: Subject,
    /// Two to ten arms; the first is the control every other is compared with.
    pub arms: Vec<Arm>,
    /// Percent of customers (0 to 50) carved out first: never treated, counted apart.
    #[serde(default)]
    pub holdout_percent: u8,
    /// The conversion.
    pub goal: Goal,
    /// Customers every arm needs before uplifts and p-values are shown (default 100).
    #[serde(default = "default_minimum")]
    pub minimum_sample: u32,
}

fn default_minimum() -> u32 {
    100
}

/// Where an experiment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentStatus {
    /// Being written; no one is exposed.
    Draft,
    /// Exposing and assigning customers.
    Running,
    /// Ended; results stay.
    Stopped,
}

impl ExperimentStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentStatus::Draft => "draft",
            ExperimentStatus::Running => "running",
            ExperimentStatus::Stopped => "stopped",
        }
    }

    /// From the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(ExperimentStatus::Draft),
            "running" => Some(ExperimentStatus::Running),
            "stopped" => Some(ExperimentStatus::Stopped),
            _ => None,
        }
    }
}

/// Parses and checks an experiment.
pub fn parse(value: Value) -> Result<ExperimentSpec, RuleError> {
    let spec: ExperimentSpec = serde_path_to_error::deserialize(value).map_err(|e| {
        let p = e.path().to_string();
        RuleError {
            path: if p == "." {
                String::new()
            } else {
                format!(
                    "/{}",
                    p.replace('[', "/").replace(']', "").replace('.', "/")
                )
            },
            message: e.inner().to_string(),
        }
    })?;
    check(&spec)?;
    Ok(spec)
}

fn fail<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError {
        path: path.into(),
        message: message.into(),
    })
}

fn key_like(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

/// Checks a parsed experiment.
pub fn check(s: &ExperimentSpec) -> Result<(), RuleError> {
    if crate::domain::offers::catalogue::has_nul(s) {
        return fail("", "text may not contain the NUL character (\\u0000)");
    }
    let name = s.name.trim();
    if name.is_empty() || name.len() > 200 {
        return fail("/name", "1 to 200 characters");
    }
    if let Subject::Offers { placement } = &s.subject {
        if !key_like(placement) {
            return fail(
                "/subject/offers/placement",
                "letters, digits, `_`, `-`, `.` and `/`",
            );
        }
    }
    if !(2..=MAX_ARMS).contains(&s.arms.len()) {
        return fail("/arms", format!("2 to {MAX_ARMS} arms"));
    }
    for (i, a) in s.arms.iter().enumerate() {
        if !key_like(&a.key) {
            return fail(
                format!("/arms/{i}/key"),
                "letters, digits, `_`, `-`, `.` and `/`",
            );
        }
        if s.arms[..i].iter().any(|b| b.key == a.key) {
            return fail(format!("/arms/{i}/key"), "arm keys must be unique");
        }
        if a.weight == 0 || a.weight > 10_000 {
            return fail(format!("/arms/{i}/weight"), "1 to 10000");
        }
        if !a.offer_ids.is_empty() && !matches!(s.subject, Subject::Offers { .. }) {
            return fail(
                format!("/arms/{i}/offer_ids"),
                "only an offers experiment restricts offers",
            );
        }
        if a.offer_ids.len() > 200 {
            return fail(format!("/arms/{i}/offer_ids"), "at most 200 offers");
        }
        if serde_json::to_vec(&a.variant).map_or(usize::MAX, |v| v.len()) > 4096 {
            return fail(format!("/arms/{i}/variant"), "at most 4096 bytes of JSON");
        }
    }
    if s.holdout_percent > 50 {
        return fail("/holdout_percent", "0 to 50");
    }
    let g = &s.goal;
    if g.event.trim().is_empty() || g.event.len() > 200 {
        return fail("/goal/event", "1 to 200 characters");
    }
    if g.revenue_property
        .as_deref()
        .is_some_and(|p| p.trim().is_empty() || p.len() > 200)
    {
        return fail("/goal/revenue_property", "1 to 200 characters");
    }
    if !(1..=90).contains(&g.window_days) {
        return fail("/goal/window_days", "1 to 90");
    }
    if !(10..=1_000_000).contains(&s.minimum_sample) {
        return fail("/minimum_sample", "10 to 1000000");
    }
    Ok(())
}

/// A customer's place in a running experiment: the arm (`None` in the holdout).
pub fn place(experiment: Uuid, spec: &ExperimentSpec, customer: Uuid) -> Option<usize> {
    let weights: Vec<u32> = spec.arms.iter().map(|a| a.weight).collect();
    match assign(
        &experiment.to_string(),
        customer,
        spec.holdout_percent,
        &weights,
    ) {
        Some(Assignment::Arm { index }) => Some(index),
        Some(Assignment::Holdout) | None => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Value {
        json!({"name": "Hero test", "subject": {"offers": {"placement": "home"}},
               "arms": [{"key": "control", "weight": 50}, {"key": "b", "weight": 50,
                         "offer_ids": [Uuid::from_u128(1)]}],
               "goal": {"event": "Order Completed", "revenue_property": "revenue", "window_days": 14}})
    }

    fn error_at(change: impl Fn(&mut Value)) -> String {
        let mut v = base();
        change(&mut v);
        parse(v).unwrap_err().path
    }

    #[test]
    fn experiments_are_checked_field_by_field() {
        let spec = parse(base()).unwrap();
        assert_eq!(spec.minimum_sample, 100);
        assert_eq!(
            error_at(|v| v["arms"][1]["key"] = json!("control")),
            "/arms/1/key"
        );
        assert_eq!(
            error_at(|v| v["arms"][0]["weight"] = json!(0)),
            "/arms/0/weight"
        );
        assert_eq!(
            error_at(|v| v["goal"]["window_days"] = json!(400)),
            "/goal/window_days"
        );
        assert_eq!(
            error_at(|v| v["holdout_percent"] = json!(70)),
            "/holdout_percent"
        );
        assert_eq!(
            error_at(|v| v["arms"] = json!([{"key": "a", "weight": 1}])),
            "/arms"
        );
        let mut message = base();
        message["subject"] = json!("message");
        assert_eq!(parse(message).unwrap_err().path, "/arms/1/offer_ids");
        let mut unknown = base();
        unknown["arms"][0]["script"] = json!("x");
        assert_eq!(parse(unknown).unwrap_err().path, "/arms/0/script");
    }

    #[test]
    fn the_place_is_stable_and_the_holdout_has_no_arm() {
        let mut spec = parse(base()).unwrap();
        spec.holdout_percent = 20;
        let e = Uuid::from_u128(42);
        let mut held = 0;
        for n in 0..5_000u128 {
            let c = Uuid::from_u128(n * 7_919 + 1);
            let p = place(e, &spec, c);
            assert_eq!(p, place(e, &spec, c));
            held += usize::from(p.is_none());
        }
        let share = held as f64 / 5_000.0;
        assert!((share - 0.2).abs() < 0.03, "{share}");
    }
}
