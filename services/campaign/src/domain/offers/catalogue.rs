//! An offer of the catalogue as a tenant writes it, and its checks when saved: closed fields
//! (unknown ones refused), bounds on every number, a validity window that ends after it
//! starts, and eligibility in the rule language ([`super::eligibility`]). Errors name the field
//! by JSON pointer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crm_rules::{Rule, RuleError};

use super::eligibility;

/// Longest name.
pub const MAX_NAME: usize = 200;
/// Most placements per offer.
pub const MAX_PLACEMENTS: usize = 50;
/// Largest `content`, in bytes of JSON.
pub const MAX_CONTENT: usize = 16 * 1024;

/// An offer as written: what to show, where, when, to whom, and what it is worth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OfferDefinition)]
pub struct OfferSpec {
    /// Unique among the tenant's live offers (case-insensitive).
    pub name: String,
    /// Where it may be shown (`home_hero`, `email_footer`, …): a decision asks for one.
    pub placements: Vec<String>,
    /// What the caller shows (a JSON object of at most 16 KiB), returned with the decision.
    #[serde(default)]
    pub content: Map<String, Value>,
    /// A template key to render instead of `content` (for messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Offered from this time on (absent: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// Offered until this time, exclusive (absent: no end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// Higher wins a tie of scores (default 0).
    #[serde(default)]
    pub priority: i32,
    /// Business value of one acceptance (positive).
    pub value: f64,
    /// The tenant's lever: multiplies the score (default 1; above 0, at most 100).
    #[serde(default = "one")]
    pub lever: f64,
    /// What one acceptance costs against `budget` (default 0).
    #[serde(default)]
    pub cost: f64,
    /// Impressions one customer may get in all (absent: no cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_cap: Option<u32>,
    /// Impressions all customers together may get (absent: no cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_cap: Option<u64>,
    /// Total cost of acceptances allowed (absent: no budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    /// Shown to the control group, and to anyone no other offer suits.
    #[serde(default)]
    pub fallback: bool,
    /// A loyalty reward granted on acceptance (points awarded as an event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<Reward>,
    /// Who may get it: a rule of the segment language, restricted to decision-time nodes
    /// (docs/campaign.md); absent: every customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub eligibility: Option<Value>,
    /// `active` (offered) or `paused` (kept, not offered); default `active`.
    #[serde(default)]
    pub status: OfferStatus,
}

fn one() -> f64 {
    1.0
}

/// A loyalty reward an offer grants when accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OfferReward)]
pub struct Reward {
    /// Points awarded (an `Offer Reward Granted` event the loyalty programme's rules earn on).
    pub points: u32,
    /// What the reward is called in the loyalty programme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward_key: Option<String>,
}

/// Whether an offer is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    /// Offered.
    #[default]
    Active,
    /// Kept but not offered.
    Paused,
    /// Gone from the catalogue (by DELETE).
    Archived,
}

impl OfferStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OfferStatus::Active => "active",
            OfferStatus::Paused => "paused",
            OfferStatus::Archived => "archived",
        }
    }

    /// From the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(OfferStatus::Active),
            "paused" => Some(OfferStatus::Paused),
            "archived" => Some(OfferStatus::Archived),
            _ => None,
        }
    }
}

/// Parses and checks an offer; the eligibility rule comes back parsed.
pub fn parse(value: Value) -> Result<(OfferSpec, Option<Rule>), RuleError> {
    let spec: OfferSpec = serde_path_to_error::deserialize(value).map_err(|e| RuleError {
        path: pointer(&e.path().to_string()),
        message: e.inner().to_string(),
    })?;
    let rule = check(&spec)?;
    Ok((spec, rule))
}

