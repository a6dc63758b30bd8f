//! Journeys end to end through real components: events posted to the gateway, identity,
//! the broker, campaign's journeys, the send gate, lettre over SMTP to a real local SMTP
//! server (scripts/smtp-sink, Debian's python3-aiosmtpd), whose delivered messages the test
//! reads back from its directory (`CRM_TEST_MAIL_DIR`, set by scripts/test). Time passing is
//! simulated by moving a pending timer's due time to now in campaign's database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use crm_tests::{eventually, eventually_within, unique_id, Suite, TRACKING_BASE};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// Every message the local SMTP server received for `to` (raw, headers and body).
fn mail_to(to: &str) -> Vec<String> {
    let dir = std::env::var("CRM_TEST_MAIL_DIR")
        .expect("CRM_TEST_MAIL_DIR: run through scripts/test, which starts the SMTP server");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter(|m| {
            m.lines()
                .next()
                .is_some_and(|l| l.strip_prefix("X-Sink-Rcpt: ") == Some(to))
        })
        .collect()
}

fn header<'m>(mail: &'m str, name: &str) -> Option<&'m str> {
    mail.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

async fn call(suite: &Suite, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = suite
        .http
        .request(method, format!("{}{path}", suite.gateway))
        .bearer_auth(&suite.key)
        .header("Idempotency-Key", unique_id());
    if let Some(b) = body {
        request = request.json(b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Sender settings and two templates.
async fn set_up_messaging(suite: &Suite) {
    let (status, body) = call(
        suite,
        Method::PUT,
        "/v1/channels/mail",
        Some(
            &json!({"settings": {"kind": "email", "from": "news@acme.test", "from_name": "Acme"}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (key, subject) in [
        ("welcome-a", "Welcome {{ customer.first_name }} (A)"),
        ("welcome-b", "Welcome {{ customer.first_name }} (B)"),
        ("nudge", "Still there, {{ customer.first_name }}?"),
    ] {
        let (status, body) = call(
            suite,
            Method::PUT,
            &format!("/v1/templates/{key}"),
            Some(&json!({"channel": "email", "subject": subject,
                   "html": "<p>Hola {{ customer.first_name }}</p><a href=\"https://shop.test/start?a=1&b=2\">Start</a>",
                   "text": "Hola {{ customer.first_name }}"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

fn journey() -> Value {
    json!({
        "name": "Welcome", "time_zone": "Europe/Madrid",
        "trigger": {"event": {"name": "Signed Up"}},
        "exit": [{"event": {"name": "Unsubscribed"}}],
        "goal": {"event": "Order Completed", "within_days": 14},
        "start": "split",
        "nodes": {
            "split": {"split": {"arms": [{"name": "A", "weight": 50, "next": "hello-a"},
                                         {"name": "B", "weight": 50, "next": "hello-b"}]}},
            "hello-a": {"send": {"template": "welcome-a", "channel": "email", "next": "wait"}},
            "hello-b": {"send": {"template": "welcome-b", "channel": "email", "next": "wait"}},
            "wait": {"wait": {"minutes": 1440, "next": "bought"}},
            "bought": {"branch": {"if": {"event_seen": {"name": "Order Completed"}},
                                  "then": "done", "else": "nudge"}},
            "nudge": {"send": {"template": "nudge", "channel": "email", "next": "done"}},
            "done": "exit"
        }
    })
}

/// A customer with an email and marketing consent, known to campaign.
async fn customer(suite: &Suite, campaign: &sqlx::PgPool, user: &str, email: &str) -> Uuid {
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": user, "email": email},
            "traits": {"first_name": "Ana", "consent": [{"purpose": "marketing", "channel": "email", "granted": true}]}}))
        .await;
    let profile = suite.wait_for_customer(user, |_| true).await;
    let id: Uuid = profile["id"].as_str().unwrap().parse().unwrap();
    // Profiles and events travel on different topics: the trigger is sent once campaign
    // knows the address and the consent.
    eventually(&format!("campaign knows {user}"), || async {
        let row: Option<(Option<String>, Value)> =
            sqlx::query_as("SELECT email, consents FROM contacts WHERE customer_id = $1")
                .bind(id)
                .fetch_optional(campaign)
                .await
                .unwrap()
                .map(|(e, c): (Option<String>, sqlx::types::Json<Value>)| (e, c.0));
        row.filter(|(e, c)| e.is_some() && c.get("marketing:email").is_some())
    })
    .await;
    id
}

async fn instance_of(
    campaign: &sqlx::PgPool,
    customer: Uuid,
) -> Option<(String, Option<String>, Option<String>)> {
    sqlx::query_as("SELECT status, arm, exit_reason FROM journey_instances WHERE customer_id = $1")
        .bind(customer)
        .fetch_optional(campaign)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_journey_with_a_split_a_wait_and_a_branch_sends_real_mail_once() {
    let suite = Suite::start().await;
    let campaign = suite.pool_of("campaign").await;
    set_up_messaging(&suite).await;
    let (status, created) = call(&suite, Method::POST, "/v1/journeys", Some(&journey())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &suite,
        Method::POST,
        &format!("/v1/journeys/{id}/publish"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Twelve customers (both arms are taken with near certainty: the split is a salted hash).
    let run = unique_id();
    let mut people = Vec::new();
    for n in 0..12 {
        let user = format!("u{n}-{run}");
        let email = format!("p{n}-{run}@example.test");
        let id = customer(&suite, &campaign, &user, &email).await;
        people.push((user, email, id));
    }
    for (user, _, _) in &people {
        let event = json!({"id": format!("signup-{user}"), "kind": "track", "name": "Signed Up",
                           "identity": {"user_id": user}});
        suite.ingest(&event).await;
        // The same event delivered twice starts one instance and sends once.
        suite.ingest(&event).await;
    }

    // Each gets one welcome, from the arm their instance took, with its headers.
    let mut arms = std::collections::BTreeSet::new();
    for (_, email, id) in &people {
        let mail = eventually(&format!("welcome mail to {email}"), || async {
            let m = mail_to(email);
            (!m.is_empty()).then_some(m)
        })
        .await;
        let (_, arm, _) = instance_of(&campaign, *id).await.unwrap();
        let arm = arm.expect("the split recorded the arm");
        let subject = header(&mail[0], "Subject").unwrap();
        assert_eq!(subject, format!("Welcome Ana ({arm})"));
        assert!(header(&mail[0], "Message-ID").is_some_and(|m| m.ends_with("@acme.test>")));
        assert!(header(&mail[0], "List-Unsubscribe").is_some_and(|u| u.contains("/t/u/")));
        assert_eq!(
            header(&mail[0], "List-Unsubscribe-Post"),
            Some("List-Unsubscribe=One-Click")
        );
        arms.insert(arm);
    }
    assert_eq!(arms.len(), 2, "both arms of the split were taken: {arms:?}");

    // During the wait: one buys (goal; the branch skips the nudge), one unsubscribes (an
    // exit event: the wait is cancelled at once), the rest do nothing.
    let (buyer, leaver) = (&people[0], &people[1]);
    suite
        .ingest(
            &json!({"kind": "track", "name": "Order Completed", "identity": {"user_id": buyer.0}}),
        )
        .await;
    suite
        .ingest(
            &json!({"kind": "track", "name": "Unsubscribed", "identity": {"user_id": leaver.0}}),
        )
        .await;
    eventually(
        "the exit event ends the instance and its pending wait",
        || async {
            let (status, _, reason) = instance_of(&campaign, leaver.2).await?;
            let timers: (i64,) = sqlx::query_as(
                "SELECT count(*) FROM journey_timers t JOIN journey_instances i
               ON i.tenant_id = t.tenant_id AND i.id = t.instance_id WHERE i.customer_id = $1",
            )
            .bind(leaver.2)
            .fetch_one(&campaign)
            .await
            .unwrap();
            (status == "exited" && reason.as_deref() == Some("exit_event") && timers.0 == 0)
                .then_some(())
        },
    )
    .await;
    eventually("the goal is recorded", || async {
        let r: Option<(Option<chrono::DateTime<chrono::Utc>>,)> =
            sqlx::query_as("SELECT goal_at FROM journey_instances WHERE customer_id = $1")
                .bind(buyer.2)
                .fetch_optional(&campaign)
                .await
                .unwrap();
        r.and_then(|(g,)| g)
    })
    .await;

    // A day passes for every pending wait.
    sqlx::query("UPDATE journey_timers SET due_at = now()")
        .execute(&campaign)
        .await
        .unwrap();
    for (n, (_, email, id)) in people.iter().enumerate() {
        if n == 1 {
            continue;
        }
        eventually(&format!("instance of {email} completes"), || async {
            let (status, _, _) = instance_of(&campaign, *id).await?;
            (status == "exited").then_some(())
        })
        .await;
    }
    let nudged = |email: &str| {
        mail_to(email)
            .iter()
            .filter(|m| header(m, "Subject") == Some("Still there, Ana?"))
            .count()
    };
    for (n, (_, email, _)) in people.iter().enumerate().skip(2) {
        eventually_within(
            &format!("nudge to {email}"),
            Duration::from_secs(30),
            || async { (nudged(email) == 1).then_some(()) },
        )
        .await;
        assert_eq!(
            mail_to(email).len(),
            2,
            "customer {n}: one welcome, one nudge"
        );
    }
    // Give a stray second send every chance to arrive before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(nudged(&buyer.1), 0, "the buyer took the other branch");
    assert_eq!(mail_to(&buyer.1).len(), 1);
    assert_eq!(mail_to(&leaver.1).len(), 1, "the exit cancelled the nudge");
    for (_, email, _) in &people {
        let welcomes = mail_to(email)
            .iter()
            .filter(|m| header(m, "Subject").is_some_and(|s| s.starts_with("Welcome")))
            .count();
        assert_eq!(welcomes, 1, "{email}: the duplicated trigger sent once");
    }

    // The messages are on the customer's record, with the journey's interactions.
    let (status, messages) = call(
        &suite,
        Method::GET,
        &format!("/v1/customers/{}/messages", people[2].2),
        None,
    )
    .await;
    assert_eq!(status, 200, "{messages}");
    let statuses: Vec<&str> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["sent", "sent"], "{messages}");

    // Every contact is on the customer's timeline in identity, beside their events
    // (crm.interactions.v1).
    let timeline_path = format!("/v1/customers/{}/timeline?limit=100", people[2].2);
    eventually("interactions on the timeline", || async {
        let (status, page) = call(&suite, Method::GET, &timeline_path, None).await;
        assert_eq!(status, 200, "{page}");
        let kinds: Vec<String> = page["items"]
            .as_array()?
            .iter()
            .filter_map(|i| i["kind"].as_str().map(str::to_owned))
            .collect();
        let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
        (count("journey.entered") == 1
            && count("message.sent") == 2
            && count("journey.exited") == 1
            && count("track") >= 1)
            .then_some(())
    })
    .await;

    // The journey's report counts what happened; the customer's journeys show theirs.
    let (status, report) = call(
        &suite,
        Method::GET,
        &format!("/v1/journeys/{id}/report"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["entered"], 12, "{report}");
    assert_eq!(report["converted"], 1, "{report}");
    let exits: std::collections::BTreeMap<String, i64> = report["exited"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(exits.get("exit_event"), Some(&1), "{report}");
    assert_eq!(exits.get("completed"), Some(&11), "{report}");
    let sent: i64 = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["detail"] == "sent")
        .map(|c| c["count"].as_i64().unwrap())
        .sum();
    assert_eq!(sent, 12 + 10, "twelve welcomes and ten nudges: {report}");
    assert!(report["skipped"].as_array().unwrap().is_empty(), "{report}");
    let arms: i64 = report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["entered"].as_i64().unwrap())
        .sum();
    assert_eq!(arms, 12, "{report}");
    let (status, theirs) = call(
        &suite,
        Method::GET,
        &format!("/v1/customers/{}/journeys", leaver.2),
        None,
    )
    .await;
    assert_eq!(status, 200, "{theirs}");
    assert_eq!(theirs["items"][0]["exit_reason"], "exit_event", "{theirs}");
    suite.stop().await;
}

#[tokio::test]
async fn tracking_links_click_only_to_the_message_links_and_unsubscribe_suppresses() {
    let suite = Suite::start().await;
    let campaign = suite.pool_of("campaign").await;
    set_up_messaging(&suite).await;
    let mut one_send = journey();
    one_send["start"] = json!("hello-a");
    one_send["nodes"]["hello-a"]["send"]["next"] = json!("done");
    for n in ["split", "hello-b", "wait", "bought", "nudge"] {
        one_send["nodes"].as_object_mut().unwrap().remove(n);
    }
    let (status, created) = call(&suite, Method::POST, "/v1/journeys", Some(&one_send)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    call(
        &suite,
        Method::POST,
        &format!("/v1/journeys/{id}/publish"),
        None,
    )
    .await;
    let run = unique_id();
    let (user, email) = (format!("t-{run}"), format!("t-{run}@example.test"));
    let customer_id = customer(&suite, &campaign, &user, &email).await;
    suite
        .ingest(&json!({"kind": "track", "name": "Signed Up", "identity": {"user_id": user}}))
        .await;
    let mail = eventually("the welcome mail", || async {
        mail_to(&email).into_iter().next()
    })
    .await;

    // The click link redirects to the link the message contained, and only there.
    let flat = mail.replace("=\r\n", "").replace("=3D", "=");
    let link = |path: &str| {
        let at = flat
            .find(&format!("{TRACKING_BASE}/t/{path}/"))
            .expect(path);
        let end = flat[at..]
            .find(|c: char| c == '"' || c == '>' || c.is_whitespace())
            .unwrap();
        flat[at..at + end].replace(TRACKING_BASE, &suite.gateway)
    };
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let click = no_redirects.get(link("c")).send().await.unwrap();
    assert_eq!(click.status(), 303);
    assert_eq!(
        click.headers()["location"].to_str().unwrap(),
        "https://shop.test/start?a=1&b=2"
    );
    // A forged token is refused.
    let forged = format!("{}x", link("c"));
    let refused = no_redirects.get(&forged).send().await.unwrap();
    assert_eq!(refused.status(), 404);
    // The open pixel answers an image whatever the token.
    let pixel = suite.http.get(link("o")).send().await.unwrap();
    assert_eq!(pixel.headers()["content-type"], "image/gif");

    // One-click unsubscribe (RFC 8058): a POST; the address is suppressed at once.
    let unsub = suite
        .http
        .post(link("u"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(unsub.status(), 200);
    let (status, list) = call(&suite, Method::GET, "/v1/suppressions", None).await;
    assert_eq!(status, 200);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["address"] == email.as_str() && s["reason"] == "unsubscribe"),
        "{list}"
    );
    let clicked: (String, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT status, clicked_at FROM messages WHERE customer_id = $1")
            .bind(customer_id)
            .fetch_one(&campaign)
            .await
            .unwrap();
    assert_eq!(clicked.0, "clicked");
    assert!(clicked.1.is_some());
    suite.stop().await;
}
