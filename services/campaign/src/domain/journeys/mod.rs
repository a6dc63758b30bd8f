//! The journey language: a journey is JSON in a closed, typed vocabulary (like segment rules),
//! checked when it is saved ([`validate`]), never executed as code. A journey has one trigger,
//! entry rules, exit criteria, an optional goal, and a graph of named nodes: waits, branches,
//! weighted splits and actions, each naming the node that follows.
//!
//! ```json
//! {"name": "Welcome", "time_zone": "Europe/Madrid",
//!  "trigger": {"event": {"name": "Signed Up"}},
//!  "entry": {"reentry": "never"},
//!  "exit": [{"event": {"name": "Unsubscribed"}}],
//!  "goal": {"event": "Order Completed", "within_days": 14},
//!  "start": "hello",
//!  "nodes": {
//!    "hello": {"send": {"template": "welcome", "channel": "email", "next": "wait"}},
//!    "wait": {"wait": {"minutes": 1440, "next": "bought"}},
//!    "bought": {"branch": {"if": {"event_seen": {"name": "Order Completed"}},
//!                          "then": "done", "else": "nudge"}},
//!    "nudge": {"send": {"template": "first-order", "channel": "email", "next": "done"}},
//!    "done": "exit"}}
//! ```

pub mod cron;
pub mod lifecycle;
pub mod signal;
pub mod step;
pub mod timed;
pub mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use validate::{parse, JourneyError, Limits};

/// A journey definition (one version of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = JourneyDefinition, example = json!({"name": "Welcome", "time_zone": "Europe/Madrid",
    "trigger": {"event": {"name": "Signed Up"}}, "start": "hello",
    "nodes": {"hello": {"send": {"template": "welcome", "channel": "email", "next": "done"}}, "done": "exit"}}))]
pub struct Journey {
    /// Shown in lists and reports.
    pub name: String,
    /// IANA time zone for schedules and for customers without a `timezone` trait.
    pub time_zone: String,
    /// Higher goes first when frequency caps must choose between journeys (default 0).
    #[serde(default)]
    pub priority: i32,
    /// What starts an instance: `{"event": {"name", "where", "key"}}`, `{"segment_entered": {...}}`,
    /// `{"schedule": {...}}`, `{"date_trait": {...}}` or `{"stage_changed": {...}}` (docs/campaign.md).
    #[schema(value_type = Object)]
    pub trigger: Trigger,
    /// Who may enter, and again.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub entry: Entry,
    /// What ends an instance early, checked on every event (pending waits are cancelled).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub exit: Vec<ExitCriterion>,
    /// The conversion the journey is measured by, in every arm and in the holdout.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub goal: Option<Goal>,
    /// Share of entrants (0 to 50 percent) held out as this journey's control group.
    #[serde(default)]
    pub holdout_percent: u8,
    /// The first node.
    pub start: String,
    /// The nodes by name: `wait`, `wait_until`, `wait_for`, `branch`, `split`, `send`,
    /// `set_trait`, `add_points`, `webhook`, `exit` (docs/campaign.md).
    #[schema(value_type = BTreeMap<String, Object>)]
    pub nodes: BTreeMap<String, Node>,
}

/// What starts an instance of a journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// An event, with property filters (all must hold).
    Event {
        /// The event name.
        name: String,
        /// Filters on its properties.
        #[serde(default, rename = "where")]
        filters: Vec<PropertyFilter>,
        /// A property whose value keys the instance (one live instance per key); default: one
        /// per customer.
        #[serde(default)]
        entry_key: Option<String>,
    },
    /// The customer entered a segment (`crm.segments.v1`).
    SegmentEntered {
        /// The segment.
        segment: Uuid,
    },
    /// The customer left a segment.
    SegmentExited {
        /// The segment.
        segment: Uuid,
    },
    /// Every member of a segment, on a schedule in the journey's time zone.
    Schedule {
        /// Five-field cron (`minute hour day-of-month month day-of-week`).
        cron: String,
        /// The segment whose members enter.
        segment: Uuid,
    },
    /// A date trait (birthday, renewal) with an offset in days, at a local time.
    DateTrait {
        /// The trait holding `YYYY-MM-DD` (or `MM-DD` for yearly dates).
        name: String,
        /// Days after the date (negative: before).
        #[serde(default)]
        offset_days: i32,
        /// Local time of day, `HH:MM`.
        at: String,
    },
    /// The customer's lifecycle stage changed to one of these (win-back of `lapsed`).
    StageChanged {
        /// The stages.
        to: Vec<String>,
    },
}

