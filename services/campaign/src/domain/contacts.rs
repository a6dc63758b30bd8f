//! What a message on a consumed topic does to the contacts campaigns can reach and to what
//! journeys read about them: identifiers and traits, consent, segment memberships, lifecycle
//! stage and loyalty tier.

use crm_envelope::{Envelope, Topic};
use uuid::Uuid;

/// What a message does to the contacts.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// `profile.created` / `profile.updated`: the email, if the profile has one.
    Profile,
    /// A resolved event: one more event seen, and its time.
    Activity,
    /// `profile.merged`: `merged` folds into `survivor`.
    Merge {
        /// The customer merged away.
        merged: Uuid,
        /// The customer that stays.
        survivor: Uuid,
    },
    /// `profile.erased`: these ids are forgotten.
    Erase(Vec<Uuid>),
    /// `consent.changed`: consent for `purpose` on `channel` given or withdrawn.
    Consent {
        /// The purpose (`marketing`).
        purpose: String,
        /// The channel (`email`, `sms`, `any`, …).
        channel: String,
        /// Given or withdrawn.
        granted: bool,
    },
    /// `segment.entered` / `segment.exited`.
    Segment {
        /// The segment.
        segment: Uuid,
        /// Entered, or left.
        entered: bool,
    },
    /// `lifecycle.changed`: the new stage.
    Stage(String),
    /// `tier.changed`: the new tier.
    Tier(String),
    /// `lead.qualified` / `lead.unqualified`: the lead score then.
    LeadScore {
        /// The score.
        score: f64,
        /// `lead.qualified` (true) or `lead.unqualified`.
        qualified: bool,
    },
    /// `rfm.changed`: the scores and group (as JSON, checked when read).
    Rfm(serde_json::Value),
    /// `value.predicted`: the customer's predicted lifetime value.
    Value(f64),
}

/// Why a message cannot be applied (it is dead-lettered with this reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// Stable code.
    pub code: &'static str,
    /// What is wrong with the message.
    pub detail: &'static str,
}

/// The effect of message `e` read from `topic`; `None` when it does not concern contacts.
pub fn effect_of(e: &Envelope, topic: Topic) -> Result<Option<Effect>, Unusable> {
    Ok(Some(match (topic, e.kind.as_str()) {
        (Topic::Profiles, "profile.created" | "profile.updated") => Effect::Profile,
        (Topic::Profiles, "profile.merged") => {
            let (Some(merged), Some(survivor)) =
                (e.uuid_property("merged_id"), e.uuid_property("survivor_id"))
            else {
                return Err(Unusable {
                    code: "invalid_merge",
                    detail: "profile.merged without properties.merged_id and survivor_id",
                });
            };
            Effect::Merge { merged, survivor }
        }
        (Topic::Profiles, "profile.erased") => Effect::Erase(e.erased_ids()),
        (Topic::Profiles, "consent.changed") => {
            let text = |k: &str| e.properties.get(k).and_then(|v| v.as_str());
            let granted = e.properties.get("granted").and_then(|v| v.as_bool());
            let (Some(purpose), Some(channel), Some(granted)) =
                (text("purpose"), text("channel"), granted)
            else {
                return Err(Unusable {
                    code: "invalid_consent",
                    detail: "consent.changed without properties.purpose, channel and granted",
                });
            };
            Effect::Consent {
                purpose: purpose.to_owned(),
                channel: channel.to_owned(),
                granted,
            }
        }
        (Topic::Events, _) => Effect::Activity,
        (Topic::Segments, kind @ ("segment.entered" | "segment.exited")) => {
            let Some(segment) = e.uuid_property("segment_id") else {
                return Err(Unusable {
                    code: "invalid_membership",
                    detail: "segment.entered/exited without properties.segment_id",
                });
            };
            Effect::Segment {
                segment,
                entered: kind == "segment.entered",
            }
        }
        (Topic::Segments, "lifecycle.changed") => match e.properties.get("to") {
            Some(serde_json::Value::String(to)) => Effect::Stage(to.clone()),
            _ => {
                return Err(Unusable {
                    code: "invalid_stage",
                    detail: "lifecycle.changed without properties.to",
                })
            }
        },
        (Topic::Segments, kind @ ("lead.qualified" | "lead.unqualified")) => {
            match e.properties.get("lead_score").and_then(|v| v.as_f64()) {
                Some(score) if score.is_finite() => Effect::LeadScore {
                    score,
                    qualified: kind == "lead.qualified",
                },
                _ => {
                    return Err(Unusable {
                        code: "invalid_lead_score",
                        detail:
                            "lead.qualified/unqualified without a numeric properties.lead_score",
                    })
                }
            }
        }
        (Topic::Segments, "rfm.changed") => {
            let scores = ["r", "f", "m", "group"]
                .iter()
                .map(|k| e.properties.get(*k).cloned().map(|v| (k.to_string(), v)))
                .collect::<Option<serde_json::Map<_, _>>>();
            let Some(scores) = scores.map(serde_json::Value::Object) else {
                return Err(Unusable {
                    code: "invalid_rfm",
                    detail: "rfm.changed without properties.r, f, m and group",
                });
            };
            Effect::Rfm(scores)
        }
        (Topic::Segments, "value.predicted") => {
            match e.properties.get("lifetime_value").and_then(|v| v.as_f64()) {
                Some(v) if v.is_finite() && v >= 0.0 => Effect::Value(v),
                _ => return Err(Unusable {
                    code: "invalid_value",
                    detail:
                        "value.predicted without a finite, non-negative properties.lifetime_value",
                }),
            }
        }
        (Topic::Loyalty, "tier.changed") => match e.properties.get("tier") {
            Some(serde_json::Value::String(t)) => Effect::Tier(t.clone()),
            _ => {
                return Err(Unusable {
                    code: "invalid_tier",
                    detail: "tier.changed without properties.tier",
                })
            }
        },
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(kind: &str, properties: serde_json::Value) -> Envelope {
        serde_json::from_value(json!({
            "id": "e1", "tenant_id": "acme", "kind": kind,
            "occurred_at": "2026-12-01T10:00:00Z", "received_at": "2026-12-01T10:00:01Z",
            "source": "segmentation", "customer_id": "0190a0a0-0000-7000-8000-000000000001",
            "properties": properties
        }))
        .unwrap()
    }

    #[test]
    fn a_predicted_value_is_mirrored_and_a_bad_one_dead_lettered() {
        let ok = envelope("value.predicted", json!({"lifetime_value": 12.5}));
        assert_eq!(
            effect_of(&ok, Topic::Segments),
            Ok(Some(Effect::Value(12.5)))
        );
        for bad in [
            json!({}),
            json!({"lifetime_value": -1.0}),
            json!({"lifetime_value": "12"}),
        ] {
            let e = envelope("value.predicted", bad);
            assert_eq!(
                effect_of(&e, Topic::Segments).unwrap_err().code,
                "invalid_value"
            );
        }
        // The same kind on another topic is not segmentation's.
        assert_eq!(effect_of(&ok, Topic::Loyalty), Ok(None));
    }
}
