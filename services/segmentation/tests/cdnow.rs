//! The value models on the CDNOW sample (../shared/data): with the published 39-week
//! calibration, the fitted parameters are within 1% of the published ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use chrono::NaiveDate;
use crm_segmentation::domain::value::{read_transactions, summarise, ValueModel};

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

/// `score` writes one row per customer who bought by the as-of date, with balanced quintiles,
/// a group and stage for each, and the value predictions of the library.
#[test]
fn the_score_command_writes_rfm_stage_and_value_per_customer() {
    let out_path = std::env::temp_dir().join(format!("cdnow-scores-{}.csv", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crm-segmentation"))
        .args(["score", "--transactions"])
        .arg(data("cdnow_sample.csv"))
        .args(["--as-of", "1997-09-30", "--output"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_path(&out_path).unwrap();
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        headers,
        [
            "customer_id",
            "recency_days",
            "frequency",
            "monetary",
            "r",
            "f",
            "m",
            "rfm_group",
            "stage",
            "probability_alive",
            "expected_purchases",
            "lifetime_value"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let transactions =
        read_transactions(std::fs::File::open(data("cdnow_sample.csv")).unwrap()).unwrap();
    let end = NaiveDate::from_ymd_opt(1997, 9, 30).unwrap();
    let summaries = summarise(&transactions, end);
    assert_eq!(rows.len(), summaries.len());
    let model = ValueModel::fit(&summaries).unwrap();
    let mut per_score = [[0usize; 5]; 3];
    for (row, s) in rows.iter().zip(&summaries) {
        assert_eq!(&row[0], s.customer.as_str());
        for (k, col) in [4, 5, 6].into_iter().enumerate() {
            let v: usize = row[col].parse().unwrap();
            assert!((1..=5).contains(&v));
            per_score[k][v - 1] += 1;
        }
        assert!(!row[7].is_empty());
        assert!(
            ["new", "active", "at_risk", "lapsed", "reactivated"].contains(&&row[8]),
            "{}",
            &row[8]
        );
        let p = model.predict(s, 52.0);
        let close = |col: usize, want: f64| {
            let got: f64 = row[col].parse().unwrap();
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "column {col}: {got} vs {want}"
            );
        };
        close(9, p.probability_alive);
        close(10, p.expected_purchases);
        close(11, p.lifetime_value);
    }
    // Quintiles: each score holds a fifth of the customers (ties broken by customer id).
    let n = rows.len() as f64;
    for counts in per_score {
        for c in counts {
            assert!((c as f64 - n / 5.0).abs() <= 1.0, "{counts:?} of {n}");
        }
    }
    let _ = std::fs::remove_file(out_path);
}
