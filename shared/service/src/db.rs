//! Database set-up: create a part's database when missing, connect, migrate.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// Creates the database named in `url` if it does not exist, connecting to the server's
/// `postgres` database to do so.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url)?;
    let name = options
        .get_database()
        .ok_or_else(|| anyhow::anyhow!("the database URL names no database"))?
        .to_owned();
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = name.replace('"', "\"\"");
        let created = sqlx::query(&format!("CREATE DATABASE \"{quoted}\""))
            .execute(&mut admin)
            .await;
        // Another process may have created it between the check and the create.
        if let Err(e) = created {
            if !e.to_string().contains("already exists") {
                return Err(e.into());
            }
        }
    }
    admin.close().await?;
    Ok(())
}

/// A pool on `url` with `size` connections; statement logging is off (statements may carry
/// personal data in their parameters' neighbourhood, and they are noisy).
pub async fn connect(url: &str, size: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?)
}

/// The service kit's own tables: [`crate::jobs`] and [`crate::schedule`].
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Runs the shared tables' migrations (Kafka's outbox and dedupe, jobs, schedules) and the part's own;
/// each ignores the others' versions (0001.., 1001.., and the parts' timestamps).
pub async fn migrate(pool: &PgPool, part: &Migrator) -> anyhow::Result<()> {
    for migrator in [&crm_kafka::MIGRATOR, &MIGRATOR, part] {
        let mut migrator = Migrator {
            migrations: migrator.migrations.clone(),
            ..Migrator::DEFAULT
        };
        migrator.set_ignore_missing(true);
        migrator.run(pool).await?;
    }
    Ok(())
}
