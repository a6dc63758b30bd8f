//! A journey's lifecycle: drafted, published, paused, archived. Only a draft's definition is
//! edited; publishing freezes it as a new version; pausing stops entries and sends (instances
//! keep their place); archiving is final.

use serde::{Deserialize, Serialize};

/// Where a journey is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = JourneyStatus)]
pub enum Status {
    /// Never published.
    Draft,
    /// Live: customers enter and instances run.
    Published,
    /// No entries, no sends; instances wait where they are.
    Paused,
    /// Over, for good.
    Archived,
}

impl Status {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Published => "published",
            Status::Paused => "paused",
            Status::Archived => "archived",
        }
    }

    /// From storage.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(Status::Draft),
            "published" => Some(Status::Published),
            "paused" => Some(Status::Paused),
            "archived" => Some(Status::Archived),
            _ => None,
        }
    }
}

/// What a user asks of a journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Freeze the draft as a new version and make it live.
    Publish,
    /// Stop entries and sends.
    Pause,
    /// Go live again (the published version).
    Resume,
    /// End for good.
    Archive,
}

/// The status after `action`, or why it is not allowed.
pub fn transition(from: Status, action: Action) -> Result<Status, &'static str> {
    match (from, action) {
        (Status::Archived, _) => Err("the journey is archived; copy it to change it"),
        (Status::Draft | Status::Published | Status::Paused, Action::Publish) => {
            Ok(Status::Published)
        }
        (Status::Published, Action::Pause) => Ok(Status::Paused),
        (_, Action::Pause) => Err("only a published journey can be paused"),
        (Status::Paused, Action::Resume) => Ok(Status::Published),
        (_, Action::Resume) => Err("only a paused journey can be resumed"),
        (_, Action::Archive) => Ok(Status::Archived),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_and_refused_moves() {
        use Action::*;
        use Status::*;
        assert_eq!(transition(Draft, Publish), Ok(Published));
        assert_eq!(transition(Published, Publish), Ok(Published));
        assert_eq!(transition(Published, Pause), Ok(Paused));
        assert_eq!(transition(Paused, Resume), Ok(Published));
        assert_eq!(transition(Paused, Publish), Ok(Published));
        assert_eq!(transition(Draft, Archive), Ok(Archived));
        assert!(transition(Draft, Pause).is_err());
        assert!(transition(Published, Resume).is_err());
        for a in [Publish, Pause, Resume, Archive] {
            assert!(transition(Archived, a).is_err());
        }
        for s in [Draft, Published, Paused, Archived] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
