//! Conversations and social listening, the use cases (issue 18): connectors to social networks
//! and the inbound email webhook ([`listening`]), whose signed calls become `Social Mention` or
//! `Email Received` events on `crm.ingest.v1` and messages in conversation threads; and the
//! brand's replies, queued by agents and sent by the reply loop ([`replies`]); and the agents'
//! changes of a thread on the contact's timeline ([`changes`]).

pub mod changes;
pub mod listening;
pub mod replies;
