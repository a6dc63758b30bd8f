//! Scheduled and date-trait journeys against PostgreSQL: a cron over a segment enters its
//! members once when its time comes (in the journey's zone), a repeated pass enters no one
//! twice, and a birthday journey enters each customer on the day, at the local time, with a
//! key per year.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use chrono::{DateTime, Utc};
use crm_campaign::domain::journeys::lifecycle::Action;
use crm_campaign::journeys::{scheduled, Runner};
use crm_campaign::store::contacts::{self, Mirror};
use crm_campaign::store::journeys;
use crm_envelope::TenantId;
use serde_json::{json, Map};
use uuid::Uuid;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn entries(pool: &sqlx::PgPool, journey: Uuid) -> Vec<(Uuid, String)> {
    sqlx::query_as(
        "SELECT customer_id, entry_key FROM journey_instances WHERE journey_id = $1
         ORDER BY customer_id",
    )
    .bind(journey)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn timed_journeys_enter_their_customers_once_when_due() {
    let server = std::env::var("CRM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let url = format!("{server}/crm_test_{}_scheduled", Uuid::new_v4().simple());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 4).await.unwrap();
    crm_service::db::migrate(&pool, &crm_campaign::MIGRATOR)
        .await
        .unwrap();
    let t = TenantId::parse("acme").unwrap();
    let mut c = pool.acquire().await.unwrap();
    let segment = Uuid::now_v7();
    let weekly = json!({
        "name": "Monday digest", "time_zone": "Europe/Madrid",
        "trigger": {"schedule": {"cron": "0 9 * * 1", "segment": segment}},
        "start": "done", "nodes": {"done": "exit"}
    });
    let birthday = json!({
        "name": "Birthday", "time_zone": "UTC",
        "trigger": {"date_trait": {"name": "birthday", "at": "10:00"}},
        "start": "done", "nodes": {"done": "exit"}
    });
    let mut ids = Vec::new();
    for def in [&weekly, &birthday] {
        let j = journeys::create(&mut c, &t, "j", def, "test")
            .await
            .unwrap();
        journeys::act(&mut c, &t, j.id, Action::Publish, "test")
            .await
            .unwrap();
        ids.push(j.id);
    }
    // Three members of the segment, one not; two birthdays (one in Tokyo).
    let mut members = Vec::new();
    for n in 0..4 {
        let customer = Uuid::now_v7();
        let mut traits = Map::new();
        if n == 0 {
            traits.insert("birthday".into(), json!("1990-12-07"));
        }
        if n == 3 {
            traits.insert("birthday".into(), json!("12-07"));
            traits.insert("timezone".into(), json!("Asia/Tokyo"));
        }
        contacts::record_profile(&mut c, &t, customer, None, &traits, Utc::now())
            .await
            .unwrap();
        if n < 3 {
            contacts::record_mirror(&mut c, &t, customer, Mirror::Segment(segment, true))
                .await
                .unwrap();
            members.push(customer);
        }
    }
    drop(c);
    let runner = Runner::default();

    // First look: nothing fires retroactively.
    let t0 = utc("2026-12-06T12:00:00Z");
    let pass = scheduled::pass(&pool, &runner, t0).await.unwrap();
    assert_eq!(pass.entered, 0);
    // Monday 7 December, 01:00 UTC = 10:00 in Tokyo: the Tokyo birthday only.
    let tokyo = scheduled::pass(&pool, &runner, utc("2026-12-07T01:00:30Z"))
        .await
        .unwrap();
    assert_eq!(tokyo.entered, 1);
    // 09:00 in Madrid (08:00 UTC): the digest for the three members.
    let nine = scheduled::pass(&pool, &runner, utc("2026-12-07T08:00:30Z"))
        .await
        .unwrap();
    assert_eq!((nine.fired, nine.entered), (1, 3));
    let mut expected = members.clone();
    expected.sort();
    let got: Vec<Uuid> = entries(&pool, ids[0])
        .await
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(got, expected);
    // 10:00 UTC: the other birthday, keyed by its date.
    let ten = scheduled::pass(&pool, &runner, utc("2026-12-07T10:00:30Z"))
        .await
        .unwrap();
    assert_eq!((ten.fired, ten.entered), (0, 1));
    let birthdays = entries(&pool, ids[1]).await;
    assert_eq!(birthdays.len(), 2);
    assert!(
        birthdays
            .iter()
            .all(|(c, k)| k == &format!("{c}:2026-12-07")),
        "{birthdays:?}"
    );
    // Passes again the same day: no one twice.
    for at in ["2026-12-07T10:05:00Z", "2026-12-07T23:59:00Z"] {
        let again = scheduled::pass(&pool, &runner, utc(at)).await.unwrap();
        assert_eq!(again.entered, 0, "{at}");
    }
    // Next Monday, every replica down until Tuesday: the digest is made up once. Its members'
    // earlier instances have ended (`exit` at once), and re-entry is `never`: no one again.
    let tuesday = utc("2026-12-15T12:00:00Z");
    let late = scheduled::pass(&pool, &runner, tuesday).await.unwrap();
    assert_eq!((late.fired, late.entered), (1, 0));
    assert_eq!(entries(&pool, ids[0]).await.len(), 3);
}
