/// The topics of ARCHITECTURE.md. Their names take a deployment prefix (see `crm-kafka`), so
/// these are the logical names only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Everything that arrives from outside, before identity resolution.
    Ingest,
    /// Events after identity resolution, carrying `customer_id`.
    Events,
    /// Profile created, updated, merged, unmerged, erased.
    Profiles,
    /// Segment entered or exited, lifecycle stage and score changes.
    Segments,
    /// Points earned, redeemed, expired, reversed; tier changes; rewards.
    Loyalty,
    /// Messages, offers, surveys, conversations, opportunities.
    Interactions,
}

impl Topic {
    /// Every topic, in pipeline order.
    pub const ALL: [Topic; 6] = [
        Topic::Ingest,
        Topic::Events,
        Topic::Profiles,
        Topic::Segments,
        Topic::Loyalty,
        Topic::Interactions,
    ];

    /// The logical name, without prefix.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Ingest => "crm.ingest.v1",
            Topic::Events => "crm.events.v1",
            Topic::Profiles => "crm.profiles.v1",
            Topic::Segments => "crm.segments.v1",
            Topic::Loyalty => "crm.loyalty.v1",
            Topic::Interactions => "crm.interactions.v1",
        }
    }

    /// The topic with this logical name, if any.
    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }
}
