//! The vocabulary rules share with the parts that compute it: lifecycle stages (segmentation's
//! `domain::lifecycle` computes them) and RFM groups (its `domain::rfm` scores them).

use serde::{Deserialize, Serialize};

/// A customer's stage.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Known, never ordered.
    Prospect,
    /// First order within `new_days`.
    New,
    /// Ordered within `active_days`.
    Active,
    /// Last order older than `active_days`, not older than `lapsed_days`.
    AtRisk,
    /// Last order older than `lapsed_days`.
    Lapsed,
    /// Ordered within `active_days` after a gap longer than `lapsed_days`: won back.
    Reactivated,
}

impl Stage {
    /// Every stage, in funnel order.
    pub const ALL: [Stage; 6] = [
        Stage::Prospect,
        Stage::New,
        Stage::Active,
        Stage::AtRisk,
        Stage::Lapsed,
        Stage::Reactivated,
    ];

    /// The stage's name as stored and published.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prospect => "prospect",
            Stage::New => "new",
            Stage::Active => "active",
            Stage::AtRisk => "at_risk",
            Stage::Lapsed => "lapsed",
            Stage::Reactivated => "reactivated",
        }
    }

    /// The stage named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|stage| stage.as_str() == s)
    }
}

/// Named groups of the (R, F) grid (docs/segmentation.md shows the grid).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RfmGroup {
    /// Bought recently and often.
    Champions,
    /// Buy often, fairly recently.
    Loyal,
    /// Recent, a few purchases: could become loyal.
    PotentialLoyalists,
    /// Very recent, one purchase day.
    NewCustomers,
    /// Recent, one purchase day, not the newest.
    Promising,
    /// Middle recency and frequency.
    NeedAttention,
    /// Middle recency, low frequency: slipping away.
    AboutToSleep,
    /// Bought often, but long ago.
    AtRisk,
    /// Bought most often, but long ago.
    CannotLose,
    /// Long ago, few purchases.
    Hibernating,
    /// Longest ago, fewest purchases.
    Lost,
}

impl RfmGroup {
    /// Every group.
    pub const ALL: [RfmGroup; 11] = [
        RfmGroup::Champions,
        RfmGroup::Loyal,
        RfmGroup::PotentialLoyalists,
        RfmGroup::NewCustomers,
        RfmGroup::Promising,
        RfmGroup::NeedAttention,
        RfmGroup::AboutToSleep,
        RfmGroup::AtRisk,
        RfmGroup::CannotLose,
        RfmGroup::Hibernating,
        RfmGroup::Lost,
    ];

    /// The group's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RfmGroup::Champions => "champions",
            RfmGroup::Loyal => "loyal",
            RfmGroup::PotentialLoyalists => "potential_loyalists",
            RfmGroup::NewCustomers => "new_customers",
            RfmGroup::Promising => "promising",
            RfmGroup::NeedAttention => "need_attention",
            RfmGroup::AboutToSleep => "about_to_sleep",
            RfmGroup::AtRisk => "at_risk",
            RfmGroup::CannotLose => "cannot_lose",
            RfmGroup::Hibernating => "hibernating",
            RfmGroup::Lost => "lost",
        }
    }

    /// The group named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// The group of recency score `r` and frequency score `f` (both 1-5).
    pub fn of(r: u8, f: u8) -> Self {
        use RfmGroup::*;
        match (r, f) {
            (5, 4..=5) => Champions,
            (3..=4, 4..=5) => Loyal,
            (4..=5, 2..=3) => PotentialLoyalists,
            (5, 1) => NewCustomers,
            (4, 1) => Promising,
            (3, 3) => NeedAttention,
            (3, 1..=2) => AboutToSleep,
            (1..=2, 5) => CannotLose,
            (1..=2, 3..=4) => AtRisk,
            (1, 1) => Lost,
            _ => Hibernating,
        }
    }
}
