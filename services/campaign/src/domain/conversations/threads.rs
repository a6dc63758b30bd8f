//! Conversation threads, the pure rules: which mentions open one and at what priority, the
//! statuses and the moves between them, and the first-reply and resolution SLAs.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::mention::{Mention, MentionKind};

/// A thread's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ConversationStatus)]
pub enum Status {
    /// Waiting for the brand.
    Open,
    /// Waiting for the contact.
    Pending,
    /// Put aside until a time.
    Snoozed,
    /// Done (a new message opens a new thread).
    Resolved,
}

impl Status {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pending => "pending",
            Self::Snoozed => "snoozed",
            Self::Resolved => "resolved",
        }
    }
}

/// A thread's priority.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[schema(as = ConversationPriority)]
pub enum Priority {
    /// Low.
    Low,
    /// Normal.
    Normal,
    /// High.
    High,
    /// Urgent.
    Urgent,
}

impl Priority {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    /// The priority stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Self::Low),
            "normal" => Some(Self::Normal),
            "high" => Some(Self::High),
            "urgent" => Some(Self::Urgent),
            _ => None,
        }
    }

    /// Hours to resolution at this priority.
    pub fn resolution_hours(self) -> i64 {
        match self {
            Self::Urgent => 4,
            Self::High => 8,
            Self::Normal => 24,
            Self::Low => 72,
        }
    }

    /// Minutes to the first reply at this priority.
    pub fn first_reply_minutes(self) -> i64 {
        match self {
            Self::Urgent => 30,
            Self::High => 60,
            Self::Normal => 240,
            Self::Low => 1_440,
        }
    }
}

/// Whether a mention opens (or joins) a thread, and at what priority: a direct message always
/// (normal, high when negative); a public mention of the brand when negative (high, urgent at
/// -0.6 or below); other mentions are listening, not conversation.
pub fn opens(m: &Mention, sentiment: f64) -> Option<Priority> {
    let negative = sentiment <= -0.05;
    match m.kind {
        MentionKind::DirectMessage if negative => Some(Priority::High),
        MentionKind::DirectMessage => Some(Priority::Normal),
        MentionKind::Mention | MentionKind::Post if sentiment <= -0.6 => Some(Priority::Urgent),
        MentionKind::Mention | MentionKind::Post if negative => Some(Priority::High),
        _ => None,
    }
}

/// When a first reply is due for a contact waiting since `since` at `priority`.
pub fn first_reply_due(since: DateTime<Utc>, priority: Priority) -> DateTime<Utc> {
    since + Duration::minutes(priority.first_reply_minutes())
}

/// When a thread opened (or reopened) at `since` with `priority` is due to be resolved.
pub fn resolution_due(since: DateTime<Utc>, priority: Priority) -> DateTime<Utc> {
    since + Duration::hours(priority.resolution_hours())
}

/// Whether a thread may move from `from` to `to` (a resolved thread stays resolved: the next
/// message opens a new one).
pub fn may_move(from: Status, to: Status) -> bool {
    from != Status::Resolved || to == Status::Resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mention(kind: MentionKind) -> Mention {
        Mention {
            network: "x".into(),
            external_id: "1".into(),
            handle: "bo".into(),
            author_name: None,
            author_id: None,
            text: String::new(),
            url: None,
            language: None,
            posted_at: Utc::now(),
            kind,
            hashtags: vec![],
            mentions: vec![],
            email: None,
        }
    }

    #[test]
    fn negative_mentions_and_direct_messages_open_threads() {
        assert_eq!(
            opens(&mention(MentionKind::Mention), -0.3),
            Some(Priority::High)
        );
        assert_eq!(
            opens(&mention(MentionKind::Mention), -0.8),
            Some(Priority::Urgent)
        );
        assert_eq!(opens(&mention(MentionKind::Mention), 0.6), None);
        assert_eq!(
            opens(&mention(MentionKind::DirectMessage), 0.0),
            Some(Priority::Normal)
        );
        assert_eq!(
            opens(&mention(MentionKind::DirectMessage), -0.2),
            Some(Priority::High)
        );
        let t = Utc::now();
        assert_eq!(first_reply_due(t, Priority::High), t + Duration::hours(1));
        assert!(!may_move(Status::Resolved, Status::Open));
        assert!(may_move(Status::Snoozed, Status::Open));
        assert!(Priority::Urgent > Priority::High);
    }
}