/// A filter on an event property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyFilter {
    /// The property (`plan`, or `items.sku` for a list of objects).
    pub property: String,
    /// How it is compared.
    pub op: Op,
    /// The value compared with (absent for `exists`).
    #[serde(default)]
    pub value: Option<Value>,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than (numbers).
    Gt,
    /// At least (numbers).
    Gte,
    /// Less than (numbers).
    Lt,
    /// At most (numbers).
    Lte,
    /// One of a list.
    In,
    /// Contains a substring (strings).
    Contains,
    /// Present.
    Exists,
}

/// Entry rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Whether a customer may enter again.
    #[serde(default)]
    pub reentry: Reentry,
    /// With `after_exit`: hours that must pass after the exit.
    #[serde(default)]
    pub cooldown_hours: Option<u32>,
}

/// Re-entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Reentry {
    /// Once per customer, ever.
    #[default]
    Never,
    /// Again once the previous instance has exited (and the cooldown has passed).
    AfterExit,
}

/// What ends an instance early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExitCriterion {
    /// An event (with filters).
    Event {
        /// The event name.
        name: String,
        /// Filters on its properties.
        #[serde(default, rename = "where")]
        filters: Vec<PropertyFilter>,
    },
    /// The customer left a segment.
    LeftSegment {
        /// The segment.
        segment: Uuid,
    },
    /// The goal was reached.
    GoalReached,
}

/// The journey's goal: an event within a window after entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    /// The event name (`Order Completed`).
    pub event: String,
    /// Days after entry in which it counts.
    pub within_days: u32,
}

/// A node of the journey graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Node {
    /// Wait a duration.
    Wait {
        /// Minutes.
        minutes: u32,
        /// The next node.
        next: String,
    },
    /// Wait until a local time of day (and, if given, one of these days of the week) in the
    /// customer's time zone; a local time that does not exist that day moves forward.
    WaitUntil {
        /// `HH:MM`.
        time: String,
        /// `mon` … `sun`; empty: any day.
        #[serde(default)]
        days: Vec<Weekday>,
        /// The next node.
        next: String,
    },
    /// Wait until a date trait (with an offset in days), at a local time.
    WaitUntilDate {
        /// The trait.
        name: String,
        /// Days after the date (negative: before).
        #[serde(default)]
        offset_days: i32,
        /// `HH:MM`.
        at: String,
        /// The next node; also taken at once when the trait is missing or past.
        next: String,
    },
    /// Wait for an event or a segment change, with a timeout branch.
    WaitFor {
        /// What is waited for.
        #[serde(rename = "for")]
        what: Awaited,
        /// Minutes before giving up.
        timeout_minutes: u32,
        /// Taken when it happens.
        next: String,
        /// Taken at the timeout.
        timeout_next: String,
    },
    /// A branch on the profile at the moment the node runs.
    Branch {
        /// The condition.
        #[serde(rename = "if")]
        condition: Condition,
        /// Taken when it holds.
        then: String,
        /// Taken when it does not.
        #[serde(rename = "else")]
        otherwise: String,
    },
    /// A weighted A/B/n split, by a salted hash of the customer id (stable per customer).
    Split {
        /// The arms.
        arms: Vec<Arm>,
    },
    /// Send a message through the send gate.
    Send {
        /// The template's key.
        template: String,
        /// The channel.
        channel: Channel,
        /// Transactional messages are exempt from frequency caps (not from consent).
        #[serde(default)]
        transactional: bool,
        /// In quiet hours, `defer` (sent when they end) or `drop` this message; absent: the
        /// tenant's contact policy decides.
        #[serde(default)]
        quiet_hours: Option<crate::domain::gate::quiet::Policy>,
        /// A placement whose best offer for the customer, decided when the message is sent,
        /// the template shows as `offer` (`offer.name`, `offer.content.*`); absent: no offer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offer_placement: Option<String>,
        /// A survey the template links to as `survey_url`: a personal link for the customer,
        /// one answer per message (docs/surveys.md); absent: no link.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        survey: Option<uuid::Uuid>,
        /// The next node (taken whether the message was sent or skipped).
        next: String,
    },
    /// Set a trait on the customer's profile.
    SetTrait {
        /// The trait.
        name: String,
        /// Its value.
        value: Value,
        /// The next node.
        next: String,
    },
    /// Add loyalty points (published as an event loyalty earns from).
    AddPoints {
        /// Points, 1 to 100,000.
        points: u32,
        /// Shown on the statement.
        reason: String,
        /// The next node.
        next: String,
    },
    /// Open a lead for the customer (source `journey`), assigned by the tenant's rules;
    /// nothing when one from a journey is open.
    OpenLead {
        /// The campaign the lead is attributed to (default: the journey's name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        campaign: Option<String>,
        /// The next node.
        next: String,
    },
    /// Call a webhook channel (signed per the Standard Webhooks specification).
    Webhook {
        /// The webhook channel's key.
        channel: String,
        /// The next node.
        next: String,
    },
    /// The instance ends.
    Exit,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// What a `wait_for` node waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Awaited {
    /// An event.
    Event {
        /// The event name.
        name: String,
        /// Filters on its properties.
        #[serde(default, rename = "where")]
        filters: Vec<PropertyFilter>,
    },
    /// Entering a segment.
    SegmentEntered {
        /// The segment.
        segment: Uuid,
    },
    /// Leaving a segment.
    SegmentExited {
        /// The segment.
        segment: Uuid,
    },
}

