//! `crm-segmentation`: `serve` (default), `migrate`, `fit`.

use std::fs::File;
use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use crm_segmentation::value::{read_transactions, summarise, ValueModel};
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
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("`{s}` is not a YYYY-MM-DD date"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Part(PartCommand::Serve)) {
        Command::Part(command) => {
            run_part_command(
                "crm-segmentation",
                command,
                &crm_segmentation::MIGRATOR,
                |config: crm_segmentation::Config, shutdown| async move {
                    crm_segmentation::build(config).await?.run(shutdown).await
                },
            )
            .await
        }
        Command::Fit {
            transactions,
            calibration_end,
        } => fit(&transactions, calibration_end),
    }
}

fn fit(path: &PathBuf, end: NaiveDate) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let transactions = read_transactions(file).with_context(|| format!("in {}", path.display()))?;
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
