//! The send gate: every message a journey would send passes these checks, in this order, and
//! a refusal is recorded as `message.skipped` with its [`SkipReason`]:
//!
//! 1. consent for the message's purpose on its channel, and the suppression list
//!    (unsubscribes, hard bounces, complaints);
//! 2. holdout: the journey's control group, then the tenant's global control group, both by a
//!    salted hash of the customer id ([`holdout`]), never a random draw, so a customer is in
//!    or out the same way every time;
//! 3. frequency caps per channel and message type over rolling and calendar windows in the
//!    customer's time zone ([`caps`]), slots going by journey priority (a message may take the
//!    slot of a queued one of lower priority, [`caps::arbitrate`]); transactional messages are
//!    exempt;
//! 4. quiet hours in the customer's time zone ([`quiet`]): defer to the end, or drop.
//!
//! Pure: the caller loads what the gate reads (consent, suppression, recent sends) and records
//! the outcome; the idempotency key per (instance, node, occurrence) is the caller's.

pub mod caps;
pub mod holdout;
pub mod policy;
pub mod quiet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use uuid::Uuid;

use self::caps::{Cap, Sent};
use self::quiet::{QuietHours, QuietOutcome};
use crate::domain::journeys::Channel;

/// Why a message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No consent for the purpose on the channel (or consent withdrawn).
    NoConsent,
    /// The address is on the suppression list.
    Suppressed,
    /// The customer is in the journey's control group.
    Holdout,
    /// The customer is in the tenant's global control group.
    GlobalHoldout,
    /// A frequency cap is reached.
    FrequencyCap,
    /// Quiet hours, and the message drops rather than waits.
    QuietHours,
}

impl SkipReason {
    /// The reason as recorded (`no_consent`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoConsent => "no_consent",
            SkipReason::Suppressed => "suppressed",
            SkipReason::Holdout => "holdout",
            SkipReason::GlobalHoldout => "global_holdout",
            SkipReason::FrequencyCap => "frequency_cap",
            SkipReason::QuietHours => "quiet_hours",
        }
    }
}

/// What the gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send now.
    Send,
    /// Send at this instant (the end of quiet hours); the gate runs again then.
    Defer(DateTime<Utc>),
    /// Do not send.
    Skip(SkipReason),
}

/// Everything the gate reads about one message.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The customer.
    pub customer: Uuid,
    /// The channel.
    pub channel: Channel,
    /// Its type for caps (`marketing`, `newsletter`, …).
    pub message_type: &'a str,
    /// Transactional messages skip caps and quiet hours, never consent.
    pub transactional: bool,
    /// Consent for the purpose on the channel, as identity last reported it.
    pub consented: bool,
    /// The address is suppressed.
    pub suppressed: bool,
    /// The journey's id (salt of its control group) and its holdout percent.
    pub journey: (Uuid, u8),
    /// The tenant's global control group: salt and percent.
    pub global_holdout: (&'a str, u8),
    /// The customer's time zone.
    pub time_zone: Tz,
    /// Its journey's priority (higher wins a cap's last slot).
    pub priority: i32,
    /// The tenant's caps.
    pub caps: &'a [Cap],
    /// What the customer was sent recently (at least the longest cap window).
    pub history: &'a [Sent],
    /// Quiet hours, if the tenant has them.
    pub quiet: Option<QuietHours>,
}

/// The gate's decision for `c` at `now`, checks in the documented order.
pub fn decide(c: &Candidate<'_>, now: DateTime<Utc>) -> Decision {
    decide_displacing(c, now).0
}

