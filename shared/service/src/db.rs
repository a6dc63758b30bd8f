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

/// A pooled connection idle this long is pinged before it is handed out.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// A pool on `url` with `size` connections; statement logging is off (statements may carry
/// personal data in their parameters' neighbourhood, and they are noisy).
///
/// A connection is checked with a ping before use only when it sat idle for
/// [`PING_AFTER_IDLE`] (a server restart or a dropped socket shows there), not on every
/// acquire as sqlx does by default: that ping is a round trip as long as a short query, and
/// doubled the round trips of a one-statement call such as a decision.
pub async fn connect(url: &str, size: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
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
