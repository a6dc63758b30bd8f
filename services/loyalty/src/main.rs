//! `crm-loyalty`: `serve` (default), `migrate`, `verify` (see [`crm_loyalty::cli`]).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_loyalty::cli::run().await
}
