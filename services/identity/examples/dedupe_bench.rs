//! Benchmark of `crm-identity dedupe`'s library code on the Febrl reference data: pairwise
//! precision, recall and F1, candidate pairs, and pairs compared per second on one core
//! (blocking, comparing, EM and clustering; reading the file aside), the median of
//! `DEDUPE_RUNS` runs (default 5). When `python3` has `recordlinkage`, the published baseline
//! (`scripts/bench/recordlinkage_baseline.py`) runs in the same process tree, on the same
//! machine, and the ratios are printed.
//!
//! Run: `cargo run --release -p crm-identity --example dedupe_bench`
//! (`CRM_REFERENCE_DATA` overrides `../shared/data`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

use crm_identity::dedupe::{read_records, read_true_pairs};
use crm_identity::domain::matching::quality::pair_quality;
use crm_identity::domain::matching::{deduplicate, person, MatchOptions};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = std::env::var_os("CRM_REFERENCE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data"));
    let runs: usize = std::env::var("DEDUPE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let files = ["febrl1", "febrl2"];
    let mut ours = Vec::new();
    for file in files {
        let input =
            read_records(File::open(data.join(format!("{file}.csv"))).unwrap(), &[]).unwrap();
        let truth = read_true_pairs(
            File::open(data.join(format!("{file}_true_pairs.csv"))).unwrap(),
            &input.ids,
        )
        .unwrap();
        let schema = person::schema();
        let mut seconds = Vec::new();
        let mut last = None;
        for _ in 0..runs.max(1) {
            let outcome = deduplicate(&schema, &input.records, &MatchOptions::default()).unwrap();
            seconds.push(outcome.stats.total().as_secs_f64());
            last = Some(outcome);
        }
        seconds.sort_by(f64::total_cmp);
        let median = seconds[seconds.len() / 2];
        let outcome = last.unwrap();
        let q = pair_quality(&outcome.labels, &truth);
        let pairs = outcome.stats.candidate_pairs;
        println!(
            "crm      {file}: records {:>5}  candidate pairs {:>7}  precision {:.4}  recall {:.4}  F1 {:.4}  seconds {:.4}  pairs/s {:>10.0}",
            input.ids.len(),
            pairs,
            q.precision,
            q.recall,
            q.f1,
            median,
            pairs as f64 / median
        );
        let s = &outcome.stats;
        println!(
            "         stages (last run): blocking {:?}, comparing {:?}, EM {:?} ({} iterations, {} patterns), clustering {:?}",
            s.blocking, s.comparing, s.estimating, outcome.model.iterations, s.distinct_patterns, s.classifying
        );
        ours.push((file, median, pairs as f64 / median));
    }

    let script = root.join("scripts/bench/recordlinkage_baseline.py");
    let baseline = Command::new("python3")
        .arg(&script)
        .arg(&data)
        .args(files)
        .env("OMP_NUM_THREADS", "1")
        .output();
    match baseline {
        Ok(out) if out.status.success() => {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let file = v["file"].as_str().unwrap();
                let (secs, pps) = (
                    v["seconds"].as_f64().unwrap(),
                    v["pairs_per_second"].as_f64().unwrap(),
                );
                println!(
                    "baseline {file}: candidate pairs {:>7}  precision {:.4}  recall {:.4}  F1 {:.4}  seconds {:.4}  pairs/s {:>10.0}",
                    v["candidate_pairs"], v["precision"].as_f64().unwrap(), v["recall"].as_f64().unwrap(),
                    v["f1"].as_f64().unwrap(), secs, pps
                );
                if let Some((_, our_secs, our_pps)) = ours.iter().find(|(f, _, _)| *f == file) {
                    println!(
                        "ratio    {file}: pairs/s {:.1}x the baseline; whole run {:.1}x faster",
                        our_pps / pps,
                        secs / our_secs
                    );
                }
            }
        }
        Ok(out) => println!(
            "baseline not run (pip install recordlinkage==0.16 to compare): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("baseline not run: python3: {e}"),
    }
}
