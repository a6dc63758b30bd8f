//! Posting transactions: set-based for any number of them (a poll's events or one API call),
//! each source posted at most once, entries immutable, balances updated in the same statement
//! batch, lots created and consumed oldest first, and no customer balance below zero unless the
//! programme allows it.

use crm_envelope::TenantId;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::ledger::{consume_fifo, Account, AccountKind, Transaction, Unbalanced};

/// Why posting failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// A transaction does not balance (a bug: refused before touching the database).
    #[error("unbalanced transaction {0}: {1}")]
    Unbalanced(String, Unbalanced),
    /// A customer's balance would go below zero.
    #[error("customer {customer} would have {balance} points")]
    Insufficient {
        /// The customer.
        customer: Uuid,
        /// The balance the posting would leave.
        balance: i64,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What was posted.
#[derive(Debug, Default)]
pub struct Posted {
    /// Per transaction given: its id, or `None` when its source had been posted before.
    pub ids: Vec<Option<i64>>,
    /// Balances after posting of every account touched.
    pub balances: HashMap<Account, i64>,
}

/// Posts `txs` in order inside the caller's transaction. `expiry_days` dates new lots.
pub async fn post_all(
    conn: &mut PgConnection,
    tenant: &TenantId,
    txs: &[Transaction],
    now: DateTime<Utc>,
    expiry_days: Option<u32>,
    allow_negative: bool,
) -> Result<Posted, PostError> {
    let (mut posted, unsettled) =
        post_unsettled(conn, tenant, txs, now, expiry_days, allow_negative).await?;
    posted.balances.extend(unsettled.settle(conn).await?);
    Ok(posted)
}

/// An account and what a posting adds to it.
type Delta = (Account, i64);

/// The programme accounts' share of a posting, not yet written.
///
/// Every posting moves points to or from the programme's own accounts (issued, redeemed,
/// expired): one row each per tenant, which every concurrent poster updates. Whoever updates
/// such a row holds its lock until commit, so a poster that updates it first and then does the
/// rest of its work holds every other poster back for all that time. [`post_unsettled`] leaves
/// those rows to [`Unsettled::settle`], which the caller runs as the last statement before it
/// commits: the lock is then held for the commit only, and postings of different customers run
/// side by side (the consumer's lanes, replicas). Customers' accounts are always locked before
/// the programme's, in every path, so the order never deadlocks.
#[must_use = "a posting's programme accounts must be settled before the transaction commits"]
#[derive(Debug)]
pub struct Unsettled {
    tenant: TenantId,
    deltas: Vec<Delta>,
}

impl Unsettled {
    /// Nothing to settle.
    pub fn none(tenant: &TenantId) -> Self {
        Self {
            tenant: tenant.clone(),
            deltas: Vec::new(),
        }
    }

    /// Adds the programme accounts' deltas and returns their balances after.
    pub async fn settle(self, conn: &mut PgConnection) -> Result<HashMap<Account, i64>, PostError> {
        upsert_balances(conn, &self.tenant, &self.deltas, true).await
    }
}

/// Posts `txs` like [`post_all`], except the programme accounts: their deltas are returned, to
/// be settled last in the transaction ([`Unsettled`]).
pub async fn post_unsettled(
    conn: &mut PgConnection,
    tenant: &TenantId,
    txs: &[Transaction],
    now: DateTime<Utc>,
    expiry_days: Option<u32>,
    allow_negative: bool,
) -> Result<(Posted, Unsettled), PostError> {
    for t in txs {
        t.check()
            .map_err(|e| PostError::Unbalanced(t.source_key.clone(), e))?;
    }
    // The first transaction of each source key in the list is a candidate; those whose key
    // was posted before are skipped by the insert itself (one statement: no read first, and
    // a concurrent poster of the same source waits for the other and then skips it).
    let mut seen: HashSet<&str> = HashSet::with_capacity(txs.len());
    let candidates: Vec<&Transaction> = txs
        .iter()
        .filter(|t| seen.insert(t.source_key.as_str()))
        .collect();
    let inserted: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO ledger_transactions (tenant_id, kind, customer_id, source_key, source_event, reason, created_at)
         SELECT $1, k, c, s, e, r, $7
           FROM unnest($2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS x(k, c, s, e, r, n)
          ORDER BY n
         ON CONFLICT (tenant_id, source_key) DO NOTHING
         RETURNING id, source_key",
    )
    .bind(tenant)
    .bind(candidates.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>())
    .bind(candidates.iter().map(|t| t.customer).collect::<Vec<_>>())
    .bind(candidates.iter().map(|t| t.source_key.as_str()).collect::<Vec<_>>())
    .bind(candidates.iter().map(|t| t.source_event.as_deref()).collect::<Vec<_>>())
    .bind(candidates.iter().map(|t| t.reason.as_str()).collect::<Vec<_>>())
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut new_ids: HashMap<String, i64> = inserted.into_iter().map(|(id, k)| (k, id)).collect();
    // Per transaction given: its new id, taken once (a repeated key posts once).
    let given: Vec<Option<i64>> = txs.iter().map(|t| new_ids.remove(&t.source_key)).collect();
    let todo: Vec<&Transaction> = txs
        .iter()
        .zip(&given)
        .filter(|(_, id)| id.is_some())
        .map(|(t, _)| t)
        .collect();
    let ids: Vec<i64> = given.iter().flatten().copied().collect();
    let mut posted = Posted::default();
    if todo.is_empty() {
        posted.ids = vec![None; txs.len()];
        return Ok((posted, Unsettled::none(tenant)));
    }
    let (mut e_tx, mut e_kind, mut e_cust, mut e_amount) = (vec![], vec![], vec![], vec![]);
    let mut deltas: BTreeMap<Account, i64> = BTreeMap::new();
    for (t, id) in todo.iter().zip(&ids) {
        for (account, amount) in &t.entries {
            e_tx.push(*id);
            e_kind.push(account.kind.as_str());
            e_cust.push(account.customer);
            e_amount.push(*amount);
            *deltas.entry(*account).or_default() += amount;
        }
    }
    sqlx::query(
        "INSERT INTO entries (tenant_id, transaction_id, kind, customer_id, amount, created_at)
         SELECT $1, t, k, c, a, $6 FROM unnest($2::int8[], $3::text[], $4::uuid[], $5::int8[]) AS x(t, k, c, a)",
    )
    .bind(tenant)
    .bind(&e_tx)
    .bind(&e_kind)
    .bind(&e_cust)
    .bind(&e_amount)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let (programme, customers): (Vec<Delta>, Vec<Delta>) = deltas
        .into_iter()
        .filter(|(_, d)| *d != 0)
        .partition(|(a, _)| a.customer.is_nil());
    for (account, balance) in upsert_balances(conn, tenant, &customers, allow_negative).await? {
        posted.balances.insert(account, balance);
    }
    update_lots(conn, tenant, &todo, now, expiry_days).await?;
    update_qualifying(conn, tenant, &todo, now).await?;
    posted.ids = given;
    let unsettled = Unsettled {
        tenant: tenant.clone(),
        deltas: programme,
    };
    Ok((posted, unsettled))
}

/// Adds `deltas` to their accounts (created at zero when new) in key order, so concurrent
/// posters lock them in the same order, and returns the balances after. A customer account
/// left below zero fails the posting unless `allow_negative`.
async fn upsert_balances(
    conn: &mut PgConnection,
    tenant: &TenantId,
    deltas: &[Delta],
    allow_negative: bool,
) -> Result<HashMap<Account, i64>, PostError> {
    let mut balances = HashMap::with_capacity(deltas.len());
    if deltas.is_empty() {
        return Ok(balances);
    }
    let a_kind: Vec<&str> = deltas.iter().map(|(a, _)| a.kind.as_str()).collect();
    let a_cust: Vec<Uuid> = deltas.iter().map(|(a, _)| a.customer).collect();
    let a_delta: Vec<i64> = deltas.iter().map(|(_, d)| *d).collect();
    let rows: Vec<(String, Uuid, i64)> = sqlx::query_as(
        "INSERT INTO accounts AS a (tenant_id, kind, customer_id, balance)
         SELECT $1, k, c, d FROM unnest($2::text[], $3::uuid[], $4::int8[]) AS x(k, c, d) ORDER BY k, c
         ON CONFLICT (tenant_id, kind, customer_id) DO UPDATE SET balance = a.balance + EXCLUDED.balance
         RETURNING kind, customer_id, balance",
    )
    .bind(tenant)
    .bind(&a_kind)
    .bind(&a_cust)
    .bind(&a_delta)
    .fetch_all(&mut *conn)
    .await?;
    for (kind, customer, balance) in rows {
        let kind = match kind.as_str() {
            "customer" => AccountKind::Customer,
            "reserved" => AccountKind::Reserved,
            "issued" => AccountKind::Issued,
            "redeemed" => AccountKind::Redeemed,
            _ => AccountKind::Expired,
        };
        if kind == AccountKind::Customer && balance < 0 && !allow_negative {
            return Err(PostError::Insufficient { customer, balance });
        }
        balances.insert(Account { kind, customer }, balance);
    }
    Ok(balances)
}

/// New lots for points that enter customer accounts; oldest-first consumption for points that
/// leave them.
async fn update_lots(
    conn: &mut PgConnection,
    tenant: &TenantId,
    txs: &[&Transaction],
    now: DateTime<Utc>,
    expiry_days: Option<u32>,
) -> Result<(), sqlx::Error> {
    let expires = expiry_days.map(|d| now + Duration::days(i64::from(d)));
    let (mut new_cust, mut new_points) = (vec![], vec![]);
    let mut outflows: Vec<(Uuid, i64)> = Vec::new();
    for t in txs.iter().filter(|t| t.lots) {
        for (account, amount) in &t.entries {
            if account.kind != AccountKind::Customer {
                continue;
            }
            if *amount > 0 {
                new_cust.push(account.customer);
                new_points.push(*amount);
            } else {
                outflows.push((account.customer, -amount));
            }
        }
    }
    if !outflows.is_empty() {
        let customers: Vec<Uuid> = outflows
            .iter()
            .map(|(c, _)| *c)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let open: Vec<(i64, Uuid, i64)> = sqlx::query_as(
            "SELECT id, customer_id, remaining FROM lots
             WHERE tenant_id = $1 AND customer_id = ANY($2) AND remaining > 0
             ORDER BY customer_id, earned_at, id FOR UPDATE",
        )
        .bind(tenant)
        .bind(&customers)
        .fetch_all(&mut *conn)
        .await?;
        let mut by_customer: HashMap<Uuid, Vec<(i64, i64)>> = HashMap::new();
        for (id, c, r) in open {
            by_customer.entry(c).or_default().push((id, r));
        }
        let mut changed: BTreeMap<i64, i64> = BTreeMap::new();
        for (c, n) in outflows {
            let lots = by_customer.entry(c).or_default();
            let (taken, _) = consume_fifo(lots, n);
            for (id, t) in taken {
                if let Some(l) = lots.iter_mut().find(|(i, _)| *i == id) {
                    l.1 -= t;
                    changed.insert(id, l.1);
                }
            }
            lots.retain(|(_, r)| *r > 0);
        }
        let (ids, rem): (Vec<i64>, Vec<i64>) = changed.into_iter().unzip();
        sqlx::query(
            "UPDATE lots l SET remaining = x.r FROM unnest($2::int8[], $3::int8[]) AS x(id, r)
             WHERE l.tenant_id = $1 AND l.id = x.id",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(&rem)
        .execute(&mut *conn)
        .await?;
    }
    if !new_cust.is_empty() {
        sqlx::query(
            "INSERT INTO lots (tenant_id, customer_id, earned_at, expires_at, points, remaining)
             SELECT $1, c, $4, $5, p, p FROM unnest($2::uuid[], $3::int8[]) AS x(c, p)",
        )
        .bind(tenant)
        .bind(&new_cust)
        .bind(&new_points)
        .bind(now)
        .bind(expires)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Adds the qualifying points of `txs` (earned, bonus, taken back) to today's buckets.
async fn update_qualifying(
    conn: &mut PgConnection,
    tenant: &TenantId,
    txs: &[&Transaction],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut per_customer: BTreeMap<Uuid, i64> = BTreeMap::new();
    for t in txs.iter().filter(|t| t.kind.qualifies()) {
        for (account, amount) in &t.entries {
            if account.kind == AccountKind::Customer && account.customer == t.customer {
                *per_customer.entry(t.customer).or_default() += amount;
            }
        }
    }
    per_customer.retain(|_, n| *n != 0);
    if per_customer.is_empty() {
        return Ok(());
    }
    let (ids, points): (Vec<Uuid>, Vec<i64>) = per_customer.into_iter().unzip();
    sqlx::query(
        "INSERT INTO qualifying_days AS q (tenant_id, customer_id, day, points)
         SELECT $1, c, $4, p FROM unnest($2::uuid[], $3::int8[]) AS x(c, p)
         ON CONFLICT (tenant_id, customer_id, day) DO UPDATE SET points = q.points + EXCLUDED.points",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&points)
    .bind(now.date_naive())
    .execute(conn)
    .await?;
    Ok(())
}

/// The balance of a customer's available points, locking the account row until the caller's
/// transaction ends (so checks and postings of one customer never interleave).
pub async fn lock_balance(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query("INSERT INTO accounts (tenant_id, kind, customer_id, balance) VALUES ($1, 'customer', $2, 0) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .bind(customer)
        .execute(&mut *conn)
        .await?;
    let (balance,): (i64,) = sqlx::query_as("SELECT balance FROM accounts WHERE tenant_id = $1 AND kind = 'customer' AND customer_id = $2 FOR UPDATE")
        .bind(tenant)
        .bind(customer)
        .fetch_one(&mut *conn)
        .await?;
    Ok(balance)
}
