//! What a message on `crm.profiles.v1` or `crm.events.v1` does to the contacts campaigns can
//! reach.

use crm_envelope::{Envelope, Topic};
use uuid::Uuid;

/// What a message does to the contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        (Topic::Events, _) => Effect::Activity,
        // Segments and loyalty feed journeys in a later issue.
        _ => return Ok(None),
    }))
}
