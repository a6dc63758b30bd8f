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

use crate::domain::earn_rules;
use crate::domain::earn_rules::Bonus;
use crate::domain::ledger::{Account, AccountKind, Transaction, TxKind};
use crate::domain::programme::Programme;
use crate::store::ledger::{self, PostError, Posted, Unsettled};
use crate::store::messages::message;
use crate::store::orders::{self, StoredOrder};
use crate::store::{programmes, tiers};

/// The event name of an order and of its refund (Segment spec).
pub const ORDER_COMPLETED: &str = "Order Completed";
/// See [`ORDER_COMPLETED`].
pub const ORDER_REFUNDED: &str = "Order Refunded";

/// What the batch knows of one order: as stored, and whether this poll created or changed it.
#[derive(Debug, Clone)]
struct OrderState {
    stored: StoredOrder,
    new: bool,
    changed: bool,
}

/// Everything a poll's plan reads and updates, loaded once for the batch.
struct BatchState {
    /// Each customer's current tier.
    tiers: HashMap<Uuid, String>,
    /// Orders named by the poll's events, known or created by it.
    orders: HashMap<String, OrderState>,
    /// Points earned per (customer, cap period key).
    usage: HashMap<(Uuid, String), i64>,
    /// The usage rows this poll changed.
    usage_changed: BTreeSet<(Uuid, String)>,
    /// Birthdays, when the programme has a birthday bonus.
    birthdays: HashMap<Uuid, String>,
    /// Balances, when refunds may not take a balance below zero.
    balances: HashMap<Uuid, i64>,
}

/// The poll's transactions, and for each the order and points of a refund (to undo if its
/// source was posted before).
struct Plan {
    txs: Vec<Transaction>,
    refund_of: Vec<Option<(String, i64)>>,
}

/// Applies `events` (one tenant's, in order, each with its customer) and returns the messages
/// to publish, and the programme accounts' share of the postings, which the caller settles
/// last before it commits ([`Unsettled`]).
pub async fn apply(
    conn: &mut PgConnection,
    tenant: &TenantId,
    events: &[(&Envelope, Uuid)],
    now: DateTime<Utc>,
) -> Result<(Vec<Outgoing>, Unsettled), PostError> {
    let t = tenant;
    // Members: enrolment and activity, whatever the programme.
    orders::record_activity(conn, t, &activity_of(events)).await?;
    let Some(p) = programmes::load(conn, t).await? else {
        return Ok((Vec::new(), Unsettled::none(t)));
    };
    let customers: Vec<Uuid> = events
        .iter()
        .map(|(_, c)| *c)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut state = load_state(conn, t, &p, events, &customers).await?;
    let plan = plan(&p, events, &mut state);
    let (posted, unsettled) =
        ledger::post_unsettled(conn, t, &plan.txs, now, p.expiry_days, p.allow_negative).await?;
    undo_replayed_refunds(&mut state, &posted, &plan);
    save_state(conn, t, &state).await?;
    let (mut messages, earned) = posted_messages(tenant, &p, &plan, &posted)?;
    messages.extend(tiers::upgrade(conn, tenant, &p, &earned, &state.tiers, now).await?);
    Ok((messages, unsettled))
}

/// Each customer's orders and latest event time in the poll.
fn activity_of(events: &[(&Envelope, Uuid)]) -> Vec<(Uuid, i64, DateTime<Utc>)> {
    let mut seen: HashMap<Uuid, (i64, DateTime<Utc>)> = HashMap::new();
    for (e, c) in events {
        let entry = seen.entry(*c).or_insert((0, e.occurred_at));
        entry.0 += i64::from(e.name.as_deref() == Some(ORDER_COMPLETED));
        entry.1 = entry.1.max(e.occurred_at);
    }
    seen.into_iter().map(|(c, (o, at))| (c, o, at)).collect()
}

/// The order an event is about: its `order_id` property, else the event's own id.
fn order_id(e: &Envelope) -> String {
    e.properties
        .get("order_id")
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .unwrap_or_else(|| e.id.clone())
}

