//! The command line every part's binary shares: `serve` (the default) and `migrate`.

use std::future::Future;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use crm_config::Env;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

use crate::{shutdown, Base, PartConfig};

/// The subcommands of every part.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum PartCommand {
    /// Serve the part's HTTP API and consume its topics, if it has any (the default).
    Serve,
    /// Create the part's database if missing and apply its migrations.
    Migrate,
}

#[derive(Parser)]
struct PartCli {
    #[command(subcommand)]
    command: Option<PartCommand>,
}

/// The whole `main` of a part: parses the command line (named `name`), initialises telemetry,
/// reads the configuration, then migrates, or serves with `serve` until SIGTERM or Ctrl-C.
pub async fn run_part<C, F, Fut>(
    name: &'static str,
    about: &'static str,
    migrator: &Migrator,
    serve: F,
) -> anyhow::Result<()>
where
    C: PartConfig,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let matches = PartCli::command()
        .name(name)
        .bin_name(name)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
        .get_matches();
    let cli = PartCli::from_arg_matches(&matches)?;
    run_part_command(
        name,
        cli.command.unwrap_or(PartCommand::Serve),
        migrator,
        serve,
    )
    .await
}

/// Runs one of the shared subcommands of the part `name` (for binaries that parse a command
/// line of their own): initialises telemetry, reads the configuration, then migrates or serves.
pub async fn run_part_command<C, F, Fut>(
    name: &'static str,
    command: PartCommand,
    migrator: &Migrator,
    serve: F,
) -> anyhow::Result<()>
where
    C: PartConfig,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let _telemetry = crm_telemetry::init(name)?;
    let config = C::from_env(&Env::from_process())?;
    run_command(command, config, migrator, serve).await
}

/// Runs one of the shared subcommands with a configuration already read (for binaries that
/// have subcommands of their own beside these).
pub async fn run_command<C, F, Fut>(
    command: PartCommand,
    config: C,
    migrator: &Migrator,
    serve: F,
) -> anyhow::Result<()>
where
    C: PartConfig,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    match command {
        PartCommand::Migrate => Base::migrate_only(config.common(), migrator).await,
        PartCommand::Serve => serve(config, shutdown::on_signal()).await,
    }
}