/// Checks a parsed offer; the eligibility rule comes back parsed.
pub fn check(s: &OfferSpec) -> Result<Option<Rule>, RuleError> {
    if has_nul(s) {
        return fail("", "text may not contain the NUL character (\\u0000)");
    }
    let name = s.name.trim();
    if name.is_empty() || name.len() > MAX_NAME {
        return fail("/name", format!("1 to {MAX_NAME} characters"));
    }
    if s.placements.is_empty() || s.placements.len() > MAX_PLACEMENTS {
        return fail("/placements", format!("1 to {MAX_PLACEMENTS} placements"));
    }
    for (i, p) in s.placements.iter().enumerate() {
        if !key_like(p) {
            return fail(
                format!("/placements/{i}"),
                "a placement is 1 to 100 characters of letters, digits, `_`, `-`, `.` and `/`",
            );
        }
    }
    if serde_json::to_vec(&s.content).map_or(usize::MAX, |v| v.len()) > MAX_CONTENT {
        return fail("/content", format!("at most {MAX_CONTENT} bytes of JSON"));
    }
    if let Some(t) = &s.template {
        if !key_like(t) {
            return fail(
                "/template",
                "a template key (letters, digits, `_`, `-`, `.`, `/`)",
            );
        }
    }
    if let (Some(a), Some(b)) = (s.starts_at, s.ends_at) {
        if b <= a {
            return fail("/ends_at", "must be after starts_at");
        }
    }
    positive(s.value, "/value", 1e12)?;
    positive(s.lever, "/lever", 100.0)?;
    if !(s.cost.is_finite() && (0.0..=1e12).contains(&s.cost)) {
        return fail("/cost", "0 or more, at most 1e12");
    }
    if let Some(b) = s.budget {
        if !(b.is_finite() && (0.0..=1e15).contains(&b)) {
            return fail("/budget", "0 or more, at most 1e15");
        }
    }
    if s.customer_cap == Some(0) {
        return fail("/customer_cap", "at least 1 (or absent: no cap)");
    }
    if s.global_cap == Some(0) {
        return fail("/global_cap", "at least 1 (or absent: no cap)");
    }
    if let Some(r) = &s.reward {
        if r.points == 0 {
            return fail("/reward/points", "at least 1");
        }
        if r.reward_key.as_deref().is_some_and(|k| !key_like(k)) {
            return fail("/reward/reward_key", "letters, digits, `_`, `-`, `.`, `/`");
        }
    }
    if s.status == OfferStatus::Archived {
        return fail("/status", "`active` or `paused`; DELETE archives an offer");
    }
    s.eligibility.clone().map(eligibility::parse).transpose()
}

/// Whether any text of `v` holds a NUL character, which PostgreSQL's text and jsonb refuse.
pub fn has_nul<T: Serialize>(v: &T) -> bool {
    serde_json::to_string(v).map_or(true, |s| s.contains("\\u0000"))
}

fn key_like(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

fn positive(x: f64, at: &str, max: f64) -> Result<(), RuleError> {
    if x.is_finite() && x > 0.0 && x <= max {
        Ok(())
    } else {
        fail(at, format!("above 0, at most {max}"))
    }
}

fn fail<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError {
        path: path.into(),
        message: message.into(),
    })
}

/// serde_path_to_error's `placements[1]` as a JSON pointer (`/placements/1`).
fn pointer(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let mut out = String::new();
    for part in path.split('.') {
        let part = part.replace('[', ".").replace(']', "");
        for piece in part.split('.').filter(|p| !p.is_empty()) {
            out.push('/');
            out.push_str(piece);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Value {
        json!({"name": "10% off boots", "placements": ["home_hero"], "value": 12.5,
               "content": {"headline": "Boots, 10% off"}})
    }

    fn error_at(patch: Value) -> RuleError {
        let mut v = base();
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        parse(v).unwrap_err()
    }

    #[test]
    fn a_plain_offer_takes_the_defaults() {
        let (spec, rule) = parse(base()).unwrap();
        assert_eq!(spec.lever, 1.0);
        assert_eq!(spec.status, OfferStatus::Active);
        assert!(rule.is_none());
    }

    #[test]
    fn every_field_is_checked_and_named() {
        assert_eq!(error_at(json!({"value": 0})).path, "/value");
        assert_eq!(error_at(json!({"lever": 1000})).path, "/lever");
        assert_eq!(error_at(json!({"placements": []})).path, "/placements");
        assert_eq!(
            error_at(json!({"placements": ["ok", "no spaces"]})).path,
            "/placements/1"
        );
        assert_eq!(error_at(json!({"script": "1"})).path, "/script");
        assert_eq!(error_at(json!({"customer_cap": -1})).path, "/customer_cap");
        assert_eq!(error_at(json!({"global_cap": 0})).path, "/global_cap");
        assert_eq!(
            error_at(
                json!({"starts_at": "2026-12-02T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z"})
            )
            .path,
            "/ends_at"
        );
        assert_eq!(
            error_at(json!({"reward": {"points": 0}})).path,
            "/reward/points"
        );
        assert_eq!(error_at(json!({"status": "archived"})).path, "/status");
        let e = error_at(json!({"eligibility": {"all": [{"segment": {"id": "not-a-uuid"}}]}}));
        assert!(e.path.starts_with("/eligibility/all/0"), "{e}");
        assert_eq!(error_at(json!({"content": {"a": "x\u{0}y"}})).path, "");
        let big = "x".repeat(MAX_CONTENT);
        assert_eq!(error_at(json!({"content": {"a": big}})).path, "/content");
    }
}
