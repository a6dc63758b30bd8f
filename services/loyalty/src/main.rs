//! `crm-loyalty`: `serve` (default), `migrate`, `verify`.

use clap::{Parser, Subcommand};
use crm_config::Env;
use crm_service::cli::{run_part_command, PartCommand};
use crm_service::PartConfig;

#[derive(Parser)]
#[command(
    name = "crm-loyalty",
    about = "CRM loyalty: programmes, points ledger, tiers, rewards",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Part(PartCommand),
    /// Check every ledger invariant against the database (transactions balance, balances equal
    /// their entries, no forbidden negative balance, lots and reservations reconcile); exits
    /// with status 1 on any violation.
    Verify,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse()
        .command
        .unwrap_or(Command::Part(PartCommand::Serve))
    {
        Command::Part(command) => {
            run_part_command(
                "crm-loyalty",
                command,
                &crm_loyalty::MIGRATOR,
                |config: crm_loyalty::Config, shutdown| async move {
                    crm_loyalty::build(config).await?.run(shutdown).await
                },
            )
            .await
        }
        Command::Verify => {
            let config = crm_loyalty::Config::from_env(&Env::from_process())?;
            let pool = crm_service::db::connect(&config.common().database_url, 2).await?;
            let violations = crm_loyalty::verify::verify(&pool).await?;
            if violations.is_empty() {
                println!("ledger verified: every invariant holds");
                return Ok(());
            }
            for v in &violations {
                println!("{}: {}", v.invariant, v.detail);
            }
            eprintln!("{} violation(s)", violations.len());
            std::process::exit(1);
        }
    }
}
