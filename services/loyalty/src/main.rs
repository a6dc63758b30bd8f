//! `crm-loyalty`: `serve` (default) or `migrate`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_service::cli::run_part(
        "crm-loyalty",
        "CRM loyalty: programmes, points, tiers, rewards",
        &crm_loyalty::MIGRATOR,
        |config, shutdown| async move { crm_loyalty::build(config).await?.run(shutdown).await },
    )
    .await
}
