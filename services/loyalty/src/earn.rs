//! Earning from resolved events, a poll at a time: every event's points are planned in memory
//! from state loaded once per batch (tiers, cap usage, orders, birthdays, balances), then posted
//! set-based. Orders earn once per `order_id`, refunds take back their share, bonuses follow
//! the programme; a source posts at most once however often it is delivered or replayed.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Utc};
use crm_envelope::{Envelope, TenantId};
use crm_kafka::outbox::Outgoing;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::earning::{self, Bonus};
use crate::ledger::{Account, AccountKind, Transaction, TxKind};
use crate::messages::message;
use crate::store::{ledger, programmes, tiers};

/// The event name of an order and of its refund (Segment spec).
pub const ORDER_COMPLETED: &str = "Order Completed";
/// See [`ORDER_COMPLETED`].
pub const ORDER_REFUNDED: &str = "Order Refunded";

/// What the batch knows of one order.
#[derive(Debug, Clone)]
struct OrderState {
    customer: Uuid,
    revenue: f64,
    points: i64,
    taken: i64,
    new: bool,
    changed: bool,
}

/// Applies `events` (one tenant's, in order, each with its customer) and returns the messages
/// to publish.
pub async fn apply(
    conn: &mut PgConnection,
    tenant: &TenantId,
    events: &[(&Envelope, Uuid)],
    now: DateTime<Utc>,
) -> Result<Vec<Outgoing>, crate::store::ledger::PostError> {
    let t = tenant.as_str();
    let customers: Vec<Uuid> = events
        .iter()
        .map(|(_, c)| *c)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Members: enrolment and activity, whatever the programme.
    let mut seen: HashMap<Uuid, (i64, DateTime<Utc>)> = HashMap::new();
    for (e, c) in events {
        let entry = seen.entry(*c).or_insert((0, e.occurred_at));
        entry.0 += i64::from(e.name.as_deref() == Some(ORDER_COMPLETED));
        entry.1 = entry.1.max(e.occurred_at);
    }
    let (mut m_ids, mut m_orders, mut m_at) = (Vec::new(), Vec::new(), Vec::new());
    for (c, (o, at)) in seen {
        m_ids.push(c);
        m_orders.push(o);
        m_at.push(at);
    }
    sqlx::query(
        "INSERT INTO members AS m (tenant_id, customer_id, orders_seen, last_activity_at)
         SELECT $1, c, o, a FROM unnest($2::uuid[], $3::int8[], $4::timestamptz[]) AS x(c, o, a) ORDER BY c
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
             orders_seen = m.orders_seen + EXCLUDED.orders_seen,
             last_activity_at = GREATEST(m.last_activity_at, EXCLUDED.last_activity_at)",
    )
    .bind(t)
    .bind(&m_ids)
    .bind(&m_orders)
    .bind(&m_at)
    .execute(&mut *conn)
    .await?;

    let Some(p) = programmes::load(conn, t).await? else {
        return Ok(Vec::new());
    };

    // State for the whole batch.
    let current_tiers = tiers::current(conn, t, &customers).await?;
    let multiplier = |c: &Uuid| {
        current_tiers
            .get(c)
            .and_then(|name| p.tiers.iter().find(|tier| &tier.name == name))
            .map_or(1.0, |tier| tier.multiplier)
    };
    let order_id = |e: &Envelope| {
        e.properties
            .get("order_id")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_else(|| e.id.clone())
    };
    let order_ids: Vec<String> = events
        .iter()
        .filter(|(e, _)| matches!(e.name.as_deref(), Some(ORDER_COMPLETED | ORDER_REFUNDED)))
        .map(|(e, _)| order_id(e))
        .collect();
    let known: Vec<(String, Uuid, f64, i64, i64)> = sqlx::query_as(
        "SELECT order_id, customer_id, revenue, points, taken_back FROM orders WHERE tenant_id = $1 AND order_id = ANY($2) FOR UPDATE",
    )
    .bind(t)
    .bind(&order_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut orders: HashMap<String, OrderState> = known
        .into_iter()
        .map(|(id, customer, revenue, points, taken)| {
            (
                id,
                OrderState {
                    customer,
                    revenue,
                    points,
                    taken,
                    new: false,
                    changed: false,
                },
            )
        })
        .collect();
    let keys: Vec<String> = events
        .iter()
        .flat_map(|(e, _)| {
            p.caps
                .iter()
                .map(|cap| earning::period_key(cap, e.occurred_at))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let usage_rows: Vec<(Uuid, String, i64)> = if p.caps.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as("SELECT customer_id, period_key, points FROM cap_usage WHERE tenant_id = $1 AND customer_id = ANY($2) AND period_key = ANY($3) FOR UPDATE")
            .bind(t)
            .bind(&customers)
            .bind(&keys)
            .fetch_all(&mut *conn)
            .await?
    };
    let mut usage: HashMap<(Uuid, String), i64> = usage_rows
        .into_iter()
        .map(|(c, k, n)| ((c, k), n))
        .collect();
    let mut usage_changed: BTreeSet<(Uuid, String)> = BTreeSet::new();
    let birthdays: HashMap<Uuid, String> = if p.bonuses.birthday > 0 {
        sqlx::query_as::<_, (Uuid, String)>("SELECT customer_id, birthday FROM profiles WHERE tenant_id = $1 AND customer_id = ANY($2) AND birthday IS NOT NULL")
            .bind(t)
            .bind(&customers)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    let has_refunds = events
        .iter()
        .any(|(e, _)| e.name.as_deref() == Some(ORDER_REFUNDED));
    let mut balances: HashMap<Uuid, i64> = if has_refunds && !p.allow_negative {
        sqlx::query_as::<_, (Uuid, i64)>("SELECT customer_id, balance FROM accounts WHERE tenant_id = $1 AND kind = 'customer' AND customer_id = ANY($2) ORDER BY customer_id FOR UPDATE")
            .bind(t)
            .bind(&customers)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };

    // Plan.
    let issued = Account::programme(AccountKind::Issued);
    let mut txs: Vec<Transaction> = Vec::new();
    // The order and points of each refund transaction, to undo if its source was posted before.
    let mut refund_of: Vec<Option<(String, i64)>> = Vec::new();
    for (e, c) in events {
        let name = e.name.as_deref().unwrap_or(&e.kind);
        let mut planned: Vec<(TxKind, String, String, i64)> = Vec::new();
        match name {
            ORDER_COMPLETED => {
                let id = order_id(e);
                if let std::collections::hash_map::Entry::Vacant(slot) = orders.entry(id.clone()) {
                    let raw = earning::order_points(&p, &e.properties, multiplier(c));
                    let period_keys: Vec<String> = p
                        .caps
                        .iter()
                        .map(|cap| earning::period_key(cap, e.occurred_at))
                        .collect();
                    let used: Vec<i64> = period_keys
                        .iter()
                        .map(|k| usage.get(&(*c, k.clone())).copied().unwrap_or(0))
                        .collect();
                    let points = earning::capped(raw, &p.caps, &used);
                    for k in period_keys {
                        *usage.entry((*c, k.clone())).or_default() += points;
                        usage_changed.insert((*c, k));
                    }
                    let reason = if points < raw {
                        format!("order {id} (capped from {raw})")
                    } else {
                        format!("order {id}")
                    };
                    planned.push((TxKind::Earn, format!("order:{id}"), reason, points));
                    let revenue = earning::revenue(&e.properties).unwrap_or(0.0);
                    slot.insert(OrderState {
                        customer: *c,
                        revenue,
                        points,
                        taken: 0,
                        new: true,
                        changed: true,
                    });
                }
            }
            ORDER_REFUNDED => {
                let id = order_id(e);
                if let Some(o) = orders.get_mut(&id).filter(|o| o.customer == *c) {
                    let mut back = earning::refund_points(
                        o.points,
                        o.taken,
                        o.revenue,
                        earning::revenue(&e.properties),
                    );
                    if !p.allow_negative {
                        back = back.min(balances.get(c).copied().unwrap_or(0).max(0));
                    }
                    o.taken += back;
                    o.changed = true;
                    planned.push((
                        TxKind::Refund,
                        format!("refund:{}", e.id),
                        format!("refund of order {id}"),
                        -back,
                    ));
                }
            }
            _ => {}
        }
        if let Some(bonus) = Bonus::of(name, &e.properties) {
            let key = match bonus {
                Bonus::SignUp => format!("sign_up:{c}"),
                _ => format!("bonus:{}", e.id),
            };
            planned.push((
                TxKind::Bonus,
                key,
                format!("{} bonus", bonus.as_str()),
                bonus.points(&p),
            ));
        }
        if birthdays
            .get(c)
            .is_some_and(|b| earning::is_birthday(b, e.occurred_at))
        {
            planned.push((
                TxKind::Bonus,
                format!("birthday:{c}:{}", e.occurred_at.year()),
                "birthday bonus".into(),
                p.bonuses.birthday,
            ));
        }
        for (kind, key, reason, points) in planned.into_iter().filter(|x| x.3 != 0) {
            let (from, to) = if points > 0 {
                (issued, Account::customer(*c))
            } else {
                (Account::customer(*c), issued)
            };
            let mut tx = Transaction::transfer(kind, *c, key, reason, from, to, points.abs());
            tx.source_event = Some(e.id.clone());
            *balances.entry(*c).or_default() += points;
            txs.push(tx);
            refund_of.push((kind == TxKind::Refund).then(|| (order_id(e), -points)));
        }
    }

    // Post and record.
    let posted = ledger::post_all(conn, t, &txs, now, p.expiry_days, p.allow_negative).await?;
    // A refund whose source was posted before (a replay) took nothing back this time.
    for (id, refund) in posted.ids.iter().zip(&refund_of) {
        if let (None, Some((order, back))) = (id, refund) {
            if let Some(o) = orders.get_mut(order) {
                o.taken -= back;
            }
        }
    }
    let new_orders: Vec<(&String, &OrderState)> = orders.iter().filter(|(_, o)| o.new).collect();
    if !new_orders.is_empty() {
        sqlx::query(
            "INSERT INTO orders (tenant_id, order_id, customer_id, revenue, points, taken_back)
             SELECT $1, i, c, r, p, k FROM unnest($2::text[], $3::uuid[], $4::float8[], $5::int8[], $6::int8[]) AS x(i, c, r, p, k)
             ON CONFLICT (tenant_id, order_id) DO NOTHING",
        )
        .bind(t)
        .bind(new_orders.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>())
        .bind(new_orders.iter().map(|(_, o)| o.customer).collect::<Vec<_>>())
        .bind(new_orders.iter().map(|(_, o)| o.revenue).collect::<Vec<_>>())
        .bind(new_orders.iter().map(|(_, o)| o.points).collect::<Vec<_>>())
        .bind(new_orders.iter().map(|(_, o)| o.taken).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    let refunded: Vec<(&String, &OrderState)> =
        orders.iter().filter(|(_, o)| o.changed && !o.new).collect();
    if !refunded.is_empty() {
        sqlx::query("UPDATE orders o SET taken_back = x.k FROM unnest($2::text[], $3::int8[]) AS x(i, k) WHERE o.tenant_id = $1 AND o.order_id = x.i")
            .bind(t)
            .bind(refunded.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>())
            .bind(refunded.iter().map(|(_, o)| o.taken).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    if !usage_changed.is_empty() {
        let rows: Vec<(Uuid, String, i64)> = usage_changed
            .into_iter()
            .map(|(c, k)| {
                let n = usage.get(&(c, k.clone())).copied().unwrap_or(0);
                (c, k, n)
            })
            .collect();
        sqlx::query(
            "INSERT INTO cap_usage (tenant_id, customer_id, period_key, points)
             SELECT $1, c, k, n FROM unnest($2::uuid[], $3::text[], $4::int8[]) AS x(c, k, n)
             ON CONFLICT (tenant_id, customer_id, period_key) DO UPDATE SET points = EXCLUDED.points",
        )
        .bind(t)
        .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    let mut messages = Vec::new();
    let mut earned: BTreeSet<Uuid> = BTreeSet::new();
    for (tx, id) in txs.iter().zip(&posted.ids) {
        let Some(id) = id else { continue };
        let points: i64 = tx
            .entries
            .iter()
            .filter(|(a, _)| a.kind == AccountKind::Customer)
            .map(|(_, n)| n)
            .sum();
        let kind = if points >= 0 {
            "points.earned"
        } else {
            "points.reversed"
        };
        earned.insert(tx.customer);
        let balance = posted
            .balances
            .get(&Account::customer(tx.customer))
            .copied();
        messages.push(message(
            tenant,
            kind,
            tx.customer,
            json!({
            "transaction_id": id, "points": points, "kind": tx.kind.as_str(), "reason": tx.reason,
            "source_event": tx.source_event, "balance": balance, "currency": p.currency}),
        )?);
    }
    let earned: Vec<Uuid> = earned.into_iter().collect();
    messages.extend(tiers::upgrade(conn, tenant, &p, &earned, &current_tiers, now).await?);
    Ok(messages)
}
