//! `crm-segmentation score`: RFM, lifecycle stage and customer value for every customer of a
//! transactions file, as of a date, on the same library code as the service.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::NaiveDate;
use serde::Serialize;

use crate::domain::lifecycle;
use crate::domain::lifecycle::Thresholds;
use crate::domain::rfm;
use crate::domain::rfm::RfmInput;
use crate::domain::value::{summarise, Transaction, ValueModel};

/// One customer's scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreRow {
    /// The customer's id as in the file.
    pub customer_id: String,
    /// Days from the last purchase to the as-of date.
    pub recency_days: i64,
    /// Distinct purchase days.
    pub frequency: u32,
    /// Amount of all purchases.
    pub monetary: f64,
    /// Recency score.
    pub r: u8,
    /// Frequency score.
    pub f: u8,
    /// Monetary score.
    pub m: u8,
    /// RFM group.
    pub rfm_group: &'static str,
    /// Lifecycle stage.
    pub stage: &'static str,
    /// Probability alive (empty when the model could not be fitted).
    pub probability_alive: Option<f64>,
    /// Expected purchases over the horizon.
    pub expected_purchases: Option<f64>,
    /// Lifetime value over the horizon.
    pub lifetime_value: Option<f64>,
}

/// Scores every customer with a purchase on or before `as_of`, in customer id order; the value
/// models are fitted on the same purchases (calibration end = `as_of`).
pub fn score(
    transactions: &[Transaction],
    as_of: NaiveDate,
    horizon_weeks: f64,
    thresholds: &Thresholds,
) -> (Vec<ScoreRow>, Option<ValueModel>) {
    let summaries = summarise(transactions, as_of);
    let model = ValueModel::fit(&summaries);
    let mut days: BTreeMap<&str, Vec<NaiveDate>> = BTreeMap::new();
    for t in transactions.iter().filter(|t| t.date <= as_of) {
        days.entry(t.customer.as_str()).or_default().push(t.date);
    }
    for d in days.values_mut() {
        d.sort_unstable();
        d.dedup();
    }
    let inputs: Vec<RfmInput> = summaries
        .iter()
        .map(|s| RfmInput {
            recency_days: s.days_since_last as f64,
            frequency: f64::from(s.purchase_days),
            monetary: s.total_amount,
        })
        .collect();
    let scores = rfm::score(&inputs);
    let rows = summaries
        .iter()
        .zip(scores)
        .map(|(s, score)| {
            let prediction = model.map(|m| m.predict(s, horizon_weeks));
            let order_days = days.get(s.customer.as_str()).map_or(&[][..], Vec::as_slice);
            ScoreRow {
                customer_id: s.customer.clone(),
                recency_days: s.days_since_last,
                frequency: s.purchase_days,
                monetary: s.total_amount,
                r: score.r,
                f: score.f,
                m: score.m,
                rfm_group: score.group.as_str(),
                stage: lifecycle::stage(order_days, as_of, thresholds).as_str(),
                probability_alive: prediction.map(|p| p.probability_alive),
                expected_purchases: prediction.map(|p| p.expected_purchases),
                lifetime_value: prediction.map(|p| p.lifetime_value),
            }
        })
        .collect();
    (rows, model)
}

/// The columns of the scores file.
pub const HEADER: [&str; 12] = [
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
    "lifetime_value",
];

/// Writes `rows` as CSV with a header row.
pub fn write_csv(rows: &[ScoreRow], out: impl Write) -> Result<(), csv::Error> {
    // The header is written even when no customer bought by the as-of date.
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    w.write_record(HEADER)?;
    for row in rows {
        w.serialize(row)?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_buyer_gets_scores_a_group_and_a_stage() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y%m%d").unwrap();
        let t = |c: &str, day: &str, amount: f64| Transaction {
            customer: c.into(),
            date: d(day),
            quantity: 1.0,
            amount,
        };
        let rows = vec![
            t("a", "20250101", 10.0),
            t("a", "20260101", 30.0),
            t("b", "20251201", 5.0),
            t("c", "20250301", 50.0),
            t("c", "20250302", 50.0),
            t("d", "20270101", 1.0), // after as-of
        ];
        let (scores, _) = score(&rows, d("20260115"), 52.0, &Thresholds::default());
        assert_eq!(scores.len(), 3);
        let by = |c: &str| scores.iter().find(|s| s.customer_id == c).unwrap();
        assert_eq!(by("a").stage, "reactivated");
        assert_eq!(by("b").stage, "active");
        assert_eq!(by("c").stage, "lapsed");
        assert_eq!(by("a").r, 5);
        assert_eq!(by("c").r, 1);
        assert_eq!(by("a").frequency, 2);
        let mut out = Vec::new();
        write_csv(&scores, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("customer_id,recency_days,frequency,monetary,r,f,m,rfm_group,stage,probability_alive,expected_purchases,lifetime_value\n"));
        assert_eq!(text.lines().count(), 4);
        // No buyer yet: the header alone, no value columns filled.
        let (none, model) = score(&rows, d("20240101"), 52.0, &Thresholds::default());
        assert!(none.is_empty() && model.is_none());
        let mut out = Vec::new();
        write_csv(&none, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
    }
}
