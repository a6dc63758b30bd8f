//! Segmentation's domain: values and rules with no I/O. The closed segment rule language
//! ([`rules`]: parse, validate, evaluate over a customer's [`facts`]), lifecycle stages,
//! RFM scores, lead scoring, the customer-value models ([`value`]), the tenant's settings and
//! the compiled [`model`] of a tenant's segments.

pub mod facts;
pub mod lead;
pub mod lifecycle;
pub mod model;
pub mod rfm;
pub mod rules;
pub mod settings;
pub mod value;
