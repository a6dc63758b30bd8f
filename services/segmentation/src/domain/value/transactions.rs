//! Purchase transactions (`customer_id,date,quantity,amount`, date `YYYYMMDD`) and the
//! per-customer summaries the value models are fitted on.

use std::collections::BTreeMap;
use std::io::Read;

use chrono::NaiveDate;

/// One purchase.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// The customer's id, opaque.
    pub customer: String,
    /// The day of the purchase.
    pub date: NaiveDate,
    /// Units bought.
    pub quantity: f64,
    /// Amount spent.
    pub amount: f64,
}

/// A transactions file that cannot be read: where and why.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TransactionsError {
    /// 1-based line number (the header is line 1).
    pub line: u64,
    /// What is wrong and what to fix.
    pub message: String,
}

/// Reads transactions from CSV with a header row naming `customer_id`, `date`, `quantity` and
/// `amount` (in any order; other columns ignored).
pub fn read_transactions(input: impl Read) -> Result<Vec<Transaction>, TransactionsError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let header_error = |message: String| TransactionsError { line: 1, message };
    let headers = reader
        .headers()
        .map_err(|e| header_error(format!("unreadable header: {e}")))?
        .clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            header_error(format!(
                "no `{name}` column; expected customer_id,date,quantity,amount"
            ))
        })
    };
    let (c, d, q, a) = (
        column("customer_id")?,
        column("date")?,
        column("quantity")?,
        column("amount")?,
    );
    let mut out = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n as u64 + 2;
        let fail = |message: String| TransactionsError { line, message };
        let record = record.map_err(|e| fail(format!("unreadable row: {e}")))?;
        let field = |i: usize| record.get(i).unwrap_or("");
        let customer = field(c).to_owned();
        if customer.is_empty() {
            return Err(fail("empty customer_id".into()));
        }
        let date = NaiveDate::parse_from_str(field(d), "%Y%m%d")
            .map_err(|_| fail(format!("date `{}` is not YYYYMMDD", field(d))))?;
        let number = |i: usize, name: &str| {
            field(i)
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| fail(format!("{name} `{}` is not a number", field(i))))
        };
        out.push(Transaction {
            customer,
            date,
            quantity: number(q, "quantity")?,
            amount: number(a, "amount")?,
        });
    }
    Ok(out)
}

/// A customer's purchase history up to an end date, in the models' terms (weeks).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The customer's id.
    pub customer: String,
    /// Repeat purchases: distinct purchase days after the first.
    pub frequency: f64,
    /// Weeks from the first purchase to the last.
    pub recency: f64,
    /// Weeks from the first purchase to the end.
    pub age: f64,
    /// Mean amount of the repeat purchase days (one day's amounts summed); 0 without repeats.
    pub monetary: f64,
    /// Days from the last purchase to the end.
    pub days_since_last: i64,
    /// Amount of all purchase days, the first included.
    pub total_amount: f64,
    /// Distinct purchase days, the first included.
    pub purchase_days: u32,
}

/// Summarises each customer's purchases on or before `end` (customers whose first purchase is
/// later are left out), in customer order.
pub fn summarise(transactions: &[Transaction], end: NaiveDate) -> Vec<Summary> {
    let mut days: BTreeMap<&str, BTreeMap<NaiveDate, f64>> = BTreeMap::new();
    for t in transactions.iter().filter(|t| t.date <= end) {
        *days
            .entry(t.customer.as_str())
            .or_default()
            .entry(t.date)
            .or_default() += t.amount;
    }
    let weeks = |from: NaiveDate, to: NaiveDate| (to - from).num_days() as f64 / 7.0;
    days.into_iter()
        .filter_map(|(customer, by_day)| {
            let (&first, _) = by_day.first_key_value()?;
            let (&last, _) = by_day.last_key_value()?;
            let repeats: Vec<f64> = by_day.values().skip(1).copied().collect();
            let frequency = repeats.len() as f64;
            let monetary = if repeats.is_empty() {
                0.0
            } else {
                repeats.iter().sum::<f64>() / frequency
            };
            Some(Summary {
                customer: customer.to_owned(),
                frequency,
                recency: weeks(first, last),
                age: weeks(first, end),
                monetary,
                days_since_last: (end - last).num_days(),
                total_amount: by_day.values().sum(),
                purchase_days: u32::try_from(by_day.len()).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_columns_in_any_order_and_reports_bad_rows() {
        let ok = "amount,customer_id,quantity,date\n12.5,c1,1,19970101\n";
        let t = read_transactions(ok.as_bytes()).unwrap();
        assert_eq!(t[0].customer, "c1");
        assert_eq!(t[0].date, NaiveDate::from_ymd_opt(1997, 1, 1).unwrap());
        assert_eq!(t[0].amount, 12.5);

        let bad = "customer_id,date,quantity,amount\nc1,19970101,1,3\nc2,1997-01-02,1,3\n";
        let err = read_transactions(bad.as_bytes()).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("YYYYMMDD"), "{err}");

        let missing = "customer_id,date,amount\nc1,19970101,3\n";
        let err = read_transactions(missing.as_bytes()).unwrap_err();
        assert!(err.message.contains("quantity"), "{err}");
    }

    #[test]
    fn summaries_count_distinct_days_after_the_first() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y%m%d").unwrap();
        let t = |c: &str, day: &str, amount: f64| Transaction {
            customer: c.into(),
            date: d(day),
            quantity: 1.0,
            amount,
        };
        let rows = vec![
            t("a", "19970101", 10.0),
            t("a", "19970115", 20.0),
            t("a", "19970115", 5.0),
            t("a", "19970129", 35.0),
            t("a", "19971201", 99.0), // after the end
            t("b", "19970201", 7.0),
            t("c", "19971001", 7.0), // first purchase after the end
        ];
        let s = summarise(&rows, d("19970212"));
        assert_eq!(s.len(), 2);
        let a = &s[0];
        assert_eq!((a.frequency, a.recency, a.age), (2.0, 4.0, 6.0));
        assert_eq!(a.monetary, 30.0); // (25 + 35) / 2: same-day amounts summed
        assert_eq!(a.total_amount, 70.0);
        assert_eq!(a.days_since_last, 14);
        assert_eq!(s[1].frequency, 0.0);
        assert_eq!(s[1].monetary, 0.0);
    }
}
