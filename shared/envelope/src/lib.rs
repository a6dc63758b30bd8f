//! The contract between the parts of the CRM suite: the event envelope carried on every Kafka
//! topic, the topics themselves, and the domain types that every part parses at its edge
//! ("parse, don't validate"): a value of these types is always valid.

#![forbid(unsafe_code)]

pub mod cloudevents;
mod envelope;
mod ingest;
mod pii;
mod profile;
pub mod segment;
mod tenant;
mod topic;

pub use envelope::{Envelope, Handle, Identity};
pub use ingest::{parse_ingest_event, EventError, IngestLimits, MAX_BATCH_EVENTS, MAX_EVENT_BYTES};
pub use pii::Pii;
pub use profile::{Profile, ProfileIdentifier, UnattachedIdentifier};
pub use tenant::{TenantId, TenantIdError};
pub use topic::Topic;
