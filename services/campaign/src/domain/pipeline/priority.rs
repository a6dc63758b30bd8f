//! A lead's priority: a sum of points the tenant weighs, each part explained. The parts are
//! the lead score, the predicted value, how recent the customer's last interaction is (halving
//! every half-life), how long the lead has been in its status, and a breached first-touch SLA.
//! The same function ranks the work queue and explains a lead, so the order shown is the
//! order explained.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How a tenant weighs a lead's priority, and its first-touch SLA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PrioritySettings {
    /// Points per point of lead score (default 1).
    pub lead_score: f64,
    /// Points per unit of predicted customer value (default 0.01).
    pub predicted_value: f64,
    /// Points for an interaction right now, halving every `recency_half_life_days`
    /// (default 30).
    pub recency: f64,
    /// Days for the recency points to halve (default 7; above 0).
    pub recency_half_life_days: f64,
    /// Points per day in the current status (default 1).
    pub status_age: f64,
    /// Points once the first-touch SLA is breached (default 100).
    pub sla_breach: f64,
    /// Minutes a new or assigned lead may wait for its first touch (default 240).
    pub first_touch_minutes: u32,
}

impl Default for PrioritySettings {
    fn default() -> Self {
        Self {
            lead_score: 1.0,
            predicted_value: 0.01,
            recency: 30.0,
            recency_half_life_days: 7.0,
            status_age: 1.0,
            sla_breach: 100.0,
            first_touch_minutes: 240,
        }
    }
}

/// Largest weight.
pub const MAX_WEIGHT: f64 = 1_000.0;

impl PrioritySettings {
    /// The first field out of bounds, by JSON pointer below the settings, and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let weights = [
            ("/lead_score", self.lead_score),
            ("/predicted_value", self.predicted_value),
            ("/recency", self.recency),
            ("/status_age", self.status_age),
            ("/sla_breach", self.sla_breach),
        ];
        for (path, w) in weights {
            if !(0.0..=MAX_WEIGHT).contains(&w) {
                return Err((path, format!("a weight from 0 to {MAX_WEIGHT}")));
            }
        }
        if !(self.recency_half_life_days > 0.0 && self.recency_half_life_days <= 365.0) {
            return Err((
                "/recency_half_life_days",
                "above 0, at most 365 days".into(),
            ));
        }
        if !(1..=525_600).contains(&self.first_touch_minutes) {
            return Err(("/first_touch_minutes", "1 to 525600 (a year)".into()));
        }
        Ok(())
    }

    /// When a lead waiting since `since` breaches its first-touch SLA.
    pub fn sla_due(&self, since: DateTime<Utc>) -> DateTime<Utc> {
        since + Duration::minutes(i64::from(self.first_touch_minutes))
    }
}

/// What a lead's priority is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriorityInputs {
    /// The customer's lead score, if known.
    pub lead_score: Option<f64>,
    /// The customer's predicted value, if known.
    pub predicted_value: Option<f64>,
    /// The customer's last interaction (an event of theirs), if any.
    pub last_interaction: Option<DateTime<Utc>>,
    /// When the lead entered its status.
    pub status_since: DateTime<Utc>,
    /// Since when it waits for its first touch (absent once touched).
    pub waiting_since: Option<DateTime<Utc>>,
}

/// The factors of a priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PriorityFactor)]
pub enum Factor {
    /// The lead score.
    LeadScore,
    /// The predicted customer value.
    PredictedValue,
    /// How recent the last interaction is.
    Recency,
    /// Days in the current status.
    StatusAge,
    /// The first-touch SLA is breached.
    SlaBreach,
}

/// One factor's part of a priority.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = PriorityContribution)]
pub struct Contribution {
    /// The factor.
    pub factor: Factor,
    /// Its input: the score, the value, days since the interaction, days in status, minutes
    /// past the SLA.
    pub input: f64,
    /// Its weight in the tenant's settings.
    pub weight: f64,
    /// Points it adds.
    pub points: f64,
}

/// A priority and what makes it up (factors without an input are left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = LeadPriority)]
pub struct Priority {
    /// The sum of the points, rounded to hundredths.
    pub score: f64,
    /// Each factor's points.
    pub because: Vec<Contribution>,
}

fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_seconds().max(0) as f64) / 86_400.0
}

