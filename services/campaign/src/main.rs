//! `crm-campaign`: `serve` (default) or `migrate` (see [`crm_campaign::cli`]).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_campaign::cli::run().await
}
