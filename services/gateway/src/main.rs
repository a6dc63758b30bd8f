//! `crm-gateway`: `serve` (default), `migrate`, `create-tenant`, `create-key`, `list-keys`,
//! `revoke-key`, and the shared `dlq replay`.

/// mimalloc rather than the system's malloc: a part allocates many small, short-lived values
/// per message (JSON, query arguments, spans), and glibc's malloc took about a third of the
/// consumer's CPU in the poll loop (docs/scaling.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use crm_config::Env;
use crm_envelope::TenantId;
use crm_gateway::{tenants, Scope};
use crm_service::cli::{run_command, PartCommand};
use crm_service::PartConfig;

#[derive(Parser)]
#[command(
    name = "crm-gateway",
    about = "CRM gateway: the public REST API",
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
    /// Create a tenant and print its first admin API key as JSON.
    CreateTenant {
        /// Tenant id: a-z, 0-9, '-', '_'.
        #[arg(long)]
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Issue another API key for a tenant and print it as JSON.
    CreateKey {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// Comma-separated scopes: ingest, read, write:loyalty, decide, privacy, admin.
        #[arg(long, default_value = "admin")]
        scopes: String,
        /// What the key is for.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List a tenant's API keys as JSON (names, prefixes, scopes, revocation; never the keys).
    ListKeys {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke one of a tenant's API keys; it is refused from the next request on.
    RevokeKey {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The key's id (from `list-keys`).
        #[arg(long)]
        id: uuid::Uuid,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = crm_telemetry::init("crm-gateway")?;
    let config = crm_gateway::Config::from_env(&Env::from_process())?;
    match cli.command.unwrap_or(Command::Part(PartCommand::Serve)) {
        Command::Part(command) => run_command(
            "crm-gateway",
            command,
            config,
            &crm_gateway::MIGRATOR,
            |config, shutdown| async move { crm_gateway::build(config).await?.run(shutdown).await },
        )
        .await,
        Command::CreateTenant { id, name } => {
            let tenant = TenantId::parse(&id)?;
            let pool = admin_pool(&config).await?;
            let key =
                tenants::create_tenant(&pool, &tenant, name.as_deref().unwrap_or(&id)).await?;
            println!("{}", serde_json::to_string_pretty(&key)?);
            Ok(())
        }
        Command::CreateKey {
            tenant,
            scopes,
            name,
        } => {
            let tenant = TenantId::parse(&tenant)?;
            let scopes = scopes
                .split(',')
                .map(|s| Scope::parse(s.trim()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--scopes takes ingest, read, write:loyalty, decide, privacy and admin, comma-separated"
                    )
                })?;
            let pool = admin_pool(&config).await?;
            let key = tenants::create_key(&pool, &tenant, &name, &scopes).await?;
            println!("{}", serde_json::to_string_pretty(&key)?);
            Ok(())
        }
        Command::ListKeys { tenant } => {
            let tenant = TenantId::parse(&tenant)?;
            let pool = admin_pool(&config).await?;
            let keys = tenants::list_keys(&pool, &tenant).await?;
            println!("{}", serde_json::to_string_pretty(&keys)?);
            Ok(())
        }
        Command::RevokeKey { tenant, id } => {
            let tenant = TenantId::parse(&tenant)?;
            let pool = admin_pool(&config).await?;
            let key = tenants::revoke_key(&pool, &tenant, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("tenant {tenant} has no API key {id}"))?;
            println!("{}", serde_json::to_string_pretty(&key)?);
            Ok(())
        }
    }
}

/// The gateway's database, created and migrated if needed.
async fn admin_pool(config: &crm_gateway::Config) -> anyhow::Result<sqlx::PgPool> {
    crm_service::Base::migrate_only(&config.common, &crm_gateway::MIGRATOR).await?;
    crm_service::db::connect(&config.common.database_url, 1).await
}