/// The priority at `now`.
pub fn priority(s: &PrioritySettings, x: &PriorityInputs, now: DateTime<Utc>) -> Priority {
    let mut because = Vec::with_capacity(5);
    let mut add = |factor, input: f64, weight: f64, points: f64| {
        because.push(Contribution {
            factor,
            input,
            weight,
            points,
        });
    };
    if let Some(score) = x.lead_score.filter(|v| v.is_finite()) {
        add(Factor::LeadScore, score, s.lead_score, score * s.lead_score);
    }
    if let Some(value) = x.predicted_value.filter(|v| v.is_finite()) {
        add(
            Factor::PredictedValue,
            value,
            s.predicted_value,
            value * s.predicted_value,
        );
    }
    if let Some(at) = x.last_interaction {
        let d = days(at, now);
        let points = s.recency * 0.5f64.powf(d / s.recency_half_life_days);
        add(Factor::Recency, d, s.recency, points);
    }
    let age = days(x.status_since, now);
    add(Factor::StatusAge, age, s.status_age, age * s.status_age);
    if let Some(since) = x.waiting_since {
        let due = s.sla_due(since);
        if now > due {
            let late = (now - due).num_seconds() as f64 / 60.0;
            add(Factor::SlaBreach, late, s.sla_breach, s.sla_breach);
        }
    }
    let score = because.iter().map(|c| c.points).sum::<f64>();
    Priority {
        score: (score * 100.0).round() / 100.0,
        because,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
    }

    #[test]
    fn each_factor_adds_its_weighted_points() {
        let s = PrioritySettings::default();
        let x = PriorityInputs {
            lead_score: Some(40.0),
            predicted_value: Some(2_000.0),
            last_interaction: Some(at(1, 0)),
            status_since: at(6, 0),
            waiting_since: Some(at(7, 0)),
        };
        let p = priority(&s, &x, at(8, 0));
        let points: Vec<(Factor, f64)> = p.because.iter().map(|c| (c.factor, c.points)).collect();
        // 40 x 1; 2000 x 0.01; 30 halved once over 7 days; 2 days x 1; the SLA of 4 hours
        // breached 20 hours ago.
        assert_eq!(
            points,
            vec![
                (Factor::LeadScore, 40.0),
                (Factor::PredictedValue, 20.0),
                (Factor::Recency, 15.0),
                (Factor::StatusAge, 2.0),
                (Factor::SlaBreach, 100.0),
            ]
        );
        assert_eq!(p.because[4].input, 20.0 * 60.0);
        assert_eq!(p.score, 177.0);
    }

    #[test]
    fn the_sla_counts_only_once_breached_and_only_while_waiting() {
        let s = PrioritySettings::default();
        let mut x = PriorityInputs {
            lead_score: None,
            predicted_value: None,
            last_interaction: None,
            status_since: at(8, 0),
            waiting_since: Some(at(8, 0)),
        };
        assert!(!priority(&s, &x, at(8, 4))
            .because
            .iter()
            .any(|c| c.factor == Factor::SlaBreach));
        assert!(priority(&s, &x, at(8, 5))
            .because
            .iter()
            .any(|c| c.factor == Factor::SlaBreach));
        x.waiting_since = None;
        assert_eq!(priority(&s, &x, at(8, 5)).because.len(), 1);
    }

    #[test]
    fn settings_out_of_bounds_are_named() {
        let mut s = PrioritySettings::default();
        assert_eq!(s.check(), Ok(()));
        s.recency = -1.0;
        assert_eq!(s.check().unwrap_err().0, "/recency");
        s = PrioritySettings {
            recency_half_life_days: 0.0,
            ..Default::default()
        };
        assert_eq!(s.check().unwrap_err().0, "/recency_half_life_days");
        s = PrioritySettings {
            first_touch_minutes: 0,
            ..Default::default()
        };
        assert_eq!(s.check().unwrap_err().0, "/first_touch_minutes");
    }

    proptest! {
        /// The score is the sum of its explanation, and a higher lead score, a more recent
        /// interaction or a longer wait never lowers it.
        #[test]
        fn the_score_is_explained_and_monotone(
            score in 0.0f64..100.0, more in 0.0f64..50.0,
            hours_ago in 0i64..2_000, age in 0i64..2_000,
        ) {
            let s = PrioritySettings::default();
            let now = at(20, 0);
            let x = PriorityInputs {
                lead_score: Some(score),
                predicted_value: Some(100.0),
                last_interaction: Some(now - Duration::hours(hours_ago)),
                status_since: now - Duration::hours(age),
                waiting_since: Some(now - Duration::hours(age)),
            };
            let p = priority(&s, &x, now);
            let sum: f64 = p.because.iter().map(|c| c.points).sum();
            prop_assert!((p.score - sum).abs() < 0.01);
            let higher = priority(&s, &PriorityInputs { lead_score: Some(score + more), ..x }, now);
            prop_assert!(higher.score >= p.score);
            let recent = priority(&s, &PriorityInputs {
                last_interaction: Some(now - Duration::hours(hours_ago / 2)), ..x }, now);
            prop_assert!(recent.score >= p.score);
            let later = priority(&s, &x, now + Duration::hours(1));
            prop_assert!(later.score + 0.5 >= p.score);
        }
    }
}