/// The gate's decision for `c` at `now`, and the queued messages of lower priority that yield
/// their cap slots to it when it is sent or deferred (the caller skips them as
/// `frequency_cap`).
pub fn decide_displacing(c: &Candidate<'_>, now: DateTime<Utc>) -> (Decision, Vec<Uuid>) {
    let skip = |reason| (Decision::Skip(reason), Vec::new());
    if !c.consented {
        return skip(SkipReason::NoConsent);
    }
    if c.suppressed {
        return skip(SkipReason::Suppressed);
    }
    let (journey, percent) = c.journey;
    if holdout::held_out(&journey.to_string(), c.customer, percent) {
        return skip(SkipReason::Holdout);
    }
    let (salt, percent) = c.global_holdout;
    if holdout::held_out(salt, c.customer, percent) {
        return skip(SkipReason::GlobalHoldout);
    }
    if c.transactional {
        return (Decision::Send, Vec::new());
    }
    let displaced = match caps::arbitrate(
        c.caps,
        c.history,
        c.channel,
        c.message_type,
        c.priority,
        c.time_zone,
        now,
    ) {
        caps::Fit::Capped(_) => return skip(SkipReason::FrequencyCap),
        caps::Fit::Fits => Vec::new(),
        caps::Fit::Displacing(ids) => ids,
    };
    match c.quiet.map(|q| q.at(c.time_zone, now)) {
        None | Some(QuietOutcome::Open) => (Decision::Send, displaced),
        Some(QuietOutcome::DeferUntil(t)) => (Decision::Defer(t), displaced),
        Some(QuietOutcome::Drop) => skip(SkipReason::QuietHours),
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;

    use super::caps::Window;
    use super::quiet::Policy;
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn candidate<'a>(caps: &'a [Cap], history: &'a [Sent]) -> Candidate<'a> {
        Candidate {
            customer: Uuid::from_u128(7),
            channel: Channel::Email,
            message_type: "marketing",
            transactional: false,
            consented: true,
            suppressed: false,
            journey: (Uuid::from_u128(1), 0),
            global_holdout: ("acme", 0),
            time_zone: "Europe/Madrid".parse().unwrap(),
            priority: 0,
            caps,
            history,
            quiet: Some(QuietHours {
                start: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
                end: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                policy: Policy::Defer,
            }),
        }
    }

    #[test]
    fn checks_run_in_the_documented_order() {
        let caps = [Cap {
            channel: Some(Channel::Email),
            message_type: None,
            max: 1,
            window: Window::RollingHours(24),
        }];
        let sent = [Sent {
            at: utc("2026-12-03T09:00:00Z"),
            channel: Channel::Email,
            message_type: "marketing".into(),
            priority: 0,
            queued: None,
        }];
        let noon = utc("2026-12-03T11:00:00Z");
        let mut c = candidate(&caps, &sent);
        // Capped, at night, suppressed and without consent: consent is named first.
        c.consented = false;
        c.suppressed = true;
        assert_eq!(decide(&c, noon), Decision::Skip(SkipReason::NoConsent));
        c.consented = true;
        assert_eq!(decide(&c, noon), Decision::Skip(SkipReason::Suppressed));
        c.suppressed = false;
        c.journey.1 = 50;
        c.global_holdout.1 = 50;
        let held = (0..200u128)
            .map(|n| Candidate {
                customer: Uuid::from_u128(n),
                ..c.clone()
            })
            .map(|c| decide(&c, noon))
            .filter(|d| {
                matches!(
                    d,
                    Decision::Skip(SkipReason::Holdout | SkipReason::GlobalHoldout)
                )
            })
            .count();
        assert!(
            (120..=180).contains(&held),
            "{held} of 200 held out at 50% + 50%"
        );
        c.journey.1 = 0;
        c.global_holdout.1 = 0;
        assert_eq!(decide(&c, noon), Decision::Skip(SkipReason::FrequencyCap));
        // Transactional: no cap, no quiet hours.
        c.transactional = true;
        assert_eq!(decide(&c, utc("2026-12-03T23:00:00Z")), Decision::Send);
        let c = candidate(&[], &[]);
        // 23:00 UTC is midnight in Madrid: deferred to 08:00 local, 07:00 UTC.
        assert_eq!(
            decide(&c, utc("2026-12-03T23:00:00Z")),
            Decision::Defer(utc("2026-12-04T07:00:00Z"))
        );
        assert_eq!(decide(&c, noon), Decision::Send);
    }
}
