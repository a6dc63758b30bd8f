//! Campaign's domain: values and rules with no I/O. So far, what each message does to the
//! reachable contacts ([`contacts`]); journeys, the send gate, templates and channels join it
//! (issue 14), one folder per concern.

pub mod channels;
pub mod contacts;
pub mod conversations;
pub mod experiments;
pub mod gate;
pub mod journeys;
pub mod localtime;
pub mod offers;
pub mod pipeline;
pub mod report;
pub mod suppression;
pub mod surveys;
pub mod templates;
pub mod tracking;
/// Standard Webhooks signing and the retry schedule (shared with the gateway).
pub use crm_webhooks::signing as webhooks;
