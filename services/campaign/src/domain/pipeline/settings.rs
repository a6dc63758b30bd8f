//! A tenant's lead settings: the reasons a lead may be disqualified for, the assignment rules,
//! the priority weights with the first-touch SLA, whether a lead-score qualification opens
//! a lead, and which tracked events open one (a form submitted, a survey answered). Checked as
//! a whole when saved; errors name the field by JSON pointer.

use serde::{Deserialize, Serialize};

use super::assign::{self, AssignmentRule};
use super::leads::LeadSource;
use super::priority::PrioritySettings;

/// Most disqualify reasons.
pub const MAX_REASONS: usize = 50;

/// Most event rules.
pub const MAX_EVENT_RULES: usize = 20;

/// A tracked event that opens a lead for its customer (one open lead per customer and source
/// still holds; the event's id keys the lead against a replay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LeadEventRule)]
pub struct EventRule {
    /// The event's name, exactly as tracked (`Form Submitted`, `Survey Answered`).
    pub event: String,
    /// The lead's source: `form`, `survey` or `social`.
    pub source: LeadSource,
    /// The event property whose text names the lead's campaign (default `campaign`).
    #[serde(default = "default_campaign_property")]
    pub campaign_property: String,
}

fn default_campaign_property() -> String {
    "campaign".to_owned()
}

fn check_events(rules: &[EventRule]) -> Result<(), (String, String)> {
    if rules.len() > MAX_EVENT_RULES {
        return Err((
            "/leads_from_events".into(),
            format!("at most {MAX_EVENT_RULES} rules"),
        ));
    }
    let text = |t: &str| !t.trim().is_empty() && t.chars().count() <= 200 && !t.contains('\0');
    for (i, r) in rules.iter().enumerate() {
        if !text(&r.event) {
            return Err((
                format!("/leads_from_events/{i}/event"),
                "1 to 200 characters, not blank".into(),
            ));
        }
        if rules[..i].iter().any(|o| o.event == r.event) {
            return Err((
                format!("/leads_from_events/{i}/event"),
                "listed twice".into(),
            ));
        }
        if !matches!(
            r.source,
            LeadSource::Form | LeadSource::Survey | LeadSource::Social
        ) {
            return Err((
                format!("/leads_from_events/{i}/source"),
                "form, survey or social".into(),
            ));
        }
        if !text(&r.campaign_property) {
            return Err((
                format!("/leads_from_events/{i}/campaign_property"),
                "1 to 200 characters, not blank".into(),
            ));
        }
    }
    Ok(())
}

/// How a tenant works its leads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LeadSettings {
    /// Why a lead may be disqualified (1 to 50; default: `not interested`, `no budget`,
    /// `bad contact data`, `competitor`, `spam`).
    pub disqualify_reasons: Vec<String>,
    /// Assignment rules, first match wins (none: leads stay `new` until assigned by hand).
    pub assignment: Vec<AssignmentRule>,
    /// The priority's weights and the first-touch SLA.
    pub priority: PrioritySettings,
    /// Whether segmentation's `lead.qualified` opens a lead (source `score`; default true).
    pub leads_from_score: bool,
    /// Tracked events that open a lead (up to 20; default none).
    pub leads_from_events: Vec<EventRule>,
}

impl Default for LeadSettings {
    fn default() -> Self {
        Self {
            disqualify_reasons: [
                "not interested",
                "no budget",
                "bad contact data",
                "competitor",
                "spam",
            ]
            .map(String::from)
            .to_vec(),
            assignment: Vec::new(),
            priority: PrioritySettings::default(),
            leads_from_score: true,
            leads_from_events: Vec::new(),
        }
    }
}

impl LeadSettings {
    /// The first problem, as (JSON pointer, what to fix).
    pub fn check(&self) -> Result<(), (String, String)> {
        let reasons = &self.disqualify_reasons;
        if reasons.is_empty() || reasons.len() > MAX_REASONS {
            return Err((
                "/disqualify_reasons".into(),
                format!("1 to {MAX_REASONS} reasons"),
            ));
        }
        for (i, r) in reasons.iter().enumerate() {
            if r.trim().is_empty() || r.chars().count() > 100 || r.contains('\0') {
                return Err((
                    format!("/disqualify_reasons/{i}"),
                    "1 to 100 characters, not blank".into(),
                ));
            }
            if reasons[..i].contains(r) {
                return Err((format!("/disqualify_reasons/{i}"), "listed twice".into()));
            }
        }
        assign::check(&self.assignment)
            .map_err(|p| (format!("/assignment{}", p.path), p.message))?;
        self.priority
            .check()
            .map_err(|(path, m)| (format!("/priority{path}"), m))?;
        check_events(&self.leads_from_events)
    }

    /// The rule of the event named `name`, if any.
    pub fn event_rule(&self, name: &str) -> Option<&EventRule> {
        self.leads_from_events.iter().find(|r| r.event == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_pass_and_problems_are_named_below_their_section() {
        assert_eq!(LeadSettings::default().check(), Ok(()));
        let bad = |v: serde_json::Value| {
            serde_json::from_value::<LeadSettings>(v)
                .unwrap()
                .check()
                .unwrap_err()
                .0
        };
        assert_eq!(
            bad(json!({"disqualify_reasons": []})),
            "/disqualify_reasons"
        );
        assert_eq!(
            bad(json!({"disqualify_reasons": ["a", "a"]})),
            "/disqualify_reasons/1"
        );
        assert_eq!(
            bad(json!({"assignment": [{"name": "x", "team": []}]})),
            "/assignment/0/team"
        );
        assert_eq!(
            bad(json!({"priority": {"sla_breach": -1}})),
            "/priority/sla_breach"
        );
        let form = json!({"event": "Form Submitted", "source": "form"});
        assert_eq!(
            bad(json!({"leads_from_events": [form, form]})),
            "/leads_from_events/1/event"
        );
        assert_eq!(
            bad(json!({"leads_from_events": [{"event": "Scored", "source": "score"}]})),
            "/leads_from_events/0/source"
        );
        assert_eq!(
            bad(json!({"leads_from_events": [{"event": " ", "source": "survey"}]})),
            "/leads_from_events/0/event"
        );
        let ok: LeadSettings =
            serde_json::from_value(json!({"leads_from_events": [form]})).unwrap();
        assert_eq!(ok.check(), Ok(()));
        let rule = ok.event_rule("Form Submitted").unwrap();
        assert_eq!(
            (rule.source, rule.campaign_property.as_str()),
            (LeadSource::Form, "campaign")
        );
        assert!(ok.event_rule("form submitted").is_none());
    }
}
