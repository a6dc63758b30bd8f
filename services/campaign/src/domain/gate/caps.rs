//! Frequency caps: at most `max` messages per channel and/or message type in a window, rolling
//! (the last N hours) or calendar (today, this week from Monday, this month) in the customer's
//! time zone. Transactional messages are never counted against a cap by the gate.
//!
//! Slots go by journey priority ([`arbitrate`]): a message that would pass a cap takes the
//! slot of a message of lower priority that is still queued (waiting for quiet hours to end,
//! for the tenant's priority hold, for a retry); that one is skipped instead. A message that
//! has left cannot be called back, so among messages that are both queued the higher priority
//! wins, and between a queued one and one already sent the earlier one keeps its slot.

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::journeys::Channel;
use crate::domain::localtime;

/// A cap's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = CapWindow)]
pub enum Window {
    /// The last N hours.
    RollingHours(u32),
    /// Since local midnight.
    CalendarDay,
    /// Since Monday 00:00 local.
    CalendarWeek,
    /// Since the first of the month, 00:00 local.
    CalendarMonth,
}

/// A frequency cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FrequencyCap)]
pub struct Cap {
    /// Only messages of this channel count (`None`: every channel).
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Only messages of this type count (`None`: every type).
    #[serde(default)]
    pub message_type: Option<String>,
    /// Most messages in the window.
    pub max: u32,
    /// The window.
    pub window: Window,
}

/// A message sent to the customer, or queued for them (transactional ones are not recorded
/// here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// When (a queued message counts as sent now).
    pub at: DateTime<Utc>,
    /// Its channel.
    pub channel: Channel,
    /// Its type.
    pub message_type: String,
    /// Its journey's priority.
    pub priority: i32,
    /// The message's id while it is still queued, and so may yield its slot; `None` once it
    /// has left.
    pub queued: Option<uuid::Uuid>,
}

/// How a new message fits the caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit<'a> {
    /// Below every cap that covers it.
    Fits,
    /// It fits if these queued messages of lower priority yield their slots.
    Displacing(Vec<uuid::Uuid>),
    /// This cap is reached by messages it cannot displace.
    Capped(&'a Cap),
}

impl Cap {
    /// Whether the cap counts a message of `channel` and `message_type`.
    fn covers(&self, channel: Channel, message_type: &str) -> bool {
        self.channel.is_none_or(|c| c == channel)
            && self
                .message_type
                .as_deref()
                .is_none_or(|t| t == message_type)
    }

    /// The window's first instant, for `now` in `tz`.
    pub fn since(&self, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&tz).date_naive();
        let day = match self.window {
            Window::RollingHours(h) => return now - Duration::hours(i64::from(h)),
            Window::CalendarDay => today,
            Window::CalendarWeek => {
                today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()))
            }
            Window::CalendarMonth => today.with_day(1).unwrap_or(today),
        };
        localtime::instant(tz, day, NaiveTime::MIN)
    }
}

/// The first cap another message of `channel` / `message_type` would pass, if any, when it
/// may displace nothing.
pub fn reached<'a>(
    caps: &'a [Cap],
    history: &[Sent],
    channel: Channel,
    message_type: &str,
    tz: Tz,
    now: DateTime<Utc>,
) -> Option<&'a Cap> {
    match arbitrate(caps, history, channel, message_type, i32::MIN, tz, now) {
        Fit::Capped(cap) => Some(cap),
        Fit::Fits | Fit::Displacing(_) => None,
    }
}

