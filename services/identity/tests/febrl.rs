//! Deduplication of the Febrl reference data (../shared/data): pairwise precision at least
//! 0.995 and F1 above the published `recordlinkage` baseline, with nothing taken from the
//! record ids (they are only used to score the answer against the true pairs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::path::PathBuf;

use crm_identity::dedupe::{read_records, read_true_pairs};
use crm_identity::domain::matching::quality::{pair_quality, PairQuality};
use crm_identity::domain::matching::{deduplicate, person, MatchOptions};

/// A reference file: from `CRM_REFERENCE_DATA`, else `../shared/data` beside the repository.
fn data(name: &str) -> PathBuf {
    let path = std::env::var_os("CRM_REFERENCE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
        .join(name);
    assert!(
        path.exists(),
        "reference data {} not found: check out the repository beside shared/ or set CRM_REFERENCE_DATA",
        path.display()
    );
    path
}

fn run(file: &str) -> PairQuality {
    let input = read_records(File::open(data(&format!("{file}.csv"))).unwrap(), &[]).unwrap();
    let truth = read_true_pairs(
        File::open(data(&format!("{file}_true_pairs.csv"))).unwrap(),
        &input.ids,
    )
    .unwrap();
    let outcome = deduplicate(&person::schema(), &input.records, &MatchOptions::default()).unwrap();
    let q = pair_quality(&outcome.labels, &truth);
    eprintln!("{file}: {q:?}\n{:?}", outcome.stats);
    q
}

#[test]
fn febrl1_beats_the_baseline() {
    let q = run("febrl1");
    assert!(q.precision >= 0.995, "precision {}", q.precision);
    assert!(q.f1 > 0.9889, "F1 {}", q.f1);
}

#[test]
fn febrl2_beats_the_baseline() {
    let q = run("febrl2");
    assert!(q.precision >= 0.995, "precision {}", q.precision);
    assert!(q.f1 > 0.9805, "F1 {}", q.f1);
}
