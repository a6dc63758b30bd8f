//! `crm-segmentation`: `serve` (default), `migrate`, `fit`, `score`. (see [`crm_segmentation::cli`]).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_segmentation::cli::run().await
}