/// A condition on the customer, evaluated when a branch runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// All hold.
    All(Vec<Condition>),
    /// At least one holds.
    Any(Vec<Condition>),
    /// Does not hold.
    Not(Box<Condition>),
    /// A trait compared with a value.
    Trait {
        /// The trait.
        name: String,
        /// How it is compared.
        op: Op,
        /// The value (absent for `exists`).
        #[serde(default)]
        value: Option<Value>,
    },
    /// Member of a segment.
    InSegment {
        /// The segment.
        segment: Uuid,
    },
    /// In one of these lifecycle stages.
    Stage {
        /// The stages.
        #[serde(rename = "in")]
        stages: Vec<String>,
    },
    /// In one of these loyalty tiers.
    Tier {
        /// The tiers.
        #[serde(rename = "in")]
        tiers: Vec<String>,
    },
    /// Predicted customer value compared with a number.
    Value {
        /// How it is compared (`gt`, `gte`, `lt`, `lte`).
        op: Op,
        /// The number.
        value: f64,
    },
    /// Consent given for a purpose on a channel.
    Consent {
        /// The purpose (`marketing`).
        purpose: String,
        /// The channel.
        channel: Channel,
    },
    /// The customer did this event since entering the journey.
    EventSeen {
        /// The event name.
        name: String,
    },
    /// The message sent by that `send` node was opened.
    Opened {
        /// The `send` node.
        node: String,
    },
    /// A link of the message sent by that `send` node was clicked.
    Clicked {
        /// The `send` node.
        node: String,
    },
}

/// One arm of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Shown in the report (`A`, `B`).
    pub name: String,
    /// Relative weight, 1 to 100.
    pub weight: u32,
    /// The arm's first node.
    pub next: String,
}

/// A channel a message goes through.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Email over SMTP.
    Email,
    /// SMS through a provider.
    Sms,
    /// Push through a provider.
    Push,
}

impl Journey {
    /// Whether a branch reads opens or clicks of the journey's messages.
    pub fn reads_engagement(&self) -> bool {
        fn reads(c: &Condition) -> bool {
            match c {
                Condition::All(cs) | Condition::Any(cs) => cs.iter().any(reads),
                Condition::Not(c) => reads(c),
                Condition::Opened { .. } | Condition::Clicked { .. } => true,
                _ => false,
            }
        }
        self.nodes.values().any(|n| match n {
            Node::Branch { condition, .. } => reads(condition),
            _ => false,
        })
    }
}

impl Node {
    /// The nodes this one can lead to, with the field that names each.
    pub fn successors(&self) -> Vec<(&'static str, &str)> {
        match self {
            Node::Wait { next, .. }
            | Node::WaitUntil { next, .. }
            | Node::WaitUntilDate { next, .. }
            | Node::Send { next, .. }
            | Node::SetTrait { next, .. }
            | Node::AddPoints { next, .. }
            | Node::OpenLead { next, .. }
            | Node::Webhook { next, .. } => vec![("next", next.as_str())],
            Node::WaitFor {
                next, timeout_next, ..
            } => vec![
                ("next", next.as_str()),
                ("timeout_next", timeout_next.as_str()),
            ],
            Node::Branch {
                then, otherwise, ..
            } => vec![("then", then.as_str()), ("else", otherwise.as_str())],
            Node::Split { arms } => arms.iter().map(|a| ("next", a.next.as_str())).collect(),
            Node::Exit => Vec::new(),
        }
    }

    /// The node's key in JSON (`wait`, `send`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Wait { .. } => "wait",
            Node::WaitUntil { .. } => "wait_until",
            Node::WaitUntilDate { .. } => "wait_until_date",
            Node::WaitFor { .. } => "wait_for",
            Node::Branch { .. } => "branch",
            Node::Split { .. } => "split",
            Node::Send { .. } => "send",
            Node::SetTrait { .. } => "set_trait",
            Node::AddPoints { .. } => "add_points",
            Node::OpenLead { .. } => "open_lead",
            Node::Webhook { .. } => "webhook",
            Node::Exit => "exit",
        }
    }
}
