//! Personalize's use cases: deciding offers for a customer ([`decide`]) and recording what
//! became of them ([`outcomes`]), over the catalogue kept in memory per tenant ([`cache`]).
//! The domain rules are in `domain::offers`; the SQL in `store::offers` and `store::decisions`.

pub mod cache;
pub mod decide;
pub mod outcomes;
