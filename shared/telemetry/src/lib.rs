//! Telemetry for every part: one initialiser for logs and traces ([`init`]), W3C trace-context
//! propagation helpers that transports (HTTP, Kafka headers) adapt ([`propagation`]), and the
//! Prometheus metric families every part reports ([`Metrics`]).

#![forbid(unsafe_code)]

mod init;
mod metrics;
pub mod propagation;

pub use init::{init, init_for_tests, TelemetryGuard};
pub use metrics::Metrics;
