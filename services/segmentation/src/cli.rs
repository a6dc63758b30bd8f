//! `crm-segmentation`: `serve` (default), `migrate`, `fit`, `score`.

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
