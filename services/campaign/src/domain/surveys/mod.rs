//! Surveys and forms, the pure half (issue 18, item 5): a survey's definition and its checks
//! ([`definition`]), an answer checked against it and the traits it maps to ([`answer`]), and
//! the signed links that open a survey ([`links`]), and the NPS and per-question report folded from counted answers ([`report`]).

pub mod answer;
pub mod definition;
pub mod links;
pub mod report;
