//! The double-entry points ledger, as values: accounts, entries and transactions that must
//! balance. Every movement of points is a transaction whose entries sum to zero:
//!
//! | transaction | entries |
//! |---|---|
//! | earn, bonus, positive adjustment | customer +n, issued −n |
//! | refund take-back, negative adjustment | customer −n, issued +n |
//! | reserve (redemption) | customer −n, reserved +n |
//! | confirm | reserved −n, redeemed +n |
//! | release (cancel or timeout) | reserved −n, customer +n |
//! | expire | customer −n, expired +n |
//!
//! So the programme's liability (points customers hold or have reserved) is
//! `−(issued + redeemed + expired)`, and equals the sum of customer and reserved balances.

use serde::Serialize;
use uuid::Uuid;

/// Kinds of account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A customer's available points.
    Customer,
    /// A customer's points held by unconfirmed redemptions.
    Reserved,
    /// The programme's issued points (negative: what it owes).
    Issued,
    /// Points spent on rewards.
    Redeemed,
    /// Points that expired.
    Expired,
}

impl AccountKind {
    /// The kind as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Customer => "customer",
            AccountKind::Reserved => "reserved",
            AccountKind::Issued => "issued",
            AccountKind::Redeemed => "redeemed",
            AccountKind::Expired => "expired",
        }
    }

    /// Whether the account belongs to one customer.
    pub fn per_customer(self) -> bool {
        matches!(self, AccountKind::Customer | AccountKind::Reserved)
    }
}

/// One account: a kind, and the customer for per-customer kinds (nil for the programme's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Account {
    /// Its kind.
    pub kind: AccountKind,
    /// Its customer (nil for programme accounts).
    pub customer: Uuid,
}

impl Account {
    /// A customer's available points.
    pub fn customer(id: Uuid) -> Self {
        Self {
            kind: AccountKind::Customer,
            customer: id,
        }
    }
    /// A customer's reserved points.
    pub fn reserved(id: Uuid) -> Self {
        Self {
            kind: AccountKind::Reserved,
            customer: id,
        }
    }
    /// A programme account.
    pub fn programme(kind: AccountKind) -> Self {
        Self {
            kind,
            customer: Uuid::nil(),
        }
    }
}

/// Kinds of transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TxKind {
    /// Points for an order.
    Earn,
    /// A bonus.
    Bonus,
    /// A refund's take-back.
    Refund,
    /// A manual adjustment.
    Adjust,
    /// A redemption's reservation.
    Reserve,
    /// A redemption confirmed.
    Confirm,
    /// A reservation released (cancelled or timed out).
    Release,
    /// Points expired.
    Expire,
}

impl TxKind {
    /// The kind as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TxKind::Earn => "earn",
            TxKind::Bonus => "bonus",
            TxKind::Refund => "refund",
            TxKind::Adjust => "adjust",
            TxKind::Reserve => "reserve",
            TxKind::Confirm => "confirm",
            TxKind::Release => "release",
            TxKind::Expire => "expire",
        }
    }

    /// Whether the transaction counts towards tier qualification (points earned, net of
    /// take-backs; never redemptions, expiries or adjustments).
    pub fn qualifies(self) -> bool {
        matches!(self, TxKind::Earn | TxKind::Bonus | TxKind::Refund)
    }
}

/// A transaction to post: balanced entries, a unique source, a reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// Its kind.
    pub kind: TxKind,
    /// The customer it concerns.
    pub customer: Uuid,
    /// What it comes from, unique per tenant (`event:<id>`, `order:<id>`, `api:<key>`, ...).
    pub source_key: String,
    /// The event it comes from, if any.
    pub source_event: Option<String>,
    /// Why (shown in statements).
    pub reason: String,
    /// Its entries.
    pub entries: Vec<(Account, i64)>,
    /// Whether lots follow the customer entries (new lots in, oldest first out); false for a
    /// merge, which re-keys the merged customer's lots with their dates.
    pub lots: bool,
}

/// A transaction that cannot be posted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unbalanced {
    /// Entries do not sum to zero.
    #[error("entries sum to {0}, not 0")]
    Sum(i64),
    /// No entries, or a zero entry.
    #[error("a transaction needs non-zero entries")]
    Empty,
}

impl Transaction {
    /// `n` points moved from `from` to `to` (a positive `n`).
    pub fn transfer(
        kind: TxKind,
        customer: Uuid,
        source_key: String,
        reason: String,
        from: Account,
        to: Account,
        n: i64,
    ) -> Self {
        Self {
            kind,
            customer,
            source_key,
            source_event: None,
            reason,
            entries: vec![(from, -n), (to, n)],
            lots: true,
        }
    }

