//! `crm-segmentation`: `serve` (default), `migrate`, `fit`, `score`, `recompute`.

use std::fs::File;
use std::path::PathBuf;

use crate::batch;
use crate::domain::lifecycle::Thresholds;
use crate::domain::value::{read_transactions, summarise, ValueModel};
use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use crm_service::cli::{run_part_command, PartCommand};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "crm-segmentation",
    about = "CRM segmentation: aggregates, segments, scores and customer value",
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
    /// Fit the BG/NBD and Gamma-Gamma models by maximum likelihood on purchases up to the
    /// calibration end, and print their parameters as JSON (`r, alpha, a, b, p, q, v`).
    Fit {
        /// CSV `customer_id,date,quantity,amount` with a header row; dates as YYYYMMDD.
        #[arg(long)]
        transactions: PathBuf,
        /// Last day of the calibration period (YYYY-MM-DD); later purchases are ignored.
        #[arg(long, value_parser = parse_date)]
        calibration_end: NaiveDate,
    },
    /// Score every customer as of a date: R, F, M, RFM group, lifecycle stage, probability
    /// alive, expected purchases and lifetime value, written as CSV (value models fitted on the
    /// purchases up to that date).
    Score {
        /// CSV `customer_id,date,quantity,amount` with a header row; dates as YYYYMMDD.
        #[arg(long)]
        transactions: PathBuf,
        /// The date scores are computed at (YYYY-MM-DD); later purchases are ignored.
        #[arg(long, value_parser = parse_date)]
        as_of: NaiveDate,
        /// Where to write the scores (CSV).
        #[arg(long)]
        output: PathBuf,
        /// Weeks of expected purchases and lifetime value.
        #[arg(long, default_value_t = 52.0)]
        horizon_weeks: f64,
        /// Lifecycle: a first order this recent is `new`.
        #[arg(long, default_value_t = 30)]
        new_days: u32,
        /// Lifecycle: a last order this recent is `active`.
        #[arg(long, default_value_t = 90)]
        active_days: u32,
        /// Lifecycle: a last order older than this is `lapsed`.
        #[arg(long, default_value_t = 180)]
        lapsed_days: u32,
    },
    /// Recompute a tenant's segments (all, or those given) as a job that the running part's
    /// workers carry out, and follow it with a progress bar (customers done, rate, time left)
    /// until it ends. With `--job`, follow a job already queued (for example by the API).
    Recompute {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// A segment to recompute (repeatable); all of the tenant's when absent.
        #[arg(long = "segment")]
        segments: Vec<uuid::Uuid>,
        /// Follow this job (its number, or `segmentation-<number>`) instead of queueing one.
        #[arg(long)]
        job: Option<String>,
    },
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("`{s}` is not a YYYY-MM-DD date"))
}

/// Parses the process's arguments and runs the subcommand.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Part(PartCommand::Serve)) {
        Command::Part(command) => {
            run_part_command(
                "crm-segmentation",
                command,
                &crate::MIGRATOR,
                |config: crate::Config, shutdown| async move {
                    crate::build(config).await?.run(shutdown).await
                },
            )
            .await
        }
        Command::Fit {
            transactions,
            calibration_end,
        } => fit(&transactions, calibration_end),
        Command::Recompute {
            tenant,
            segments,
            job,
        } => recompute(&tenant, segments, job.as_deref()).await,
        Command::Score {
            transactions,
            as_of,
            output,
            horizon_weeks,
            new_days,
            active_days,
            lapsed_days,
        } => {
            let thresholds = Thresholds {
                new_days,
                active_days,
                lapsed_days,
            };
            if let Some(p) = thresholds.problem() {
                anyhow::bail!("lifecycle thresholds: {p}");
            }
            if !(horizon_weeks.is_finite() && horizon_weeks > 0.0) {
                anyhow::bail!("--horizon-weeks must be a positive number");
            }
            score(&transactions, as_of, &output, horizon_weeks, &thresholds)
        }
    }
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<crate::domain::value::Transaction>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_transactions(file).with_context(|| format!("in {}", path.display()))
}

