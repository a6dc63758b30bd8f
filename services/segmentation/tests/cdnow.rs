//! The value models on the CDNOW sample (../shared/data): with the published 39-week
//! calibration, the fitted parameters are within 1% of the published ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use chrono::NaiveDate;
use crm_segmentation::value::{read_transactions, summarise, ValueModel};

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

fn within_one_percent(name: &str, fitted: f64, published: f64) {
    let off = (fitted - published).abs() / published;
    assert!(
        off <= 0.01,
        "{name}: fitted {fitted:.4}, published {published}, {:.2}% off",
        off * 100.0
    );
}

#[test]
fn cdnow_fit_matches_the_published_parameters() {
    let file = std::fs::File::open(data("cdnow_sample.csv")).unwrap();
    let transactions = read_transactions(file).unwrap();
    assert_eq!(transactions.len(), 6_919);
    let end = NaiveDate::from_ymd_opt(1997, 9, 30).unwrap();
    let customers = summarise(&transactions, end);
    assert_eq!(customers.len(), 2_357);

    let model = ValueModel::fit(&customers).unwrap();
    let b = model.bgnbd;
    println!("BG/NBD {b:?}");
    within_one_percent("r", b.r, 0.243);
    within_one_percent("alpha", b.alpha, 4.414);
    within_one_percent("a", b.a, 0.793);
    within_one_percent("b", b.b, 2.426);

    let g = model.gamma_gamma.unwrap();
    println!("Gamma-Gamma {g:?}");
    within_one_percent("p", g.p, 6.25);
    within_one_percent("q", g.q, 3.74);
    within_one_percent("v", g.v, 15.44);
}

#[test]
fn the_fit_command_prints_the_parameters_as_json() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crm-segmentation"))
        .args(["fit", "--transactions"])
        .arg(data("cdnow_sample.csv"))
        .args(["--calibration-end", "1997-09-30"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fitted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, published) in [
        ("r", 0.243),
        ("alpha", 4.414),
        ("a", 0.793),
        ("b", 2.426),
        ("p", 6.25),
        ("q", 3.74),
        ("v", 15.44),
    ] {
        within_one_percent(name, fitted[name].as_f64().unwrap(), published);
    }

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_crm-segmentation"))
        .args([
            "fit",
            "--transactions",
            "/nonexistent.csv",
            "--calibration-end",
            "1997-09-30",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot open"));
}