    /// Ok when the entries are non-zero and sum to zero.
    pub fn check(&self) -> Result<(), Unbalanced> {
        if self.entries.is_empty() || self.entries.iter().any(|(_, a)| *a == 0) {
            return Err(Unbalanced::Empty);
        }
        let sum: i64 = self.entries.iter().map(|(_, a)| a).sum();
        if sum != 0 {
            return Err(Unbalanced::Sum(sum));
        }
        Ok(())
    }
}

/// Takes `n` points from lots `(id, remaining)` oldest first; returns `(id, taken)` per lot
/// touched and what could not be taken.
pub fn consume_fifo(lots: &[(i64, i64)], n: i64) -> (Vec<(i64, i64)>, i64) {
    let mut left = n.max(0);
    let mut taken = Vec::new();
    for &(id, remaining) in lots {
        if left == 0 {
            break;
        }
        let t = remaining.min(left);
        if t > 0 {
            taken.push((id, t));
            left -= t;
        }
    }
    (taken, left)
}

/// A signed number of points moved by hand (an adjustment): non-zero and at most
/// [`Points::MAX`] in size. Only [`Points::adjustment`] makes one, so the store never takes an
/// unchecked number for an adjustment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Points(i64);

impl Points {
    /// The largest adjustment, either way.
    pub const MAX: i64 = 1_000_000_000;

    /// `n` as an adjustment, or why it cannot be one.
    pub fn adjustment(n: i64) -> Result<Self, String> {
        if n == 0 || n.unsigned_abs() > Self::MAX.unsigned_abs() {
            return Err("points must be non-zero and at most 1e9 in size".into());
        }
        Ok(Self(n))
    }

    /// The signed number.
    pub fn get(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustment_is_non_zero_and_bounded() {
        assert_eq!(Points::adjustment(-40).map(Points::get), Ok(-40));
        assert_eq!(
            Points::adjustment(Points::MAX).map(Points::get),
            Ok(Points::MAX)
        );
        assert!(Points::adjustment(0).is_err());
        assert!(Points::adjustment(Points::MAX + 1).is_err());
        assert!(Points::adjustment(i64::MIN).is_err());
    }
    use proptest::prelude::*;

    #[test]
    fn transactions_must_balance() {
        let c = Uuid::from_u128(1);
        let t = Transaction::transfer(
            TxKind::Earn,
            c,
            "event:1".into(),
            "order".into(),
            Account::programme(AccountKind::Issued),
            Account::customer(c),
            40,
        );
        assert_eq!(t.check(), Ok(()));
        assert_eq!(
            t.entries,
            vec![
                (Account::programme(AccountKind::Issued), -40),
                (Account::customer(c), 40)
            ]
        );
        let mut bad = t.clone();
        bad.entries[0].1 = -39;
        assert_eq!(bad.check(), Err(Unbalanced::Sum(1)));
        let zero = Transaction::transfer(
            TxKind::Earn,
            c,
            "k".into(),
            "r".into(),
            Account::customer(c),
            Account::customer(c),
            0,
        );
        assert_eq!(zero.check(), Err(Unbalanced::Empty));
    }

    proptest! {
        /// FIFO consumption takes exactly min(n, available), oldest lots first, never more
        /// than a lot holds.
        #[test]
        fn fifo_takes_oldest_first(lots in proptest::collection::vec(0i64..100, 0..20), n in 0i64..2000) {
            let lots: Vec<(i64, i64)> = lots.into_iter().enumerate().map(|(i, r)| (i as i64, r)).collect();
            let available: i64 = lots.iter().map(|(_, r)| r).sum();
            let (taken, short) = consume_fifo(&lots, n);
            let total: i64 = taken.iter().map(|(_, t)| t).sum();
            prop_assert_eq!(total, n.min(available));
            prop_assert_eq!(short, n - total);
            for (id, t) in &taken {
                prop_assert!(*t <= lots[*id as usize].1);
            }
            // Every lot before the last touched one is emptied.
            if let Some((last, _)) = taken.last() {
                for (id, r) in lots.iter().take(*last as usize) {
                    let t = taken.iter().find(|(i, _)| i == id).map_or(0, |(_, t)| *t);
                    prop_assert_eq!(t, *r);
                }
            }
        }
    }
}
