//! Rewards and what moves points outside earning: the catalogue, redemptions (reserve, then
//! confirm or cancel; unconfirmed ones released after the programme's timeout), manual
//! adjustments, and expiry of lots. Each runs inside the caller's transaction with the
//! customer's account row locked, so concurrent requests never overdraw.

use chrono::{DateTime, Duration, Utc};
use crm_envelope::TenantId;
use crm_kafka::outbox::Outgoing;
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::ledger::{Account, AccountKind, Points, Transaction, TxKind};
use crate::domain::programme::Programme;
use crate::store::ledger::{lock_balance, post_all, PostError};
use crate::store::messages::message;

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Not enough points (409 `insufficient_points`).
    #[error("the customer has {balance} points; {needed} are needed")]
    Insufficient {
        /// Available points.
        balance: i64,
        /// Points needed.
        needed: i64,
    },
    /// No such reward or redemption (404).
    #[error("{0}")]
    NotFound(&'static str),
    /// The reward cannot be redeemed now (409 `reward_unavailable`).
    #[error("{0}")]
    Unavailable(String),
    /// The redemption is not in a state that allows this (409 `invalid_state`).
    #[error("{0}")]
    State(String),
    /// The same request was applied before (409 `already_applied`).
    #[error("this request was already applied")]
    Duplicate,
    /// Bad input (422 `invalid_request`).
    #[error("{0}")]
    Invalid(String),
    /// Posting failed.
    #[error(transparent)]
    Post(#[from] PostError),
}

impl From<sqlx::Error> for OpError {
    fn from(e: sqlx::Error) -> Self {
        OpError::Post(PostError::Db(e))
    }
}

/// A redemption.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Redemption {
    /// Its id.
    pub id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// The reward.
    pub reward_id: Uuid,
    /// Points it costs.
    pub points: i64,
    /// `reserved`, `confirmed`, `cancelled` or `released` (timed out).
    pub status: String,
    /// Reserved at.
    pub reserved_at: DateTime<Utc>,
    /// An unconfirmed reservation is released at this time.
    pub expires_at: DateTime<Utc>,
    /// Confirmed, cancelled or released at.
    pub settled_at: Option<DateTime<Utc>>,
    /// The coupon issued on confirmation, unique per tenant.
    pub coupon_code: Option<String>,
}

/// A reward as a reservation reads it: cost, stock, validity, active, name.
type RewardState = (
    i64,
    Option<i32>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    bool,
    String,
);

const REDEMPTION: &str =
    "id, customer_id, reward_id, points, status, reserved_at, expires_at, settled_at, coupon_code";

async fn post_one(
    conn: &mut PgConnection,
    tenant: &TenantId,
    p: &Programme,
    tx: Transaction,
    now: DateTime<Utc>,
) -> Result<(i64, Option<i64>), OpError> {
    let customer = tx.customer;
    let posted = post_all(conn, tenant, &[tx], now, p.expiry_days, p.allow_negative).await?;
    let id = posted
        .ids
        .first()
        .copied()
        .flatten()
        .ok_or(OpError::Duplicate)?;
    Ok((
        id,
        posted.balances.get(&Account::customer(customer)).copied(),
    ))
}

