//! `crm-identity`: `serve` (default), `migrate`, `dedupe`, `generate`, `import`, `cleanup`.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cleanup;
use crate::dedupe::{parse_mapping, read_records, read_true_pairs, write_clusters};
use crate::domain::matching::quality::pair_quality;
use crate::domain::matching::{deduplicate, generate, person, MatchOptions};
use crate::import::rows::Format;
use crate::store::hot::HotProfiles;
use crate::Resolver;
use anyhow::Context;
use clap::{Parser, Subcommand};
use crm_config::Env;
use crm_envelope::TenantId;
use crm_service::cli::{run_part_command, PartCommand};
use crm_service::PartConfig;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::sync::Notify;

#[derive(Parser)]
#[command(
    name = "crm-identity",
    about = "CRM identity: resolves ingested events to customers and keeps their profiles",
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
    /// Deduplicate person records from a CSV file (Fellegi–Sunter, m and u estimated by EM
    /// from the file itself) and write `record_id,cluster_id`. A summary goes to stderr.
    Dedupe {
        /// CSV with a header row; the first column is the record id.
        #[arg(long)]
        input: PathBuf,
        /// Where to write `record_id,cluster_id`.
        #[arg(long)]
        output: PathBuf,
        /// `column=field` for a column named otherwise than its field (repeatable). Fields:
        /// given_name, surname, street_number, address_1, address_2, suburb, postcode, state,
        /// date_of_birth, soc_sec_id.
        #[arg(long = "map", value_parser = parse_mapping)]
        mappings: Vec<(String, String)>,
        /// Match probability at or above which records merge.
        #[arg(long, default_value_t = MatchOptions::default().merge_at)]
        merge_at: f64,
        /// Known true pairs (CSV of two record ids per row): the summary adds pairwise
        /// precision, recall and F1.
        #[arg(long)]
        truth: Option<PathBuf>,
    },
    /// Generate Febrl-like person records with controlled duplicates and corruptions
    /// (docs/matching.md, "Generated data"): a CSV in Febrl's columns and the true pairs, for
    /// measuring `dedupe` at any size. A summary goes to stderr.
    Generate {
        /// Records in all, originals and duplicates.
        #[arg(long)]
        records: usize,
        /// Where to write the records (CSV with a header row).
        #[arg(long)]
        output: PathBuf,
        /// Where to write the true pairs (`rec_id_1,rec_id_2`).
        #[arg(long)]
        truth: PathBuf,
        /// Share of originals that get duplicates.
        #[arg(long, default_value_t = generate::Options::default().duplicated_share)]
        duplicated_share: f64,
        /// Most duplicates of one original.
        #[arg(long, default_value_t = generate::Options::default().max_duplicates)]
        max_duplicates: usize,
        /// Most modifications of one duplicate.
        #[arg(long, default_value_t = generate::Options::default().max_modifications)]
        max_modifications: usize,
        /// Random seed (the same seed gives the same files).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Import customers from a CSV (header row) or NDJSON file into a tenant: each row is
    /// resolved like an identify event (importing the same file again creates nothing new),
    /// then the tenant's base is cleaned with the probabilistic matcher. Uses the part's
    /// database and Redis (CRM_IDENTITY__*, CRM_REDIS__*); the part publishes the resulting
    /// events when it runs.
    Import {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The file.
        #[arg(long)]
        file: PathBuf,
        /// csv or ndjson (default: from the file's extension, else csv).
        #[arg(long)]
        format: Option<String>,
    },
    /// Clean a tenant's base with the probabilistic matcher (merges above the threshold,
    /// reviews between the thresholds) and print what it did.
    Cleanup {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
    },
}

/// Parses the process's arguments and runs the subcommand.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Part(PartCommand::Serve)) {
        Command::Part(command) => {
            run_part_command(
                "crm-identity",
                command,
                &crate::MIGRATOR,
                |config: crate::Config, shutdown| async move {
                    crate::build(config).await?.run(shutdown).await
                },
            )
            .await
        }
        Command::Dedupe {
            input,
            output,
            mappings,
            merge_at,
            truth,
        } => dedupe(input, output, mappings, merge_at, truth),
        Command::Generate {
            records,
            output,
            truth,
            duplicated_share,
            max_duplicates,
            max_modifications,
            seed,
        } => generate_files(
            &generate::Options {
                records,
                duplicated_share,
                max_duplicates,
                max_modifications,
                seed,
            },
            &output,
            &truth,
        ),
        Command::Import {
            tenant,
            file,
            format,
        } => import(&tenant, &file, format.as_deref()).await,
        Command::Cleanup { tenant } => {
            let (pool, hot, _) = connect().await?;
            let tenant = TenantId::parse(&tenant)?;
            let done = cleanup::clean_tenant(&pool, &hot, &tenant).await?;
            println!("{}", serde_json::to_string_pretty(&done)?);
            Ok(())
        }
    }
}

