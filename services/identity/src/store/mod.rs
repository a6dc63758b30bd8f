//! Identity's storage: one module per table group in PostgreSQL, and the hot profiles in
//! Redis ([`hot`]).

pub(crate) mod accounts;
pub mod hot;
pub mod match_keys;
pub(crate) mod owned;
pub(crate) mod owners;
pub(crate) mod profile;
pub mod prospects;
pub mod search;
pub mod settings;
pub mod timeline;
