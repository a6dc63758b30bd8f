//! Leads: where they come from, the statuses they move through and which moves are allowed.
//! One lead per customer and source is open at a time; `converted` and `disqualified` close
//! it (a later qualification opens a new one).

use serde::{Deserialize, Serialize};

/// Where a lead came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeadSource {
    /// Segmentation's lead score crossed the tenant's threshold (`lead.qualified`).
    Score,
    /// A form.
    Form,
    /// A survey answer.
    Survey,
    /// A prospect found on a social network.
    Social,
    /// A journey's action.
    Journey,
    /// An import.
    Import,
    /// Created through the API.
    Api,
}

impl LeadSource {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Score => "score",
            Self::Form => "form",
            Self::Survey => "survey",
            Self::Social => "social",
            Self::Journey => "journey",
            Self::Import => "import",
            Self::Api => "api",
        }
    }

    /// The source stored under `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Score,
            Self::Form,
            Self::Survey,
            Self::Social,
            Self::Journey,
            Self::Import,
            Self::Api,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// A lead's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    /// Nobody owns it yet.
    New,
    /// An owner has it and has not touched it yet (its first-touch SLA runs).
    Assigned,
    /// Its owner is working it (the first touch happened).
    Working,
    /// It became an opportunity (closed).
    Converted,
    /// Not worth pursuing, for a reason of the tenant's list (closed).
    Disqualified,
}

impl LeadStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Assigned => "assigned",
            Self::Working => "working",
            Self::Converted => "converted",
            Self::Disqualified => "disqualified",
        }
    }

    /// The status stored under `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::New,
            Self::Assigned,
            Self::Working,
            Self::Converted,
            Self::Disqualified,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Converted or disqualified: the lead is closed.
    pub fn closed(self) -> bool {
        matches!(self, Self::Converted | Self::Disqualified)
    }

    /// Whether the first touch has not happened (the first-touch SLA runs).
    pub fn untouched(self) -> bool {
        matches!(self, Self::New | Self::Assigned)
    }
}

/// Why a move is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    /// The lead is closed.
    #[error("the lead is {0} and closed; a new lead opens when the customer qualifies again")]
    Closed(&'static str),
    /// `assigned` needs an owner.
    #[error("`assigned` needs an `owner`")]
    NoOwner,
    /// `disqualified` needs a reason of the tenant's list.
    #[error("`disqualified` needs a `reason` among the tenant's disqualify reasons: {0}")]
    Reason(String),
    /// Converting goes through `/convert`, which creates the opportunity.
    #[error("a lead is converted by POST /v1/leads/{{id}}/convert, which creates its opportunity")]
    ConvertByEndpoint,
    /// Back to `new` or `assigned` from `working` would restart the first-touch SLA.
    #[error("a lead being worked does not go back to {0}")]
    Backwards(&'static str),
}

/// Checks a move from `from` to `to`; `owner` is the owner after the move, `reason` the
/// disqualify reason given, `reasons` the tenant's list.
pub fn check_move(
    from: LeadStatus,
    to: LeadStatus,
    owner: Option<&str>,
    reason: Option<&str>,
    reasons: &[String],
) -> Result<(), MoveError> {
    if from.closed() {
        return Err(MoveError::Closed(from.as_str()));
    }
    match to {
        LeadStatus::Converted => Err(MoveError::ConvertByEndpoint),
        LeadStatus::Disqualified => match reason {
            Some(r) if reasons.iter().any(|x| x == r) => Ok(()),
            _ => Err(MoveError::Reason(reasons.join(", "))),
        },
        LeadStatus::Assigned | LeadStatus::New if from == LeadStatus::Working => {
            Err(MoveError::Backwards(to.as_str()))
        }
        LeadStatus::Assigned | LeadStatus::Working if owner.is_none() => Err(MoveError::NoOwner),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::LeadStatus::*;
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [New, Assigned, Working, Converted, Disqualified] {
            assert_eq!(LeadStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in [
            LeadSource::Score,
            LeadSource::Form,
            LeadSource::Survey,
            LeadSource::Social,
            LeadSource::Journey,
            LeadSource::Import,
            LeadSource::Api,
        ] {
            assert_eq!(LeadSource::parse(s.as_str()), Some(s));
        }
        assert_eq!(LeadStatus::parse("open"), None);
    }

    #[test]
    fn moves_follow_the_rules() {
        let reasons = vec!["no budget".to_string(), "spam".to_string()];
        let ok = |from, to, owner, reason| check_move(from, to, owner, reason, &reasons);
        assert_eq!(ok(New, Assigned, Some("ana"), None), Ok(()));
        assert_eq!(ok(New, Assigned, None, None), Err(MoveError::NoOwner));
        assert_eq!(ok(Assigned, Working, Some("ana"), None), Ok(()));
        assert_eq!(ok(Assigned, Assigned, Some("bo"), None), Ok(()));
        assert_eq!(ok(Working, Working, Some("bo"), None), Ok(()));
        assert_eq!(
            ok(Working, Assigned, Some("bo"), None),
            Err(MoveError::Backwards("assigned"))
        );
        assert_eq!(ok(Working, Disqualified, Some("bo"), Some("spam")), Ok(()));
        assert!(matches!(
            ok(Working, Disqualified, Some("bo"), Some("rude")),
            Err(MoveError::Reason(_))
        ));
        assert!(matches!(
            ok(New, Disqualified, None, None),
            Err(MoveError::Reason(_))
        ));
        assert_eq!(
            ok(Working, Converted, Some("bo"), None),
            Err(MoveError::ConvertByEndpoint)
        );
        assert_eq!(
            ok(Disqualified, New, None, None),
            Err(MoveError::Closed("disqualified"))
        );
        assert_eq!(
            ok(Converted, Working, Some("bo"), None),
            Err(MoveError::Closed("converted"))
        );
    }
}
