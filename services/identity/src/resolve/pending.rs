//! Writes of a poll's events that are deferred and made in one statement each: timeline rows,
//! outbox messages, data-quality counts, search texts, and the counters of customers that
//! events only touched (seen again, nothing else changed).
//!
//! Everything here is commutative with the per-event statements of resolution (counters add,
//! rows append) except where order shows: a merge moves timeline rows and enqueues
//! `profile.merged`, and a published profile carries the counters, so the resolver flushes
//! before those ([`Pending::flush`], [`Pending::flush_customers`]). Customers created in memory
//! ([`crate::resolve::newcomer`]) are inserted before anything else. The flush sorts rows by key,
//! so concurrent replicas lock customers in the same order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_envelope::{Envelope, TenantId};
use crm_kafka::outbox::{self, Outgoing};
use crm_kafka::HandleError;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::identifiers::Extracted;
use crate::domain::standardise::Quality;
use crate::resolve::newcomer;
use crate::resolve::newcomer::NewCustomer;
use crate::store::timeline;

/// Events that touched a customer without changing it: how many, and the earliest and latest.
#[derive(Debug, Clone, Copy)]
struct Seen {
    events: i64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

/// Data-quality counts of one field: present, valid, invalid, standardised.
type Counts = [i64; 4];

/// The deferred writes of a batch (see the module documentation).
#[derive(Default)]
pub(crate) struct Pending {
    seen: BTreeMap<(TenantId, Uuid), Seen>,
    timeline: Vec<timeline::Row>,
    outbox: Vec<Outgoing>,
    quality: BTreeMap<(TenantId, String), Counts>,
    search: BTreeMap<(TenantId, Uuid), String>,
    created: Vec<NewCustomer>,
}

impl Pending {
    /// Counts an event on `customer` that changed nothing else about it.
    pub(crate) fn seen(&mut self, tenant: &TenantId, customer: Uuid, at: DateTime<Utc>) {
        self.seen
            .entry((tenant.clone(), customer))
            .and_modify(|s| {
                s.events += 1;
                s.first = s.first.min(at);
                s.last = s.last.max(at);
            })
            .or_insert(Seen {
                events: 1,
                first: at,
                last: at,
            });
    }

    /// Adds a customer created in memory.
    pub(crate) fn create(&mut self, customer: NewCustomer) {
        self.created.push(customer);
    }

    /// Records `event` on `customer`'s timeline.
    pub(crate) fn timeline(&mut self, customer: Uuid, event: &Envelope) {
        self.timeline.push(timeline::Row::of(customer, event));
    }

    /// Adds a message to the outbox (after the ones already pending).
    pub(crate) fn publish(&mut self, message: Outgoing) {
        self.outbox.push(message);
    }

    /// Counts each identifier and trait field of an event in the tenant's data-quality report.
    pub(crate) fn quality(&mut self, tenant: &TenantId, extracted: &Extracted) {
        for check in &extracted.checks {
            let add: Counts = match check.quality {
                Quality::Valid => [1, 1, 0, 0],
                Quality::Standardised => [1, 1, 0, 1],
                Quality::Invalid => [1, 0, 1, 0],
            };
            let counts = self
                .quality
                .entry((tenant.clone(), check.field.clone()))
                .or_default();
            for (c, a) in counts.iter_mut().zip(add) {
                *c += a;
            }
        }
    }

    /// Sets a customer's search text (the last one set wins).
    pub(crate) fn search_text(&mut self, tenant: &TenantId, customer: Uuid, text: String) {
        self.search.insert((tenant.clone(), customer), text);
    }

