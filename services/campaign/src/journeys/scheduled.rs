//! Scheduled and date-trait journeys (a use case): each pass looks at every published journey
//! whose trigger is a schedule (cron in the journey's time zone, over a segment's members as
//! campaign mirrors them) or a date trait (birthday, renewal, with an offset, at a local time
//! in each customer's zone), and enters the customers whose time came since the last pass, a
//! batch per transaction, with the journey's entry rules. The last pass's time is recorded
//! per journey version, so a pass missed is made up once and a repeated pass enters no one
//! twice (the entry rules and the live-instance index hold as well).

use chrono::{DateTime, Utc};
use crm_envelope::TenantId;
use crm_kafka::outbox;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Produced, Runner};
use crate::domain::journeys::cron::Cron;
use crate::domain::journeys::step::customer_zone;
use crate::domain::journeys::timed::{cron_due, date_due};
use crate::domain::journeys::{Journey, Trigger};
use crate::store::contacts;
use crate::store::instances::Entrant;
use crate::store::journeys as journey_store;

/// Customers entered per transaction.
const BATCH: i64 = 500;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Journeys whose time came.
    pub fired: u64,
    /// Customers entered.
    pub entered: u64,
    /// Whether messages were queued.
    pub queued: bool,
}

/// One pass at `now`.
pub async fn pass(pool: &PgPool, runner: &Runner, now: DateTime<Utc>) -> anyhow::Result<Pass> {
    let timed = journey_store::timed(&mut *pool.acquire().await?).await?;
    let mut done = Pass::default();
    for (tenant, id, version, definition, last) in timed {
        let Ok(journey) = serde_json::from_value::<Journey>(definition) else {
            continue;
        };
        // A version seen for the first time starts from now: publishing fires nothing
        // retroactively.
        let Some(last) = last else {
            journey_store::ran(&mut *pool.acquire().await?, &tenant, id, version, now).await?;
            continue;
        };
        let entered = match &journey.trigger {
            Trigger::Schedule { cron, segment } => {
                let Ok(cron) = Cron::parse(cron) else {
                    continue;
                };
                let tz = journey.time_zone.parse().unwrap_or(chrono_tz::UTC);
                match cron_due(&cron, tz, last, now) {
                    Some(_) => {
                        done.fired += 1;
                        let who = Who::Segment(*segment);
                        enter_all(
                            pool,
                            runner,
                            &tenant,
                            (id, version),
                            &journey,
                            who,
                            last,
                            now,
                        )
                        .await?
                    }
                    None => (0, false),
                }
            }
            Trigger::DateTrait { name, .. } => {
                let who = Who::DateTrait(name);
                enter_all(
                    pool,
                    runner,
                    &tenant,
                    (id, version),
                    &journey,
                    who,
                    last,
                    now,
                )
                .await?
            }
            _ => (0, false),
        };
        done.entered += entered.0;
        done.queued |= entered.1;
        journey_store::ran(&mut *pool.acquire().await?, &tenant, id, version, now).await?;
    }
    Ok(done)
}

/// Whom a timed journey looks at.
enum Who<'a> {
    /// A segment's members.
    Segment(Uuid),
    /// Customers holding a date trait.
    DateTrait(&'a str),
}

/// Enters every customer due, a batch per transaction; (entered, messages queued).
#[allow(clippy::too_many_arguments)]
async fn enter_all(
    pool: &PgPool,
    runner: &Runner,
    tenant: &TenantId,
    (id, version): (Uuid, i32),
    journey: &Journey,
    who: Who<'_>,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<(u64, bool)> {
    let mut after = Uuid::nil();
    let (mut entered, mut queued) = (0u64, false);
    loop {
        let mut tx = pool.begin().await?;
        let due: Vec<(Uuid, String)> = match &who {
            Who::Segment(segment) => contacts::members(&mut tx, tenant, *segment, after, BATCH)
                .await?
                .into_iter()
                .map(|c| (c, c.to_string()))
                .collect(),
            Who::DateTrait(name) => {
                let Trigger::DateTrait {
                    offset_days, at, ..
                } = &journey.trigger
                else {
                    return Ok((entered, queued));
                };
                let page = contacts::with_trait(&mut tx, tenant, name, after, BATCH).await?;
                let last_id = page.last().map(|(c, _)| *c);
                let due = page
                    .into_iter()
                    .filter_map(|(c, traits)| {
                        let tz = customer_zone(journey, &traits);
                        date_due(&traits, name, *offset_days, at, tz, last, now)
                            .map(|(_, day)| (c, format!("{c}:{day}")))
                    })
                    .collect::<Vec<_>>();
                if let Some(l) = last_id {
                    after = l;
                }
                if due.is_empty() && last_id.is_some() {
                    tx.commit().await?;
                    continue;
                }
                due
            }
        };
        let Some(&(last_customer, _)) = due.last() else {
            tx.commit().await?;
            return Ok((entered, queued));
        };
        if matches!(who, Who::Segment(_)) {
            after = last_customer;
        }
        let mut produced = Produced::default();
        for (customer, key) in &due {
            let entrant = Entrant {
                journey: id,
                version,
                customer: *customer,
                entry_key: key,
                start: &journey.start,
            };
            let reach = contacts::reach(&mut tx, tenant, *customer)
                .await?
                .unwrap_or_default();
            let r = runner
                .enter(&mut tx, tenant, &entrant, journey, &reach, now)
                .await?;
            if !r.out.is_empty() {
                entered += 1;
            }
            produced.add(r);
        }
        outbox::enqueue_all(&mut tx, &produced.out).await?;
        tx.commit().await?;
        queued |= produced.queued;
        if (due.len() as i64) < BATCH && matches!(who, Who::Segment(_)) {
            return Ok((entered, queued));
        }
    }
}

/// How often the pass runs.
pub fn every() -> std::time::Duration {
    std::time::Duration::from_secs(15)
}
