//! `crm-identity`: `serve` (default) or `migrate`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_service::cli::run_part(
        "crm-identity",
        "CRM identity: resolves ingested events to customers and keeps their profiles",
        &crm_identity::MIGRATOR,
        |config, shutdown| async move { crm_identity::build(config).await?.run(shutdown).await },
    )
    .await
}
