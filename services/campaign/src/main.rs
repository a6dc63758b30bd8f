//! `crm-campaign`: `serve` (default) or `migrate`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_service::cli::run_part(
        "crm-campaign",
        "CRM campaign: campaigns, journeys, conversations",
        &crm_campaign::MIGRATOR,
        |config, shutdown| async move { crm_campaign::build(config).await?.run(shutdown).await },
    )
    .await
}
