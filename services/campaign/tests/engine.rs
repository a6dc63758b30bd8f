//! The engine against PostgreSQL: an instance runs until it must wait, its effects come back
//! once however often the advance is retried, the timer it leaves is claimed later and the
//! instance goes on and ends; a wait-for leaves its deadline as the timer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use chrono::{Duration, Utc};
use crm_campaign::domain::journeys::step::{Effect, Facts};
use crm_campaign::domain::journeys::{parse, Channel, Entry, Limits};
use crm_campaign::engine::{advance, Instance, Outcome};
use crm_campaign::store::instances::{self, Entrant};
use crm_envelope::TenantId;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn an_instance_runs_waits_resumes_and_ends_with_each_effect_once() {
    let server = std::env::var("CRM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let url = format!("{server}/crm_test_{}_engine", Uuid::new_v4().simple());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 2).await.unwrap();
    crm_service::db::migrate(&pool, &crm_campaign::MIGRATOR)
        .await
        .unwrap();
    let journey = parse(
        json!({
            "name": "Welcome", "time_zone": "UTC",
            "trigger": {"event": {"name": "Signed Up"}},
            "start": "hello",
            "nodes": {
                "hello": {"send": {"template": "welcome", "channel": "email", "next": "wait"}},
                "wait": {"wait": {"minutes": 60, "next": "plan"}},
                "plan": {"branch": {"if": {"trait": {"name": "plan", "op": "eq", "value": "pro"}},
                                    "then": "thanks", "else": "reply"}},
                "thanks": {"send": {"template": "thanks", "channel": "email", "next": "done"}},
                "reply": {"wait_for": {"for": {"event": {"name": "Replied"}}, "timeout_minutes": 30,
                                       "next": "done", "timeout_next": "done"}},
                "done": "exit"
            }
        }),
        &Limits::default(),
    )
    .unwrap();
    let t = TenantId::parse("acme").unwrap();
    let (journey_id, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let key = customer.to_string();
    let now = Utc::now();
    let mut c = pool.acquire().await.unwrap();
    let entrant = Entrant {
        journey: journey_id,
        version: 1,
        customer,
        entry_key: &key,
        start: "hello",
    };
    let id = instances::enter(&mut c, &t, &entrant, &Entry::default(), now)
        .await
        .unwrap()
        .unwrap();
    let inst = Instance {
        tenant: &t,
        id,
        journey_id,
        customer,
    };
    let mut facts = Facts::default();
    facts.traits.insert("plan".into(), json!("pro"));

    let (effects, outcome) = advance(&mut c, inst, &journey, "hello".into(), &facts, now)
        .await
        .unwrap();
    assert_eq!(
        effects,
        vec![(
            "hello".to_string(),
            Effect::Send {
                template: "welcome".into(),
                channel: Channel::Email,
                transactional: false,
                quiet: None,
                offer_placement: None,
                survey: None
            }
        )]
    );
    assert_eq!(
        outcome,
        Outcome::Waiting {
            node: "wait".into(),
            until: now + Duration::minutes(60)
        }
    );
    // A retried advance (a replica that lost its answer) sends nothing twice.
    let (again, _) = advance(&mut c, inst, &journey, "hello".into(), &facts, now)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");

    // Nothing due yet; an hour later the timer names the node to run.
    assert!(instances::claim_due(&mut c, now, 10)
        .await
        .unwrap()
        .is_empty());
    let later = now + Duration::minutes(61);
    let due = instances::claim_due(&mut c, later, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].node, "plan");
    let (effects, outcome) = advance(&mut c, inst, &journey, due[0].node.clone(), &facts, later)
        .await
        .unwrap();
    assert_eq!(
        effects,
        vec![(
            "thanks".to_string(),
            Effect::Send {
                template: "thanks".into(),
                channel: Channel::Email,
                transactional: false,
                quiet: None,
                offer_placement: None,
                survey: None
            }
        )]
    );
    assert_eq!(outcome, Outcome::Exited);
    assert!(instances::live_of(&mut c, &t, customer)
        .await
        .unwrap()
        .is_empty());

    // Another customer takes the other branch and waits for a reply until the deadline.
    let other = Uuid::now_v7();
    let key2 = other.to_string();
    let entrant = Entrant {
        journey: journey_id,
        version: 1,
        customer: other,
        entry_key: &key2,
        start: "hello",
    };
    let id2 = instances::enter(&mut c, &t, &entrant, &Entry::default(), now)
        .await
        .unwrap()
        .unwrap();
    let inst2 = Instance {
        tenant: &t,
        id: id2,
        journey_id,
        customer: other,
    };
    let (_, outcome) = advance(
        &mut c,
        inst2,
        &journey,
        "plan".into(),
        &Facts::default(),
        later,
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        Outcome::Waiting {
            node: "reply".into(),
            until: later + Duration::minutes(30)
        }
    );
    let due = instances::claim_due(&mut c, later + Duration::minutes(31), 10)
        .await
        .unwrap();
    assert_eq!((due.len(), due[0].node.as_str()), (1, "done"));
}
