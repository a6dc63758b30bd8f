//! Starts the whole suite in one process (as the integration tests do) and keeps it running
//! until killed, for tools that test the API from outside: it prints
//! `CRM_GATEWAY=<url>` and `CRM_KEY=<admin key>` on stdout once ready (scripts/check-api-fuzz
//! runs schemathesis against it).
//!
//! Run: `cargo run -p crm-tests --example serve_suite` (with PostgreSQL, Redis and a broker
//! up, as for `scripts/test`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;

use crm_tests::Suite;

#[tokio::main]
async fn main() {
    let suite = Suite::start().await;
    println!("CRM_GATEWAY={}", suite.gateway);
    println!("CRM_KEY={}", suite.key);
    std::io::stdout().flush().unwrap();
    let _ = tokio::signal::ctrl_c().await;
    suite.stop().await;
}
