//! The delivery loop against PostgreSQL and a real SMTP server (scripts/smtp-sink, started by
//! scripts/test): a message a crash left `sending` is never sent again (at most once; it is
//! recorded as skipped, `send_interrupted`), and two replicas delivering at once send each
//! queued message once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crm_campaign::channels::deliver::{Delivery, Tracking};
use crm_campaign::channels::guard::Guard;
use crm_campaign::channels::smtp::Smtp;
use crm_campaign::domain::channels::Settings;
use crm_campaign::domain::templates::{Limits, Parts};
use crm_campaign::domain::tracking::TrackingKey;
use crm_campaign::store::channels;
use crm_campaign::store::contacts::{self, Mirror};
use crm_campaign::store::messages::{self, GateInputs, NewMessage, Start};
use crm_campaign::store::templates::{self, Template};
use crm_envelope::TenantId;
use uuid::Uuid;

fn mail_to(to: &str) -> usize {
    let dir = std::env::var("CRM_TEST_MAIL_DIR")
        .expect("CRM_TEST_MAIL_DIR: run through scripts/test, which starts the SMTP server");
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter(|m| m.lines().next() == Some(&format!("X-Sink-Rcpt: {to}")))
                .count()
        })
        .unwrap_or(0)
}

async fn status_of(pool: &sqlx::PgPool, id: Uuid) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, skip_reason FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_interrupted_send_is_never_repeated_and_replicas_send_once() {
    let server = std::env::var("CRM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let url = format!("{server}/crm_test_{}_delivery", Uuid::new_v4().simple());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 8).await.unwrap();
    crm_service::db::migrate(&pool, &crm_campaign::MIGRATOR)
        .await
        .unwrap();
    let t = TenantId::parse("acme").unwrap();
    let mut c = pool.acquire().await.unwrap();
    let settings = Settings::Email {
        from: "news@acme.test".into(),
        from_name: None,
        reply_to: None,
    };
    channels::put(&mut c, &t, "mail", &settings, None, "test")
        .await
        .unwrap();
    let template = Template {
        key: "hello".into(),
        channel: "email".into(),
        message_type: "marketing".into(),
        purpose: "marketing".into(),
        parts: Parts {
            subject: "Hello".into(),
            html: None,
            text: Some("Hello {{ customer.first_name }}".into()),
        },
        version: 1,
        updated_at: Utc::now(),
    };
    templates::put(&mut c, &t, &template, "test").await.unwrap();
    let run = Uuid::new_v4().simple().to_string();
    let mut people = Vec::new();
    for n in 0..2 {
        let customer = Uuid::now_v7();
        let email = format!("d{n}-{run}@example.test");
        contacts::record_profile(
            &mut c,
            &t,
            customer,
            Some(&email),
            &Default::default(),
            Utc::now(),
        )
        .await
        .unwrap();
        let consent = Mirror::Consent {
            purpose: "marketing",
            channel: "email",
            granted: true,
            at: Utc::now(),
        };
        contacts::record_mirror(&mut c, &t, customer, consent)
            .await
            .unwrap();
        let key = format!("{customer}:send:1");
        let m = NewMessage {
            send_key: &key,
            customer,
            journey: Some((Uuid::now_v7(), Uuid::now_v7(), "send")),
            channel: "email",
            template: "hello",
            message_type: "marketing",
            transactional: false,
            priority: 0,
            address: Some(&email),
            gate: GateInputs {
                purpose: "marketing",
                holdout_percent: 0,
                time_zone: "UTC",
                quiet: None,
            },
            offer_placement: None,
            survey_id: None,
        };
        let start = Start::Queued {
            not_before: Utc::now(),
        };
        let id = messages::record(&mut c, &t, &m, start)
            .await
            .unwrap()
            .unwrap();
        people.push((email, id));
    }
    // The first was claimed by a replica that died during the SMTP transaction, long ago.
    sqlx::query(
        "UPDATE messages SET status = 'sending', sending_at = now() - interval '10 minutes'
         WHERE id = $1",
    )
    .bind(people[0].1)
    .execute(&pool)
    .await
    .unwrap();
    drop(c);

    let smtp_url =
        std::env::var("CRM_TEST_SMTP_URL").unwrap_or_else(|_| "smtp://127.0.0.1:2526".to_owned());
    let delivery = Delivery {
        pool: pool.clone(),
        smtp: Smtp::new(&smtp_url).unwrap(),
        guard: Guard {
            allow_private: true,
            timeout: Duration::from_secs(5),
        },
        tracking: Tracking {
            base_url: "http://crm.test".into(),
            key: TrackingKey::new(&[7u8; 32]).unwrap(),
            ttl: chrono::Duration::days(1),
        },
        limits: Limits::default(),
        relay: Arc::new(tokio::sync::Notify::new()),
        concurrency: 4,
        lease: chrono::Duration::seconds(120),
        metrics: None,
        catalogue: crm_campaign::offers::cache::Catalogue::new(Duration::from_secs(5)),
    };
    // Two replicas deliver at once.
    let replica = delivery.clone();
    let (a, b) = tokio::join!(delivery.deliver_batch(10), replica.deliver_batch(10));
    assert_eq!(
        a.unwrap() + b.unwrap(),
        1,
        "one queued message, claimed once"
    );
    assert_eq!(status_of(&pool, people[1].1).await.0, "sent");
    let (status, reason) = status_of(&pool, people[0].1).await;
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("skipped", Some("send_interrupted"))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mail_to(&people[1].0), 1, "sent once");
    assert_eq!(
        mail_to(&people[0].0),
        0,
        "an interrupted send is not repeated"
    );
    // Later passes change nothing.
    assert_eq!(delivery.deliver_batch(10).await.unwrap(), 0);
    assert_eq!(mail_to(&people[1].0), 1);
}