/// Adds (or with a negative `points`, removes) points by hand, with a reason.
#[allow(clippy::too_many_arguments)]
pub async fn adjust(
    conn: &mut PgConnection,
    tenant: &TenantId,
    p: &Programme,
    customer: Uuid,
    points: Points,
    reason: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Result<(i64, Vec<Outgoing>), OpError> {
    let points = points.get();
    if reason.trim().is_empty() || reason.len() > 500 {
        return Err(OpError::Invalid(
            "a reason of 1 to 500 characters is required".into(),
        ));
    }
    let balance = lock_balance(conn, tenant, customer).await?;
    if points < 0 && balance + points < 0 && !p.allow_negative {
        return Err(OpError::Insufficient {
            balance,
            needed: -points,
        });
    }
    let issued = Account::programme(AccountKind::Issued);
    let (from, to) = if points > 0 {
        (issued, Account::customer(customer))
    } else {
        (Account::customer(customer), issued)
    };
    let tx = Transaction::transfer(
        TxKind::Adjust,
        customer,
        format!("api:{key}"),
        format!("adjustment: {reason}"),
        from,
        to,
        points.abs(),
    );
    let (id, balance) = post_one(conn, tenant, p, tx, now).await?;
    let kind = if points > 0 {
        "points.earned"
    } else {
        "points.reversed"
    };
    let m = message(
        tenant,
        kind,
        customer,
        json!({"transaction_id": id, "points": points, "kind": "adjust", "reason": reason, "balance": balance}),
    )?;
    Ok((id, vec![m]))
}

/// Reserves a reward for a customer: the points move to their reserved account and the stock
/// goes down, until confirmed, cancelled or released.
pub async fn reserve(
    conn: &mut PgConnection,
    tenant: &TenantId,
    p: &Programme,
    customer: Uuid,
    reward: Uuid,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Redemption, OpError> {
    let t = tenant;
    let row: Option<RewardState> =
        sqlx::query_as("SELECT cost, stock, valid_from, valid_to, active, name FROM rewards WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
            .bind(t)
            .bind(reward)
            .fetch_optional(&mut *conn)
            .await?;
    let (cost, stock, from, to, active, name) = row.ok_or(OpError::NotFound("no such reward"))?;
    if !active || from.is_some_and(|f| now < f) || to.is_some_and(|t| now >= t) {
        return Err(OpError::Unavailable(format!(
            "reward {name:?} cannot be redeemed now"
        )));
    }
    if stock == Some(0) {
        return Err(OpError::Unavailable(format!(
            "reward {name:?} is out of stock"
        )));
    }
    let balance = lock_balance(conn, t, customer).await?;
    if balance < cost {
        return Err(OpError::Insufficient {
            balance,
            needed: cost,
        });
    }
    let tx = Transaction::transfer(
        TxKind::Reserve,
        customer,
        format!("api:{key}"),
        format!("reserved for reward {name}"),
        Account::customer(customer),
        Account::reserved(customer),
        cost,
    );
    post_one(conn, t, p, tx, now).await?;
    if stock.is_some() {
        sqlx::query("UPDATE rewards SET stock = stock - 1 WHERE tenant_id = $1 AND id = $2")
            .bind(t)
            .bind(reward)
            .execute(&mut *conn)
            .await?;
    }
    let r: Redemption = sqlx::query_as(&format!(
        "INSERT INTO redemptions (tenant_id, id, customer_id, reward_id, points, status, reserved_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, 'reserved', $6, $7) RETURNING {REDEMPTION}"
    ))
    .bind(t)
    .bind(Uuid::now_v7())
    .bind(customer)
    .bind(reward)
    .bind(cost)
    .bind(now)
    .bind(now + Duration::seconds(i64::from(p.reservation_timeout_secs)))
    .fetch_one(&mut *conn)
    .await?;
    Ok(r)
}

async fn locked(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Redemption, OpError> {
    sqlx::query_as(&format!(
        "SELECT {REDEMPTION} FROM redemptions WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(OpError::NotFound("no such redemption"))
}

/// A coupon code: `RW-` and 12 characters without look-alikes (about 60 bits).
fn coupon() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let body: String = (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("RW-{}-{}-{}", &body[0..4], &body[4..8], &body[8..12])
}

/// Confirms a reservation: the points are redeemed and a coupon unique to the tenant is issued.
pub async fn confirm(
    conn: &mut PgConnection,
    tenant: &TenantId,
    p: &Programme,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(Redemption, Vec<Outgoing>), OpError> {
    let t = tenant;
    let r = locked(conn, t, id).await?;
    if r.status != "reserved" {
        return Err(OpError::State(format!(
            "the redemption is {}, not reserved",
            r.status
        )));
    }
    if r.expires_at <= now {
        return Err(OpError::State(
            "the reservation has expired; its points were or will be released".into(),
        ));
    }
    let tx = Transaction::transfer(
        TxKind::Confirm,
        r.customer_id,
        format!("confirm:{id}"),
        "reward redeemed".into(),
        Account::reserved(r.customer_id),
        Account::programme(AccountKind::Redeemed),
        r.points,
    );
    let (tx_id, balance) = post_one(conn, t, p, tx, now).await?;
    let mut code = coupon();
    for _ in 0..5 {
        let (taken,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM redemptions WHERE tenant_id = $1 AND coupon_code = $2)",
        )
        .bind(t)
        .bind(&code)
        .fetch_one(&mut *conn)
        .await?;
        if !taken {
            break;
        }
        code = coupon();
    }
    let r: Redemption = sqlx::query_as(&format!(
        "UPDATE redemptions SET status = 'confirmed', settled_at = $3, coupon_code = $4 WHERE tenant_id = $1 AND id = $2 RETURNING {REDEMPTION}"
    ))
    .bind(t)
    .bind(id)
    .bind(now)
    .bind(&code)
    .fetch_one(&mut *conn)
    .await?;
    let messages = vec![
        message(
            tenant,
            "points.redeemed",
            r.customer_id,
            json!({"transaction_id": tx_id, "points": -r.points, "redemption_id": id, "balance": balance}),
        )?,
        message(
            tenant,
            "reward.issued",
            r.customer_id,
            json!({"redemption_id": id, "reward_id": r.reward_id, "coupon_code": code}),
        )?,
    ];
    Ok((r, messages))
}

/// Cancels a reservation (or releases it after the timeout: `status` = `released`): the points
/// go back to the customer and the stock up.
pub async fn cancel(
    conn: &mut PgConnection,
    tenant: &TenantId,
    p: &Programme,
    id: Uuid,
    status: &str,
    now: DateTime<Utc>,
) -> Result<Redemption, OpError> {
    let t = tenant;
    let r = locked(conn, t, id).await?;
    if r.status != "reserved" {
        return Err(OpError::State(format!(
            "the redemption is {}, not reserved",
            r.status
        )));
    }
    let tx = Transaction::transfer(
        TxKind::Release,
        r.customer_id,
        format!("release:{id}"),
        format!("reservation {status}"),
        Account::reserved(r.customer_id),
        Account::customer(r.customer_id),
        r.points,
    );
    post_one(conn, t, p, tx, now).await?;
    sqlx::query("UPDATE rewards SET stock = stock + 1 WHERE tenant_id = $1 AND id = $2 AND stock IS NOT NULL").bind(t).bind(r.reward_id).execute(&mut *conn).await?;
    Ok(sqlx::query_as(&format!("UPDATE redemptions SET status = $3, settled_at = $4 WHERE tenant_id = $1 AND id = $2 RETURNING {REDEMPTION}"))
        .bind(t)
        .bind(id)
        .bind(status)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?)
}

/// Expires the lots of one customer whose time has come: one transaction, oldest lots first.
/// Returns the message, if anything expired.
pub async fn expire_customer(
    conn: &mut PgConnection,
    tenant: &TenantId,
    p: &Programme,
    customer: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Outgoing>, OpError> {
    let t = tenant;
    let balance = lock_balance(conn, t, customer).await?;
    let (due, last): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT sum(remaining)::int8, max(id) FROM lots WHERE tenant_id = $1 AND customer_id = $2 AND remaining > 0 AND expires_at <= $3",
    )
    .bind(t)
    .bind(customer)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let n = due.unwrap_or(0).min(balance);
    let Some(last) = last.filter(|_| n > 0) else {
        return Ok(None);
    };
    let tx = Transaction::transfer(
        TxKind::Expire,
        customer,
        format!("expire:{customer}:{last}"),
        "points expired".into(),
        Account::customer(customer),
        Account::programme(AccountKind::Expired),
        n,
    );
    let (id, balance) = post_one(conn, t, p, tx, now).await?;
    Ok(Some(message(
        tenant,
        "points.expired",
        customer,
        json!({"transaction_id": id, "points": -n, "balance": balance}),
    )?))
}