fn score(
    path: &PathBuf,
    as_of: NaiveDate,
    output: &PathBuf,
    horizon_weeks: f64,
    thresholds: &Thresholds,
) -> anyhow::Result<()> {
    let transactions = read(path)?;
    let (rows, model) = batch::score(&transactions, as_of, horizon_weeks, thresholds);
    let out =
        File::create(output).with_context(|| format!("cannot create {}", output.display()))?;
    batch::write_csv(&rows, std::io::BufWriter::new(out))
        .with_context(|| format!("writing {}", output.display()))?;
    if model.is_none() {
        eprintln!("note: too few repeat buyers to fit the value models; probability_alive, expected_purchases and lifetime_value are empty");
    }
    eprintln!(
        "scored {} customers as of {as_of} into {}",
        rows.len(),
        output.display()
    );
    Ok(())
}

fn fit(path: &PathBuf, end: NaiveDate) -> anyhow::Result<()> {
    let transactions = read(path)?;
    let customers = summarise(&transactions, end);
    let model = ValueModel::fit(&customers).with_context(|| {
        format!(
            "no BG/NBD fit: {} customers bought on or before {end}",
            customers.len()
        )
    })?;
    let spend = model.gamma_gamma;
    let out = json!({
        "r": model.bgnbd.r,
        "alpha": model.bgnbd.alpha,
        "a": model.bgnbd.a,
        "b": model.bgnbd.b,
        "p": spend.map(|g| g.p),
        "q": spend.map(|g| g.q),
        "v": spend.map(|g| g.v),
        "customers": customers.len(),
        "repeat_customers": customers.iter().filter(|c| c.frequency > 0.0).count(),
        "calibration_end": end,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Queues (or takes `job`) and follows a recompute job until it ends; see [`Command::Recompute`].
async fn recompute(
    tenant: &str,
    segments: Vec<uuid::Uuid>,
    job: Option<&str>,
) -> anyhow::Result<()> {
    use crm_config::Env;
    use crm_service::PartConfig;
    use indicatif::{ProgressBar, ProgressStyle};
    use std::time::{Duration, Instant};

    let _telemetry = crm_telemetry::init("crm-segmentation")?;
    let config = crate::Config::from_env(&Env::from_process())?;
    let tenant = crm_envelope::TenantId::parse(tenant)?;
    let pool = crm_service::db::connect(&config.common.database_url, 2).await?;
    let id = match job {
        Some(j) => j
            .trim_start_matches("segmentation-")
            .parse::<i64>()
            .with_context(|| format!("`{j}` is not a job number (or segmentation-<number>)"))?,
        None => {
            let mut tx = pool.begin().await?;
            let wanted = (!segments.is_empty()).then(|| segments.into_iter().collect());
            let id = crate::recompute::enqueue(&mut tx, &tenant, wanted).await?;
            tx.commit().await?;
            eprintln!("queued job segmentation-{id}");
            id
        }
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} customers  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let asked = Instant::now();
    let mut warned = false;
    let ended = loop {
        let Some(view) = crm_service::jobs::get(&pool, &tenant, id).await? else {
            anyhow::bail!("no job segmentation-{id} for tenant {tenant}");
        };
        if let Some(p) = view.progress.as_ref() {
            let p = &p.0;
            bar.set_length(p["of"].as_u64().unwrap_or(0));
            bar.set_position(p["done"].as_u64().unwrap_or(0));
            bar.set_message(format!(
                "{} /s  {} s left  +{} -{}",
                p["rate_per_s"],
                p["eta_s"].as_f64().map_or("?".into(), |s| s.to_string()),
                p["entered"],
                p["exited"]
            ));
        }
        match view.status.as_str() {
            "succeeded" | "failed" => break view,
            "queued" if !warned && asked.elapsed() > Duration::from_secs(10) => {
                warned = true;
                bar.println(
                    "the job is still queued: is crm-segmentation serve running for this database?",
                );
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    bar.finish();
    match ended.status.as_str() {
        "succeeded" => {
            let result = ended.result.map(|r| r.0).unwrap_or_default();
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(())
        }
        _ => anyhow::bail!(
            "job segmentation-{id} failed: {}",
            ended.error.unwrap_or_default()
        ),
    }
}
