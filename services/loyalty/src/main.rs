//! `crm-loyalty`: `serve` (default) or `migrate`.

use clap::{Parser, Subcommand};
use crm_config::Env;

#[derive(Parser)]
#[command(name = "crm-loyalty", about = "CRM loyalty part", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume its topics and serve the internal API (default).
    Serve,
    /// Create the database if missing and apply migrations.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = crm_telemetry::init("crm-loyalty")?;
    let config = crm_loyalty::Config::from_env(&Env::from_process())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            crm_service::Base::migrate_only(&config.common, &crm_loyalty::MIGRATOR).await
        }
        Command::Serve => {
            let shutdown = crm_service::shutdown::on_signal();
            crm_loyalty::Application::build(config)
                .await?
                .run(shutdown)
                .await
        }
    }
}