/// Loads (and locks) what the plan needs: tiers, orders, cap usage, birthdays, balances.
async fn load_state(
    conn: &mut PgConnection,
    t: &TenantId,
    p: &Programme,
    events: &[(&Envelope, Uuid)],
    customers: &[Uuid],
) -> Result<BatchState, sqlx::Error> {
    let current_tiers = tiers::current(conn, t, customers).await?;
    let order_ids: Vec<String> = events
        .iter()
        .filter(|(e, _)| matches!(e.name.as_deref(), Some(ORDER_COMPLETED | ORDER_REFUNDED)))
        .map(|(e, _)| order_id(e))
        .collect();
    let orders = orders::lock_orders(conn, t, &order_ids)
        .await?
        .into_iter()
        .map(|(id, stored)| {
            let state = OrderState {
                stored,
                new: false,
                changed: false,
            };
            (id, state)
        })
        .collect();
    let keys: Vec<String> = events
        .iter()
        .flat_map(|(e, _)| {
            p.caps
                .iter()
                .map(|cap| earn_rules::period_key(cap, e.occurred_at))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let usage = if p.caps.is_empty() {
        HashMap::new()
    } else {
        orders::lock_cap_usage(conn, t, customers, &keys).await?
    };
    let birthdays = if p.bonuses.birthday > 0 {
        orders::birthdays(conn, t, customers).await?
    } else {
        HashMap::new()
    };
    let has_refunds = events
        .iter()
        .any(|(e, _)| e.name.as_deref() == Some(ORDER_REFUNDED));
    let balances = if has_refunds && !p.allow_negative {
        orders::lock_balances(conn, t, customers).await?
    } else {
        HashMap::new()
    };
    Ok(BatchState {
        tiers: current_tiers,
        orders,
        usage,
        usage_changed: BTreeSet::new(),
        birthdays,
        balances,
    })
}

/// Plans every event's transactions in memory, in order, updating the batch state as it goes.
fn plan(p: &Programme, events: &[(&Envelope, Uuid)], state: &mut BatchState) -> Plan {
    let issued = Account::programme(AccountKind::Issued);
    let mut out = Plan {
        txs: Vec::new(),
        refund_of: Vec::new(),
    };
    for (e, c) in events {
        let name = e.name.as_deref().unwrap_or(&e.kind);
        let mut planned: Vec<(TxKind, String, String, i64)> = Vec::new();
        match name {
            ORDER_COMPLETED => planned.extend(plan_order(p, e, *c, state)),
            ORDER_REFUNDED => planned.extend(plan_refund(p, e, *c, state)),
            _ => {}
        }
        planned.extend(plan_bonuses(p, name, e, *c, state));
        for (kind, key, reason, points) in planned.into_iter().filter(|x| x.3 != 0) {
            let (from, to) = if points > 0 {
                (issued, Account::customer(*c))
            } else {
                (Account::customer(*c), issued)
            };
            let mut tx = Transaction::transfer(kind, *c, key, reason, from, to, points.abs());
            tx.source_event = Some(e.id.clone());
            *state.balances.entry(*c).or_default() += points;
            out.txs.push(tx);
            out.refund_of
                .push((kind == TxKind::Refund).then(|| (order_id(e), -points)));
        }
    }
    out
}

/// An order seen for the first time earns its points, capped per period.
fn plan_order(
    p: &Programme,
    e: &Envelope,
    c: Uuid,
    state: &mut BatchState,
) -> Option<(TxKind, String, String, i64)> {
    let id = order_id(e);
    let std::collections::hash_map::Entry::Vacant(slot) = state.orders.entry(id.clone()) else {
        return None;
    };
    let multiplier = state
        .tiers
        .get(&c)
        .and_then(|name| p.tiers.iter().find(|tier| &tier.name == name))
        .map_or(1.0, |tier| tier.multiplier);
    let raw = earn_rules::order_points(p, &e.properties, multiplier);
    let period_keys: Vec<String> = p
        .caps
        .iter()
        .map(|cap| earn_rules::period_key(cap, e.occurred_at))
        .collect();
    let used: Vec<i64> = period_keys
        .iter()
        .map(|k| state.usage.get(&(c, k.clone())).copied().unwrap_or(0))
        .collect();
    let points = earn_rules::capped(raw, &p.caps, &used);
    for k in period_keys {
        *state.usage.entry((c, k.clone())).or_default() += points;
        state.usage_changed.insert((c, k));
    }
    let reason = if points < raw {
        format!("order {id} (capped from {raw})")
    } else {
        format!("order {id}")
    };
    let revenue = earn_rules::revenue(&e.properties).unwrap_or(0.0);
    slot.insert(OrderState {
        stored: StoredOrder {
            customer: c,
            revenue,
            points,
            taken: 0,
        },
        new: true,
        changed: true,
    });
    Some((TxKind::Earn, format!("order:{id}"), reason, points))
}

/// A refund of a known order of the same customer takes back its share of the points.
fn plan_refund(
    p: &Programme,
    e: &Envelope,
    c: Uuid,
    state: &mut BatchState,
) -> Option<(TxKind, String, String, i64)> {
    let id = order_id(e);
    let o = state
        .orders
        .get_mut(&id)
        .filter(|o| o.stored.customer == c)?;
    let mut back = earn_rules::refund_points(
        o.stored.points,
        o.stored.taken,
        o.stored.revenue,
        earn_rules::revenue(&e.properties),
    );
    if !p.allow_negative {
        back = back.min(state.balances.get(&c).copied().unwrap_or(0).max(0));
    }
    o.stored.taken += back;
    o.changed = true;
    Some((
        TxKind::Refund,
        format!("refund:{}", e.id),
        format!("refund of order {id}"),
        -back,
    ))
}

/// The programme's bonuses for an event, and the birthday bonus on the customer's birthday.
fn plan_bonuses(
    p: &Programme,
    name: &str,
    e: &Envelope,
    c: Uuid,
    state: &BatchState,
) -> Vec<(TxKind, String, String, i64)> {
    let mut planned = Vec::new();
    if let Some(bonus) = Bonus::of(name, &e.properties) {
        let key = match bonus {
            Bonus::SignUp => format!("sign_up:{c}"),
            _ => format!("bonus:{}", e.id),
        };
        planned.push((
            TxKind::Bonus,
            key,
            format!("{} bonus", bonus.as_str()),
            bonus.points(p),
        ));
    }
    if state
        .birthdays
        .get(&c)
        .is_some_and(|b| earn_rules::is_birthday(b, e.occurred_at))
    {
        planned.push((
            TxKind::Bonus,
            format!("birthday:{c}:{}", e.occurred_at.year()),
            "birthday bonus".into(),
            p.bonuses.birthday,
        ));
    }
    planned
}

/// A refund whose source was posted before (a replay) took nothing back this time.
fn undo_replayed_refunds(state: &mut BatchState, posted: &Posted, plan: &Plan) {
    for (id, refund) in posted.ids.iter().zip(&plan.refund_of) {
        if let (None, Some((order, back))) = (id, refund) {
            if let Some(o) = state.orders.get_mut(order) {
                o.stored.taken -= back;
            }
        }
    }
}

/// Writes new orders, what refunds took back, and cap usage.
async fn save_state(
    conn: &mut PgConnection,
    t: &TenantId,
    state: &BatchState,
) -> Result<(), sqlx::Error> {
    let new_orders: Vec<(&String, &StoredOrder)> = state
        .orders
        .iter()
        .filter(|(_, o)| o.new)
        .map(|(i, o)| (i, &o.stored))
        .collect();
    orders::insert_orders(conn, t, &new_orders).await?;
    let refunded: Vec<(&String, &StoredOrder)> = state
        .orders
        .iter()
        .filter(|(_, o)| o.changed && !o.new)
        .map(|(i, o)| (i, &o.stored))
        .collect();
    orders::update_taken_back(conn, t, &refunded).await?;
    let usage: Vec<(Uuid, String, i64)> = state
        .usage_changed
        .iter()
        .map(|(c, k)| {
            let n = state.usage.get(&(*c, k.clone())).copied().unwrap_or(0);
            (*c, k.clone(), n)
        })
        .collect();
    orders::save_cap_usage(conn, t, &usage).await
}

/// A `points.earned` or `points.reversed` message per posted transaction, and the customers
/// who earned (in order, for tier upgrades).
fn posted_messages(
    tenant: &TenantId,
    p: &Programme,
    plan: &Plan,
    posted: &Posted,
) -> Result<(Vec<Outgoing>, Vec<Uuid>), PostError> {
    let mut messages = Vec::new();
    let mut earned: BTreeSet<Uuid> = BTreeSet::new();
    for (tx, id) in plan.txs.iter().zip(&posted.ids) {
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
    Ok((messages, earned.into_iter().collect()))
}
