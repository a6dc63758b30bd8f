//! Customer value: the BG/NBD purchase model and the Gamma-Gamma spend model, fitted per
//! tenant by maximum likelihood, and the lifetime value they give each customer.
//!
//! Lifetime value here is expected purchases over the horizon times expected spend per
//! purchase, undiscounted (docs/segmentation.md explains the choice).

pub mod bgnbd;
pub mod gamma_gamma;
pub mod optimize;
pub mod special;
pub mod transactions;

use serde::Serialize;

pub use bgnbd::BgNbd;
pub use gamma_gamma::GammaGamma;
pub use transactions::{read_transactions, summarise, Summary, Transaction, TransactionsError};

/// Both models fitted on one calibration set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ValueModel {
    /// Purchase and dropout.
    pub bgnbd: BgNbd,
    /// Spend per purchase; `None` when no customer has a repeat purchase.
    pub gamma_gamma: Option<GammaGamma>,
}

/// A customer's predicted value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    /// Probability the customer is still alive.
    pub probability_alive: f64,
    /// Expected purchases over the horizon.
    pub expected_purchases: f64,
    /// Expected spend per purchase (0 without a spend model).
    pub expected_spend: f64,
    /// Expected purchases × expected spend.
    pub lifetime_value: f64,
}

impl ValueModel {
    /// Fits both models on `customers`; `None` when BG/NBD cannot be fitted.
    pub fn fit(customers: &[Summary]) -> Option<Self> {
        Some(Self {
            bgnbd: BgNbd::fit(customers)?,
            gamma_gamma: GammaGamma::fit(customers),
        })
    }

    /// The prediction for `customer` over `horizon_weeks`.
    pub fn predict(&self, customer: &Summary, horizon_weeks: f64) -> Prediction {
        let (x, t_x, t) = (customer.frequency, customer.recency, customer.age);
        let expected_purchases = self.bgnbd.expected_purchases(x, t_x, t, horizon_weeks);
        let expected_spend = self
            .gamma_gamma
            .map(|g| g.expected_spend(x, customer.monetary))
            .filter(|s| s.is_finite())
            .unwrap_or(0.0);
        Prediction {
            probability_alive: self.bgnbd.probability_alive(x, t_x, t),
            expected_purchases,
            expected_spend,
            lifetime_value: expected_purchases * expected_spend,
        }
    }
}
