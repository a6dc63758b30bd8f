//! `crm-identity`: `serve` (default) or `migrate`.

use clap::{Parser, Subcommand};
use crm_config::Env;

#[derive(Parser)]
#[command(name = "crm-identity", about = "CRM identity part", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume crm.ingest.v1 and serve the internal API (default).
    Serve,
    /// Create the database if missing and apply migrations.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = crm_telemetry::init("crm-identity")?;
    let config = crm_identity::Config::from_env(&Env::from_process())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            crm_service::Base::migrate_only(&config.common, &crm_identity::MIGRATOR).await
        }
        Command::Serve => {
            let shutdown = crm_service::shutdown::on_signal();
            crm_identity::Application::build(config)
                .await?
                .run(shutdown)
                .await
        }
    }
}
