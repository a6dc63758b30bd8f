//! `crm-segmentation`: `serve` (default) or `migrate`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_service::cli::run_part(
        "crm-segmentation",
        "CRM segmentation: aggregates, segments, scores",
        &crm_segmentation::MIGRATOR,
        |config, shutdown| async move { crm_segmentation::build(config).await?.run(shutdown).await },
    )
    .await
}
