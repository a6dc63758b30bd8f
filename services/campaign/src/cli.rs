//! `crm-campaign`'s command line: `serve` (default) or `migrate`.

/// Parses the process's arguments and runs the subcommand.
pub async fn run() -> anyhow::Result<()> {
    crm_service::cli::run_part(
        "crm-campaign",
        "CRM campaign: campaigns, journeys, conversations",
        &crate::MIGRATOR,
        |config, shutdown| async move { crate::build(config).await?.run(shutdown).await },
    )
    .await
}