/// Whether a message of `channel` / `message_type` from a journey of `priority` fits the caps
/// at `now`, and which queued messages of lower priority must yield their slots for it. Cap by
/// cap, the ones to yield are the lowest priority first, then the latest queued; a message
/// yielding for one cap leaves every window it was in.
pub fn arbitrate<'a>(
    caps: &'a [Cap],
    history: &[Sent],
    channel: Channel,
    message_type: &str,
    priority: i32,
    tz: Tz,
    now: DateTime<Utc>,
) -> Fit<'a> {
    let mut yielding: Vec<uuid::Uuid> = Vec::new();
    for cap in caps.iter().filter(|c| c.covers(channel, message_type)) {
        let since = cap.since(tz, now);
        let mut counted: Vec<&Sent> = history
            .iter()
            .filter(|s| s.at >= since && s.at <= now && cap.covers(s.channel, &s.message_type))
            .filter(|s| s.queued.is_none_or(|id| !yielding.contains(&id)))
            .collect();
        let over = (counted.len() + 1).saturating_sub(cap.max as usize);
        if over == 0 {
            continue;
        }
        counted.retain(|s| s.queued.is_some() && s.priority < priority);
        if counted.len() < over {
            return Fit::Capped(cap);
        }
        counted.sort_by(|a, b| {
            (a.priority, std::cmp::Reverse(a.at), a.queued).cmp(&(
                b.priority,
                std::cmp::Reverse(b.at),
                b.queued,
            ))
        });
        yielding.extend(counted.iter().take(over).filter_map(|s| s.queued));
    }
    if yielding.is_empty() {
        Fit::Fits
    } else {
        Fit::Displacing(yielding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sent(at: &str, channel: Channel, t: &str) -> Sent {
        Sent {
            at: utc(at),
            channel,
            message_type: t.into(),
            priority: 0,
            queued: None,
        }
    }

    #[test]
    fn a_calendar_day_is_the_customers_day_not_utcs() {
        let cap = [Cap {
            channel: Some(Channel::Email),
            message_type: None,
            max: 1,
            window: Window::CalendarDay,
        }];
        // One email at 2026-12-03 22:30 UTC.
        let history = [sent("2026-12-03T22:30:00Z", Channel::Email, "marketing")];
        let now = utc("2026-12-04T01:00:00Z");
        // In Tokyo it was already 12-04 07:30, the same local day as now (10:00): capped.
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        assert!(reached(&cap, &history, Channel::Email, "marketing", tokyo, now).is_some());
        // In New York it was 12-03 17:30, yesterday (now is 12-03 20:00… still 12-03): capped;
        // in Madrid it was 23:30 on 12-03 and now is 02:00 on 12-04: a new day, allowed.
        let madrid: Tz = "Europe/Madrid".parse().unwrap();
        assert!(reached(&cap, &history, Channel::Email, "marketing", madrid, now).is_none());
        let ny: Tz = "America/New_York".parse().unwrap();
        assert!(reached(&cap, &history, Channel::Email, "marketing", ny, now).is_some());
        // SMS is not covered by an email cap.
        assert!(reached(&cap, &history, Channel::Sms, "marketing", tokyo, now).is_none());
    }

    #[test]
    fn rolling_week_and_type_windows() {
        let tz: Tz = "UTC".parse().unwrap();
        let history = [
            sent("2026-11-30T10:00:00Z", Channel::Email, "newsletter"), // Monday
            sent("2026-12-02T08:00:00Z", Channel::Sms, "marketing"),    // 25 h before now
        ];
        let now = utc("2026-12-03T09:00:00Z");
        let rolling = [Cap {
            channel: None,
            message_type: None,
            max: 1,
            window: Window::RollingHours(24),
        }];
        assert!(reached(&rolling, &history, Channel::Email, "marketing", tz, now).is_none());
        let rolling48 = [Cap {
            window: Window::RollingHours(48),
            ..rolling[0].clone()
        }];
        assert!(reached(&rolling48, &history, Channel::Email, "marketing", tz, now).is_some());
        let week = [Cap {
            channel: None,
            message_type: Some("newsletter".into()),
            max: 1,
            window: Window::CalendarWeek,
        }];
        assert!(reached(&week, &history, Channel::Email, "newsletter", tz, now).is_some());
        assert!(reached(&week, &history, Channel::Email, "marketing", tz, now).is_none());
        let next_monday = utc("2026-12-07T00:00:00Z");
        assert!(reached(
            &week,
            &history,
            Channel::Email,
            "newsletter",
            tz,
            next_monday
        )
        .is_none());
        let month = [Cap {
            channel: None,
            message_type: None,
            max: 2,
            window: Window::CalendarMonth,
        }];
        // Only the December SMS is in December's window.
        assert!(reached(&month, &history, Channel::Email, "x", tz, now).is_none());
    }

    fn queued(at: &str, priority: i32, id: u128) -> Sent {
        Sent {
            priority,
            queued: Some(uuid::Uuid::from_u128(id)),
            ..sent(at, Channel::Email, "marketing")
        }
    }

    #[test]
    fn a_higher_priority_message_takes_the_slot_of_a_queued_lower_one() {
        let tz: Tz = "UTC".parse().unwrap();
        let now = utc("2026-12-03T09:00:00Z");
        let cap = [Cap {
            channel: Some(Channel::Email),
            message_type: None,
            max: 2,
            window: Window::RollingHours(24),
        }];
        // One sent (priority 9, gone), two queued: priorities 1 and 3.
        let history = [
            Sent {
                priority: 9,
                ..sent("2026-12-03T08:00:00Z", Channel::Email, "marketing")
            },
            queued("2026-12-03T08:30:00Z", 1, 1),
            queued("2026-12-03T08:40:00Z", 3, 3),
        ];
        let fit = |p| arbitrate(&cap, &history, Channel::Email, "marketing", p, tz, now);
        // Priority 5 needs two slots freed: both queued ones are lower.
        assert_eq!(
            fit(5),
            Fit::Displacing(vec![uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(3)])
        );
        // Priority 2 can displace only the priority-1 one: not enough.
        assert_eq!(fit(2), Fit::Capped(&cap[0]));
        // Equal priority never displaces: the earlier keeps its slot.
        assert_eq!(fit(1), Fit::Capped(&cap[0]));
        let roomy = [Cap {
            max: 3,
            ..cap[0].clone()
        }];
        let fit = arbitrate(&roomy, &history, Channel::Email, "marketing", 2, tz, now);
        assert_eq!(fit, Fit::Displacing(vec![uuid::Uuid::from_u128(1)]));
        let fit = arbitrate(&roomy, &history, Channel::Email, "marketing", 1, tz, now);
        assert_eq!(fit, Fit::Capped(&roomy[0]));
    }

    #[test]
    fn of_equal_priorities_the_latest_queued_yields_first() {
        let tz: Tz = "UTC".parse().unwrap();
        let now = utc("2026-12-03T09:00:00Z");
        let cap = [Cap {
            channel: None,
            message_type: None,
            max: 2,
            window: Window::CalendarDay,
        }];
        let history = [
            queued("2026-12-03T07:00:00Z", 1, 1),
            queued("2026-12-03T08:00:00Z", 1, 2),
        ];
        let fit = arbitrate(&cap, &history, Channel::Sms, "promo", 4, tz, now);
        assert_eq!(fit, Fit::Displacing(vec![uuid::Uuid::from_u128(2)]));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn cap() -> impl Strategy<Value = Cap> {
            (
                prop::option::of(prop_oneof![Just(Channel::Email), Just(Channel::Sms)]),
                prop::option::of(prop_oneof![Just("a".to_owned()), Just("b".to_owned())]),
                1u32..4,
                prop_oneof![
                    (1u32..72).prop_map(Window::RollingHours),
                    Just(Window::CalendarDay),
                    Just(Window::CalendarWeek),
                ],
            )
                .prop_map(|(channel, message_type, max, window)| Cap {
                    channel,
                    message_type,
                    max,
                    window,
                })
        }

        fn history() -> impl Strategy<Value = Vec<Sent>> {
            prop::collection::vec(
                (
                    0i64..(24 * 9),
                    prop_oneof![Just(Channel::Email), Just(Channel::Sms)],
                    prop_oneof![Just("a"), Just("b")],
                    0i32..4,
                    any::<bool>(),
                ),
                0..12,
            )
            .prop_map(|rows| {
                let now = utc("2026-12-03T09:00:00Z");
                rows.into_iter()
                    .enumerate()
                    .map(|(n, (hours, channel, t, priority, queued))| Sent {
                        at: now - Duration::hours(hours),
                        channel,
                        message_type: t.to_owned(),
                        priority,
                        queued: queued.then(|| uuid::Uuid::from_u128(n as u128 + 1)),
                    })
                    .collect()
            })
        }

        proptest! {
            /// Displacing the named messages makes room under every cap; only queued messages
            /// of lower priority are named; and a message is capped exactly when some cap is
            /// full of messages it may not displace.
            #[test]
            fn arbitration_frees_just_lower_queued_slots_and_refuses_only_when_it_must(
                caps in prop::collection::vec(cap(), 0..4),
                history in history(),
                priority in 0i32..4,
                email in any::<bool>(),
            ) {
                let now = utc("2026-12-03T09:00:00Z");
                let tz: Tz = "Europe/Madrid".parse().unwrap();
                let channel = if email { Channel::Email } else { Channel::Sms };
                let in_window = |cap: &Cap, s: &Sent| {
                    s.at >= cap.since(tz, now) && s.at <= now && cap.covers(s.channel, &s.message_type)
                };
                let hopeless = caps.iter().filter(|c| c.covers(channel, "a")).any(|c| {
                    let fixed = history
                        .iter()
                        .filter(|s| in_window(c, s))
                        .filter(|s| s.queued.is_none() || s.priority >= priority)
                        .count();
                    fixed >= c.max as usize
                });
                match arbitrate(&caps, &history, channel, "a", priority, tz, now) {
                    Fit::Capped(_) => prop_assert!(hopeless),
                    fit => {
                        prop_assert!(!hopeless);
                        let gone = match fit {
                            Fit::Displacing(ids) => ids,
                            _ => Vec::new(),
                        };
                        for id in &gone {
                            let s = history.iter().find(|s| s.queued == Some(*id)).unwrap();
                            prop_assert!(s.priority < priority);
                        }
                        for c in caps.iter().filter(|c| c.covers(channel, "a")) {
                            let left = history
                                .iter()
                                .filter(|s| in_window(c, s))
                                .filter(|s| s.queued.is_none_or(|id| !gone.contains(&id)))
                                .count();
                            prop_assert!(left < c.max as usize);
                        }
                    }
                }
            }
        }
    }
}
