//! `crm-identity`: `serve` (default), `migrate`, `dedupe`, `import`, `cleanup`. (see [`crm_identity::cli`]).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_identity::cli::run().await
}
