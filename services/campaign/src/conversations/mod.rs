//! Conversations and social listening, the use cases (issue 18): connectors to social networks
//! and the inbound email webhook ([`listening`]), whose signed calls become `Social Mention` or
//! `Email Received` events on `crm.ingest.v1` and messages in conversation threads; and the
//! brand's replies, queued by agents and sent by the reply loop ([`replies`]).

pub mod listening;
pub mod replies;