/// The part's database (migrated) and cache, and a relay waker nobody listens to (the part's
/// relay publishes the outbox when it runs).
async fn connect() -> anyhow::Result<(sqlx::PgPool, HotProfiles, Arc<Notify>)> {
    let _telemetry = crm_telemetry::init("crm-identity")?;
    let config = crate::Config::from_env(&Env::from_process())?;
    crm_service::Base::migrate_only(&config.common, &crate::MIGRATOR).await?;
    let pool = crm_service::db::connect(&config.common.database_url, 4).await?;
    let cache = crm_cache::ProfileCache::new(config.common.redis.clone())?;
    let hot = HotProfiles::new(Arc::new(cache), pool.clone());
    Ok((pool, hot, Arc::new(Notify::new())))
}

async fn import(tenant: &str, file: &Path, format: Option<&str>) -> anyhow::Result<()> {
    let tenant = TenantId::parse(tenant)?;
    let by_extension = file
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.eq_ignore_ascii_case("ndjson") || e.eq_ignore_ascii_case("jsonl"))
        .map_or("csv", |_| "ndjson");
    let format = Format::parse(format.unwrap_or(by_extension))
        .ok_or_else(|| anyhow::anyhow!("--format takes csv or ndjson"))?;
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading {} (it must be UTF-8)", file.display()))?;
    let (pool, hot, relay) = connect().await?;
    let resolver = Resolver::from_parts(pool.clone(), hot, relay);
    let job = crate::import::create_job(&pool, &tenant, format, "running").await?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = crate::import::run(&resolver, &tenant, job, format, text, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await?;
    bar.finish();
    let mut report = serde_json::to_value(&summary)?;
    report["job_id"] = json!(job);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn dedupe(
    input: PathBuf,
    output: PathBuf,
    mappings: Vec<(String, String)>,
    merge_at: f64,
    truth: Option<PathBuf>,
) -> anyhow::Result<()> {
    let options = MatchOptions {
        merge_at,
        review_at: MatchOptions::default().review_at.min(merge_at),
        ..MatchOptions::default()
    };
    let file = File::open(&input).with_context(|| format!("opening {}", input.display()))?;
    let records =
        read_records(file, &mappings).with_context(|| format!("reading {}", input.display()))?;
    eprintln!(
        "read {} records; fields {}; absent {}",
        records.ids.len(),
        records
            .columns
            .iter()
            .map(|(c, f)| if c == f {
                c.clone()
            } else {
                format!("{c}→{f}")
            })
            .collect::<Vec<_>>()
            .join(", "),
        if records.absent.is_empty() {
            "none".to_owned()
        } else {
            records.absent.join(", ")
        }
    );
    let outcome =
        deduplicate(&person::schema(), &records.records, &options).map_err(anyhow::Error::msg)?;
    let out = File::create(&output).with_context(|| format!("creating {}", output.display()))?;
    write_clusters(BufWriter::new(out), &records.ids, &outcome.labels)?;
    let stats = &outcome.stats;
    let seconds = stats.total().as_secs_f64();
    let mut summary = json!({
        "records": stats.records,
        "candidate_pairs": stats.candidate_pairs,
        "skipped_blocks": stats.skipped_blocks,
        "distinct_patterns": stats.distinct_patterns,
        "matched_pairs": stats.matched_pairs,
        "review_pairs": stats.review_pairs,
        "clusters": stats.clusters,
        "seconds": seconds,
        "pairs_per_second": stats.candidate_pairs as f64 / seconds.max(1e-9),
        "em": {"prior": outcome.model.prior, "iterations": outcome.model.iterations, "converged": outcome.model.converged},
        "output": output.display().to_string(),
    });
    if let Some(truth) = truth {
        let file = File::open(&truth).with_context(|| format!("opening {}", truth.display()))?;
        let pairs = read_true_pairs(file, &records.ids)?;
        summary["quality"] = serde_json::to_value(pair_quality(&outcome.labels, &pairs))?;
    }
    eprintln!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn generate_files(
    options: &generate::Options,
    output: &PathBuf,
    truth: &PathBuf,
) -> anyhow::Result<()> {
    if let Some(p) = generate::problem(options) {
        anyhow::bail!("{p}");
    }
    let create = |path: &PathBuf| {
        File::create(path)
            .map(BufWriter::new)
            .with_context(|| format!("creating {}", path.display()))
    };
    let mut records = csv::Writer::from_writer(create(output)?);
    let mut pairs = csv::Writer::from_writer(create(truth)?);
    records.write_record(generate::columns())?;
    pairs.write_record(["rec_id_1", "rec_id_2"])?;
    let summary = generate::generate(
        options,
        |row| records.write_record(&row).map_err(std::io::Error::other),
        |a, b| pairs.write_record([a, b]).map_err(std::io::Error::other),
    )?;
    records.flush()?;
    pairs.flush()?;
    eprintln!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
