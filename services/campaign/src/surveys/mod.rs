//! Surveys and forms, the use cases (docs/surveys.md): answers taken through the gateway's
//! public route ([`answering`]). Links are minted by `domain::surveys::links`.

pub mod answering;
