//! The command line every part's binary shares: `serve` (the default), `migrate` and
//! `dlq replay`.

use std::future::Future;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use crm_config::Env;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

use crm_envelope::Topic;
use crm_kafka::dlq::{self, ReplayOptions, ReplayOutcome};
use crm_kafka::Producer;

use crate::{shutdown, Base, CommonConfig, PartConfig};

/// The subcommands of every part.
#[derive(Debug, Clone, Subcommand)]
pub enum PartCommand {
    /// Serve the part's HTTP API and consume its topics, if it has any (the default).
    Serve,
    /// Create the part's database if missing and apply its migrations.
    Migrate,
    /// Dead-lettered messages of this part.
    Dlq {
        /// What to do with them.
        #[command(subcommand)]
        command: DlqCommand,
    },
}

/// `dlq` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum DlqCommand {
    /// Put the messages this part dead-lettered from a topic back on that topic, once each
    /// (a second replay skips what the first put back).
    Replay {
        /// The source topic, e.g. `crm.events.v1` (its DLQ is `crm.events.v1.dlq`).
        #[arg(long)]
        topic: String,
        /// Only messages dead-lettered at or after this RFC 3339 instant.
        #[arg(long)]
        since: Option<String>,
        /// List what would be replayed; produce and record nothing.
        #[arg(long)]
        dry_run: bool,
    },
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
    run_command(name, command, config, migrator, serve).await
}

/// Runs one of the shared subcommands of the part `name` (`crm-<part>`) with a configuration
/// already read (for binaries that have subcommands of their own beside these).
pub async fn run_command<C, F, Fut>(
    name: &'static str,
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
        PartCommand::Dlq {
            command:
                DlqCommand::Replay {
                    topic,
                    since,
                    dry_run,
                },
        } => {
            let options = replay_options(&topic, since.as_deref(), dry_run)?;
            let part = name.strip_prefix("crm-").unwrap_or(name);
            dlq_replay(part, config.common(), &options).await
        }
    }
}

/// Checks the `dlq replay` arguments, saying what to fix.
fn replay_options(
    topic: &str,
    since: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<ReplayOptions> {
    let topic = Topic::from_name(topic).ok_or_else(|| {
        let known: Vec<&str> = Topic::ALL.iter().map(|t| t.name()).collect();
        anyhow::anyhow!(
            "unknown topic {topic:?}: give the source topic's logical name, one of {}",
            known.join(", ")
        )
    })?;
    let since = since
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "--since {s:?} is not an RFC 3339 instant (2026-11-30T00:00:00Z): {e}"
                    )
                })
        })
        .transpose()?;
    Ok(ReplayOptions {
        topic,
        since,
        dry_run,
    })
}

/// Replays the DLQ of `options.topic` for `part` and prints one line per entry and a tally.
async fn dlq_replay(
    part: &str,
    config: &CommonConfig,
    options: &ReplayOptions,
) -> anyhow::Result<()> {
    let pool = crate::db::connect(&config.database_url, 2).await?;
    let metrics = crm_telemetry::Metrics::new(part)?;
    let producer = Producer::connect(&config.kafka, metrics).await?;
    let report = dlq::replay(&config.kafka, part, &pool, &producer, options).await?;
    producer.flush(std::time::Duration::from_secs(10)).await;
    for e in &report.entries {
        if e.outcome != ReplayOutcome::OtherGroup {
            println!("{}/{} {} {:?}", e.partition, e.offset, e.code, e.outcome);
        }
    }
    println!(
        "{} replayed, {} would be replayed, {} already replayed, {} before --since, {} of other parts",
        report.count(ReplayOutcome::Replayed),
        report.count(ReplayOutcome::WouldReplay),
        report.count(ReplayOutcome::AlreadyReplayed),
        report.count(ReplayOutcome::BeforeSince),
        report.count(ReplayOutcome::OtherGroup),
    );
    Ok(())
}
