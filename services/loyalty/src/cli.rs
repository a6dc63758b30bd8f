//! `crm-loyalty`'s command line: `serve` (default), `migrate`, `verify`.

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

/// Parses the process's arguments and runs the subcommand.
pub async fn run() -> anyhow::Result<()> {
    match Cli::parse()
        .command
        .unwrap_or(Command::Part(PartCommand::Serve))
    {
        Command::Part(command) => {
            run_part_command(
                "crm-loyalty",
                command,
                &crate::MIGRATOR,
                |config: crate::Config, shutdown| async move {
                    crate::build(config).await?.run(shutdown).await
                },
            )
            .await
        }
        Command::Verify => verify().await,
    }
}

/// `verify`: prints each violation and exits 1 when there is any.
async fn verify() -> anyhow::Result<()> {
    let config = crate::Config::from_env(&Env::from_process())?;
    let pool = crm_service::db::connect(&config.common().database_url, 2).await?;
    let violations = crate::verify::verify(&pool).await?;
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