    /// Writes the pending customers: those created, then the counters of those touched.
    pub(crate) async fn flush_customers(
        &mut self,
        tx: &mut PgConnection,
    ) -> Result<(), HandleError> {
        newcomer::insert_all(tx, &std::mem::take(&mut self.created)).await?;
        if self.seen.is_empty() {
            return Ok(());
        }
        let seen = std::mem::take(&mut self.seen);
        let (mut tenants, mut ids, mut events, mut firsts, mut lasts) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((tenant, id), s) in seen {
            tenants.push(tenant.as_str().to_owned());
            ids.push(id);
            events.push(s.events);
            firsts.push(s.first);
            lasts.push(s.last);
        }
        sqlx::query(
            "UPDATE customers c SET event_count = c.event_count + u.n, version = c.version + u.n,
                    first_seen_at = LEAST(c.first_seen_at, u.first),
                    last_seen_at = GREATEST(c.last_seen_at, u.last), updated_at = now()
             FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::timestamptz[],
                         $5::timestamptz[]) AS u(tenant_id, id, n, first, last)
             WHERE c.tenant_id = u.tenant_id AND c.id = u.id",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&events)
        .bind(&firsts)
        .bind(&lasts)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Writes everything pending, in the order the events made it, except the data-quality
    /// counts ([`Pending::flush_quality`]).
    pub(crate) async fn flush(&mut self, tx: &mut PgConnection) -> Result<(), HandleError> {
        self.flush_customers(tx).await?;
        timeline::record_all(tx, &std::mem::take(&mut self.timeline)).await?;
        self.flush_search(tx).await?;
        outbox::enqueue_all(tx, &std::mem::take(&mut self.outbox)).await?;
        Ok(())
    }

    async fn flush_search(&mut self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.search.is_empty() {
            return Ok(());
        }
        let (mut tenants, mut ids, mut texts) = (Vec::new(), Vec::new(), Vec::new());
        for ((tenant, id), text) in std::mem::take(&mut self.search) {
            tenants.push(tenant.as_str().to_owned());
            ids.push(id);
            texts.push(text);
        }
        sqlx::query(
            "UPDATE customers c SET search_text = u.text
             FROM unnest($1::text[], $2::uuid[], $3::text[]) AS u(tenant_id, id, text)
             WHERE c.tenant_id = u.tenant_id AND c.id = u.id",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&texts)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Adds the data-quality counts: rows per tenant and field that every batch of the tenant
    /// updates, so the caller runs this last before the commit, and concurrent batches (the
    /// consumer's lanes, replicas) wait for each other's lock only while one commits. The
    /// counts only add up, so holding them back to the end changes nothing else.
    pub(crate) async fn flush_quality(&mut self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.quality.is_empty() {
            return Ok(());
        }
        let (mut tenants, mut fields) = (Vec::new(), Vec::new());
        let mut counts: [Vec<i64>; 4] = Default::default();
        for ((tenant, field), c) in std::mem::take(&mut self.quality) {
            tenants.push(tenant.as_str().to_owned());
            fields.push(field);
            for (column, value) in counts.iter_mut().zip(c) {
                column.push(value);
            }
        }
        sqlx::query(
            "INSERT INTO data_quality (tenant_id, field, present, valid, invalid, standardised)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[],
                                  $5::bigint[], $6::bigint[])
             ON CONFLICT (tenant_id, field) DO UPDATE SET
                 present = data_quality.present + EXCLUDED.present,
                 valid = data_quality.valid + EXCLUDED.valid,
                 invalid = data_quality.invalid + EXCLUDED.invalid,
                 standardised = data_quality.standardised + EXCLUDED.standardised",
        )
        .bind(&tenants)
        .bind(&fields)
        .bind(&counts[0])
        .bind(&counts[1])
        .bind(&counts[2])
        .bind(&counts[3])
        .execute(tx)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::identifiers::FieldCheck;

    fn check(field: &str, quality: Quality) -> FieldCheck {
        FieldCheck {
            field: field.into(),
            received: "x".into(),
            quality,
        }
    }

    #[test]
    fn quality_counts_add_up_per_field() {
        let tenant = TenantId::parse("t").unwrap();
        let mut pending = Pending::default();
        let extracted = Extracted {
            checks: vec![
                check("email", Quality::Valid),
                check("email", Quality::Standardised),
                check("phone", Quality::Invalid),
            ],
            ..Extracted::default()
        };
        pending.quality(&tenant, &extracted);
        pending.quality(&tenant, &extracted);
        assert_eq!(
            pending.quality[&(tenant.clone(), "email".to_owned())],
            [4, 4, 0, 2]
        );
        assert_eq!(pending.quality[&(tenant, "phone".to_owned())], [2, 0, 2, 0]);
    }

    #[test]
    fn seen_keeps_the_count_and_the_bounds() {
        let tenant = TenantId::parse("t").unwrap();
        let id = Uuid::now_v7();
        let t0 = Utc::now();
        let earlier = t0 - chrono::Duration::hours(3);
        let mut pending = Pending::default();
        pending.seen(&tenant, id, t0);
        pending.seen(&tenant, id, earlier);
        pending.seen(&tenant, id, t0 - chrono::Duration::hours(1));
        let s = pending.seen[&(tenant, id)];
        assert_eq!((s.events, s.first, s.last), (3, earlier, t0));
    }
}
