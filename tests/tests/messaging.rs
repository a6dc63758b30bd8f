//! Journeys end to end through real components: events posted to the gateway, identity,
//! the broker, campaign's journeys, the send gate, lettre over SMTP to a real local SMTP
//! server (scripts/smtp-sink, Debian's python3-aiosmtpd), whose delivered messages the test
//! reads back from its directory (`CRM_TEST_MAIL_DIR`, set by scripts/test). Time passing is
//! simulated by moving a pending timer's due time to now in campaign's database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use crm_tests::{
    eventually, eventually_within, mail_header as header, mail_to, unique_id, Suite, TRACKING_BASE,
};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// Sender settings and two templates.
async fn set_up_messaging(suite: &Suite) {
    let (status, body) = suite.admin_call(
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
        let (status, body) = suite.admin_call(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_with_a_split_a_wait_and_a_branch_sends_real_mail_once() {
    let suite = Suite::start().await;
    let campaign = suite.pool_of("campaign").await;
    set_up_messaging(&suite).await;
    // Segmentation counts campaign's contacts: "mailed twice in the last 30 days".
    let (status, segment) = suite
        .admin_call(
            Method::POST,
            "/v1/segments",
            Some(
                &json!({"name": "Mailed twice", "rule": {"event": {"name": "message.sent",
                "within_days": 30, "at_least": 2,
                "where": [{"property": "channel", "op": "eq", "value": "email"}]}}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{segment}");
    let segment = segment["segment"]["id"].as_str().unwrap().to_owned();
    let (status, created) = suite
        .admin_call(Method::POST, "/v1/journeys", Some(&journey()))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = suite
        .admin_call(Method::POST, &format!("/v1/journeys/{id}/publish"), None)
        .await;
    assert_eq!(status, 200, "{body}");

    // Twelve customers (both arms are taken with near certainty: the split is a salted hash).
    let run = unique_id();
    let mut people = Vec::new();
    for n in 0..12 {
        let user = format!("u{n}-{run}");
        let email = format!("p{n}-{run}@example.test");
        let id = suite.mailable_customer(&campaign, &user, &email).await;
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

    // The messages are on the customer's record, with the journey's interactions (each send
    // is recorded just after the mail server accepted it).
    let messages = eventually("the sends recorded", || async {
        let (status, messages) = suite
            .admin_call(
                Method::GET,
                &format!("/v1/customers/{}/messages", people[2].2),
                None,
            )
            .await;
        assert_eq!(status, 200, "{messages}");
        let sending = messages["items"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["status"] == "sending"));
        (!sending).then_some(messages)
    })
    .await;
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
        let (status, page) = suite.admin_call(Method::GET, &timeline_path, None).await;
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
    let (status, report) = suite
        .admin_call(Method::GET, &format!("/v1/journeys/{id}/report"), None)
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
    let (status, theirs) = suite
        .admin_call(
            Method::GET,
            &format!("/v1/customers/{}/journeys", leaver.2),
            None,
        )
        .await;
    assert_eq!(status, 200, "{theirs}");
    assert_eq!(theirs["items"][0]["exit_reason"], "exit_event", "{theirs}");

    // The ten customers mailed twice are in the segment, kept as the interactions streamed in.
    let expected: std::collections::BTreeSet<String> =
        people[2..].iter().map(|p| p.2.to_string()).collect();
    eventually("the interaction segment", || async {
        let (status, body) = suite
            .admin_call(
                Method::GET,
                &format!("/v1/segments/{segment}/members?limit=100"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let got: std::collections::BTreeSet<String> = body["items"]
            .as_array()?
            .iter()
            .filter_map(|i| i["customer_id"].as_str().map(str::to_owned))
            .collect();
        (got == expected).then_some(())
    })
    .await;
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    let (status, created) = suite
        .admin_call(Method::POST, "/v1/journeys", Some(&one_send))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    suite
        .admin_call(Method::POST, &format!("/v1/journeys/{id}/publish"), None)
        .await;
    let run = unique_id();
    let (user, email) = (format!("t-{run}"), format!("t-{run}@example.test"));
    let customer_id = suite.mailable_customer(&campaign, &user, &email).await;
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
    // A test send of the template reaches one address, nothing else.
    let (status, sent) = suite
        .admin_call(
            Method::POST,
            "/v1/templates/welcome-a/test-send",
            Some(&json!({"address": format!("Test-{run}@Example.test")})),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let test_address = format!("test-{run}@example.test");
    eventually("the test send", || async {
        let m = mail_to(&test_address);
        (m.len() == 1).then_some(())
    })
    .await;
    assert_eq!(
        header(&mail_to(&test_address)[0], "Subject"),
        Some("Welcome (A)"),
        "an empty sample: the subject is one line, its spaces collapsed"
    );
    // A test send of a journey: each of its draft's email messages, once, to one address.
    let (status, created) = suite
        .admin_call(Method::POST, "/v1/journeys", Some(&journey()))
        .await;
    assert_eq!(status, 201, "{created}");
    let draft = created["id"].as_str().unwrap();
    let reviewer = format!("reviewer-{run}@example.test");
    let (status, sent) = suite
        .admin_call(
            Method::POST,
            &format!("/v1/journeys/{draft}/test-send"),
            Some(&json!({"address": reviewer})),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let nodes: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["hello-a", "hello-b", "nudge"], "{sent}");
    let subjects = eventually("the journey's test sends", || async {
        let m = mail_to(&reviewer);
        (m.len() == 3).then_some(m)
    })
    .await;
    let mut subjects: Vec<&str> = subjects
        .iter()
        .filter_map(|m| header(m, "Subject"))
        .collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ["Still there, ?", "Welcome (A)", "Welcome (B)"]);
    let (status, refused) = suite
        .admin_call(
            Method::POST,
            &format!("/v1/journeys/{draft}/test-send"),
            Some(&json!({"address": "+34600111222", "channel": "sms"})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["detail"]
        .as_str()
        .unwrap()
        .contains("no send node on channel sms"));

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
    let (status, list) = suite
        .admin_call(Method::GET, "/v1/suppressions", None)
        .await;
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

/// A journey that waits a day, then sends `template`.
fn wait_then_send(template: &str) -> Value {
    json!({
        "name": "Later", "time_zone": "UTC",
        "trigger": {"event": {"name": "Signed Up"}},
        "start": "wait",
        "nodes": {
            "wait": {"wait": {"minutes": 1440, "next": "send"}},
            "send": {"send": {"template": template, "channel": "email", "next": "done"}},
            "done": "exit"
        }
    })
}

async fn publish(suite: &Suite, definition: &Value) -> String {
    let (status, created) = suite
        .admin_call(Method::POST, "/v1/journeys", Some(definition))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = suite
        .admin_call(Method::POST, &format!("/v1/journeys/{id}/publish"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    id
}

async fn messages_of(suite: &Suite, customer: Uuid) -> Vec<Value> {
    let (status, body) = suite
        .admin_call(
            Method::GET,
            &format!("/v1/customers/{customer}/messages"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

/// The IANA zone `Etc/GMT…` at `offset` hours east of UTC.
fn etc_zone(offset: i64) -> String {
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frequency_caps_and_quiet_hours_follow_each_customers_time_zone() {
    use chrono::{Duration as Days, Timelike, Utc};
    let suite = Suite::start().await;
    let campaign = suite.pool_of("campaign").await;
    set_up_messaging(&suite).await;
    let (status, body) = suite
        .admin_call(
            Method::PUT,
            "/v1/contact-policy",
            Some(
                &json!({"caps": [{"channel": "email", "max": 1, "window": {"rolling_hours": 24}}],
                         "quiet_hours": {"start": "21:00", "end": "08:00", "policy": "defer"}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut two = journey();
    two["start"] = json!("hello-a");
    two["nodes"]["hello-a"]["send"]["next"] = json!("nudge");
    for n in ["split", "hello-b", "wait", "bought"] {
        two["nodes"].as_object_mut().unwrap().remove(n);
    }
    publish(&suite, &two).await;

    // Two customers: one where it is day now, one where it is night.
    let now = Utc::now();
    let hour = i64::from(now.hour());
    let offset_where =
        |ok: &dyn Fn(i64) -> bool| (-12..=14).find(|o| ok((hour + o).rem_euclid(24))).unwrap();
    let day = offset_where(&|h| (10..=17).contains(&h));
    let night = offset_where(&|h| (0..=5).contains(&h));
    let run = unique_id();
    let mut ids = Vec::new();
    for (who, offset) in [("day", day), ("night", night)] {
        let user = format!("{who}-{run}");
        let email = format!("{who}-{run}@example.test");
        suite
            .ingest(&json!({"kind": "identify", "identity": {"user_id": user},
                "traits": {"timezone": etc_zone(offset)}}))
            .await;
        let id = suite.mailable_customer(&campaign, &user, &email).await;
        eventually("the time zone trait reaches campaign", || async {
            let t: (sqlx::types::Json<Value>,) =
                sqlx::query_as("SELECT traits FROM contacts WHERE customer_id = $1")
                    .bind(id)
                    .fetch_one(&campaign)
                    .await
                    .unwrap();
            (t.0 .0["timezone"] == etc_zone(offset).as_str()).then_some(())
        })
        .await;
        suite
            .ingest(&json!({"kind": "track", "name": "Signed Up", "identity": {"user_id": user}}))
            .await;
        ids.push((email, id, offset));
    }

    // Day: the first message goes out, the second is capped.
    let (day_email, day_id, _) = &ids[0];
    eventually("the day customer's welcome", || async {
        (mail_to(day_email).len() == 1).then_some(())
    })
    .await;
    let by_template = |m: &[Value], t: &str| {
        m.iter()
            .find(|x| x["template"] == t)
            .cloned()
            .unwrap_or(Value::Null)
    };
    // The send is recorded just after the mail server accepted the mail: wait for both.
    let msgs = eventually(
        "both of the day customer's messages, the welcome sent",
        || async {
            let m = messages_of(&suite, *day_id).await;
            (m.len() == 2 && by_template(&m, "welcome-a")["status"] != "sending").then_some(m)
        },
    )
    .await;
    assert_eq!(by_template(&msgs, "welcome-a")["status"], "sent");
    assert_eq!(by_template(&msgs, "nudge")["status"], "skipped");
    assert_eq!(by_template(&msgs, "nudge")["skip_reason"], "frequency_cap");

    // Night: the first waits for 08:00 in the customer's zone; the queued one already counts
    // against the cap, so the second is capped too.
    let (night_email, night_id, offset) = &ids[1];
    let msgs = eventually("both of the night customer's messages", || async {
        let m = messages_of(&suite, *night_id).await;
        (m.len() == 2).then_some(m)
    })
    .await;
    assert_eq!(by_template(&msgs, "welcome-a")["status"], "queued");
    assert_eq!(by_template(&msgs, "nudge")["skip_reason"], "frequency_cap");
    let (not_before,): (chrono::DateTime<Utc>,) = sqlx::query_as(
        "SELECT not_before FROM messages WHERE customer_id = $1 AND template = 'welcome-a'",
    )
    .bind(night_id)
    .fetch_one(&campaign)
    .await
    .unwrap();
    let local = (now + Days::hours(*offset)).date_naive();
    let eight = local.and_hms_opt(8, 0, 0).unwrap().and_utc() - Days::hours(*offset);
    assert_eq!(
        not_before,
        eight,
        "deferred to 08:00 in {}",
        etc_zone(*offset)
    );
    assert!(mail_to(night_email).is_empty(), "nothing sent at night");

    // A send node may choose for its own message: this one drops in quiet hours instead.
    let mut owl = one_send("Night offer", 0, "Night Owl", "nudge");
    owl["nodes"]["send"]["send"]["quiet_hours"] = json!("drop");
    publish(&suite, &owl).await;
    let user = format!("owl-{run}");
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": user},
            "traits": {"timezone": etc_zone(*offset)}}))
        .await;
    let owl_id = suite
        .mailable_customer(&campaign, &user, &format!("{user}@example.test"))
        .await;
    eventually("the owl's time zone reaches campaign", || async {
        let t: (sqlx::types::Json<Value>,) =
            sqlx::query_as("SELECT traits FROM contacts WHERE customer_id = $1")
                .bind(owl_id)
                .fetch_one(&campaign)
                .await
                .unwrap();
        (t.0 .0["timezone"] == etc_zone(*offset).as_str()).then_some(())
    })
    .await;
    suite
        .ingest(&json!({"kind": "track", "name": "Night Owl", "identity": {"user_id": user}}))
        .await;
    let msgs = eventually("the owl's message", || async {
        let m = messages_of(&suite, owl_id).await;
        (m.len() == 1).then_some(m)
    })
    .await;
    assert_eq!(msgs[0]["status"], "skipped");
    assert_eq!(msgs[0]["skip_reason"], "quiet_hours");
    suite.stop().await;
}

/// A journey of `priority` that sends `template` on `event`.
fn one_send(name: &str, priority: i32, event: &str, template: &str) -> Value {
    json!({
        "name": name, "time_zone": "UTC", "priority": priority,
        "trigger": {"event": {"name": event}},
        "start": "send",
        "nodes": {
            "send": {"send": {"template": template, "channel": "email", "next": "done"}},
            "done": "exit"
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_slot_goes_to_the_higher_priority_journey() {
    let suite = Suite::start().await;
    let campaign = suite.pool_of("campaign").await;
    set_up_messaging(&suite).await;
    // One marketing email a day; a capped message waits ten minutes before it leaves, during
    // which a journey of higher priority may take its slot.
    let (status, body) = suite
        .admin_call(
            Method::PUT,
            "/v1/contact-policy",
            Some(
                &json!({"caps": [{"channel": "email", "max": 1, "window": "calendar_day"}],
                         "priority_hold_seconds": 600}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    publish(
        &suite,
        &one_send("Browse promo", 1, "Product Viewed", "welcome-a"),
    )
    .await;
    publish(
        &suite,
        &one_send("Cart rescue", 10, "Cart Abandoned", "nudge"),
    )
    .await;

    let run = unique_id();
    let (first, second) = (format!("p1-{run}"), format!("p2-{run}"));
    let first_email = format!("{first}@example.test");
    let second_email = format!("{second}@example.test");
    let first_id = suite
        .mailable_customer(&campaign, &first, &first_email)
        .await;
    let second_id = suite
        .mailable_customer(&campaign, &second, &second_email)
        .await;
    let event = |user: &str, name: &str| json!({"kind": "track", "name": name, "identity": {"user_id": user}});
    let by_template = |m: &[Value], t: &str| {
        m.iter()
            .find(|x| x["template"] == t)
            .cloned()
            .unwrap_or(Value::Null)
    };

    // First customer: the promo first (held), then the cart rescue takes its slot.
    suite.ingest(&event(&first, "Product Viewed")).await;
    eventually("the promo is held", || async {
        let m = messages_of(&suite, first_id).await;
        (by_template(&m, "welcome-a")["status"] == "queued").then_some(())
    })
    .await;
    suite.ingest(&event(&first, "Cart Abandoned")).await;
    let msgs = eventually("both of the first customer's messages", || async {
        let m = messages_of(&suite, first_id).await;
        (m.len() == 2).then_some(m)
    })
    .await;
    assert_eq!(by_template(&msgs, "welcome-a")["status"], "skipped");
    assert_eq!(
        by_template(&msgs, "welcome-a")["skip_reason"],
        "frequency_cap"
    );
    assert_eq!(by_template(&msgs, "nudge")["status"], "queued");

    // Second customer: the cart rescue first; the promo cannot take a higher journey's slot.
    suite.ingest(&event(&second, "Cart Abandoned")).await;
    eventually("the rescue is held", || async {
        let m = messages_of(&suite, second_id).await;
        (by_template(&m, "nudge")["status"] == "queued").then_some(())
    })
    .await;
    suite.ingest(&event(&second, "Product Viewed")).await;
    let msgs = eventually("both of the second customer's messages", || async {
        let m = messages_of(&suite, second_id).await;
        (m.len() == 2).then_some(m)
    })
    .await;
    assert_eq!(
        by_template(&msgs, "welcome-a")["skip_reason"],
        "frequency_cap"
    );
    assert_eq!(by_template(&msgs, "nudge")["status"], "queued");

    // The hold ends (simulated): each customer gets the rescue, and only it.
    sqlx::query("UPDATE messages SET not_before = now() WHERE status = 'queued'")
        .execute(&campaign)
        .await
        .unwrap();
    for email in [&first_email, &second_email] {
        let mail = eventually(&format!("the rescue to {email}"), || async {
            mail_to(email).into_iter().next()
        })
        .await;
        assert_eq!(header(&mail, "Subject"), Some("Still there, Ana?"));
    }
    // The yielded message is on the first customer's timeline with its reason.
    eventually("the yielded promo on the timeline", || async {
        let (status, body) = suite
            .admin_call(
                Method::GET,
                &format!("/v1/customers/{first_id}/timeline?limit=100"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["kind"] == "message.skipped"
                    && e["properties"]["reason"] == "frequency_cap"
                    && e["properties"]["yielded_to_priority"] == 10
            })
            .map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mail_to(&first_email).len(), 1);
    assert_eq!(mail_to(&second_email).len(), 1);
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_withdrawn_during_a_wait_skips_the_send() {
    let suite = Suite::start().await;
    let campaign = suite.pool_of("campaign").await;
    set_up_messaging(&suite).await;
    publish(&suite, &wait_then_send("nudge")).await;
    let run = unique_id();
    let (user, email) = (format!("c-{run}"), format!("c-{run}@example.test"));
    let id = suite.mailable_customer(&campaign, &user, &email).await;
    suite
        .ingest(&json!({"kind": "track", "name": "Signed Up", "identity": {"user_id": user}}))
        .await;
    eventually("the instance waits", || async {
        let (status, _, _) = instance_of(&campaign, id).await?;
        (status == "active").then_some(())
    })
    .await;
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": user},
            "traits": {"consent": {"purpose": "marketing", "channel": "email", "granted": false}}}))
        .await;
    eventually("campaign sees the consent withdrawn", || async {
        let (c,): (sqlx::types::Json<Value>,) =
            sqlx::query_as("SELECT consents FROM contacts WHERE customer_id = $1")
                .bind(id)
                .fetch_one(&campaign)
                .await
                .unwrap();
        (c.0["marketing:email"]["granted"] == false).then_some(())
    })
    .await;
    sqlx::query("UPDATE journey_timers SET due_at = now()")
        .execute(&campaign)
        .await
        .unwrap();
    let msgs = eventually("the send was decided", || async {
        let m = messages_of(&suite, id).await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(msgs[0]["status"], "skipped");
    assert_eq!(msgs[0]["skip_reason"], "no_consent");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(mail_to(&email).is_empty());
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_and_erasures_reach_live_instances() {
    let suite = Suite::start().await;
    let campaign = suite.pool_of("campaign").await;
    set_up_messaging(&suite).await;
    publish(&suite, &wait_then_send("nudge")).await;
    let run = unique_id();
    // A known customer and an anonymous visitor both enter; an erased one too.
    let (user, email) = (format!("m-{run}"), format!("m-{run}@example.test"));
    let known = suite.mailable_customer(&campaign, &user, &email).await;
    let (gone_user, gone_email) = (format!("g-{run}"), format!("g-{run}@example.test"));
    let gone = suite
        .mailable_customer(&campaign, &gone_user, &gone_email)
        .await;
    let visitor = format!("v-{run}");
    for identity in [
        json!({"user_id": user}),
        json!({"anonymous_id": visitor}),
        json!({"user_id": gone_user}),
    ] {
        suite
            .ingest(&json!({"kind": "track", "name": "Signed Up", "identity": identity}))
            .await;
    }
    let anonymous = eventually("the visitor", || {
        suite.customer_by("anonymous_id", &visitor)
    })
    .await;
    let anonymous: Uuid = anonymous["id"].as_str().unwrap().parse().unwrap();
    for id in [known, anonymous, gone] {
        eventually("each waits in the journey", || async {
            let (status, _, _) = instance_of(&campaign, id).await?;
            (status == "active").then_some(())
        })
        .await;
    }

    // The visitor signs in: identity merges them; the survivor keeps one instance.
    suite
        .ingest(&json!({"kind": "track", "name": "Signed In",
            "identity": {"user_id": user, "anonymous_id": visitor}}))
        .await;
    eventually("one live instance after the merge", || async {
        let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
            "SELECT customer_id, status, exit_reason FROM journey_instances
             WHERE customer_id = ANY($1)",
        )
        .bind(vec![known, anonymous])
        .fetch_all(&campaign)
        .await
        .unwrap();
        let live = rows.iter().filter(|r| r.1 == "active").count();
        let merged = rows
            .iter()
            .filter(|r| r.2.as_deref() == Some("merged"))
            .count();
        (rows.len() == 2 && live == 1 && merged == 1).then_some(())
    })
    .await;

    // The third is erased: its instance, timer and planned contact are gone.
    let erased = suite
        .post(&suite.key, &format!("/v1/customers/{gone}/erase"), None)
        .await;
    assert_eq!(erased.status(), 200);
    eventually("the erased customer's instance is deleted", || async {
        instance_of(&campaign, gone).await.is_none().then_some(())
    })
    .await;

    sqlx::query("UPDATE journey_timers SET due_at = now()")
        .execute(&campaign)
        .await
        .unwrap();
    eventually("the survivor's one nudge", || async {
        (mail_to(&email).len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(mail_to(&email).len(), 1, "one instance, one message");
    assert!(
        mail_to(&gone_email).is_empty(),
        "nothing for the erased customer"
    );
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_templates_are_refused_or_cut_off() {
    let suite = Suite::start().await;
    let put = |key: &'static str, html: &'static str| {
        let suite = &suite;
        async move {
            suite
                .admin_call(
                    Method::PUT,
                    &format!("/v1/templates/{key}"),
                    Some(&json!({"channel": "email", "subject": "x", "html": html})),
                )
                .await
        }
    };
    // File access and includes: refused when saved, with the place.
    for (key, html) in [
        ("inc", "line one\n{% include '/etc/passwd' %}"),
        ("ext", "{% extends 'base.html' %}"),
        ("imp", "{% import 'macros' as m %}"),
    ] {
        let (status, body) = put(key, html).await;
        assert_eq!(status, 422, "{key}: {body}");
        assert_eq!(body["code"], "invalid_template", "{body}");
        assert_eq!(body["errors"][0]["part"], "html", "{body}");
    }
    let (status, body) = put("unclosed", "<p>{{ customer.name </p>").await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"][0]["line"].as_u64().unwrap() >= 1, "{body}");
    // Endless work and huge output compile, and are cut off when rendered.
    for (key, html) in [
        ("spin", "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}"),
        ("huge", "{% for i in range(10000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}"),
    ] {
        let (status, body) = put(key, html).await;
        assert_eq!(status, 200, "{key}: {body}");
        let (status, body) = suite
            .admin_call(Method::POST, &format!("/v1/templates/{key}/preview"), Some(&json!({})))
            .await;
        assert_eq!(status, 422, "{key}: {body}");
        let code = body["errors"][0]["code"].as_str().unwrap();
        assert!(
            ["too_much_work", "output_too_large"].contains(&code),
            "{key}: {body}"
        );
    }
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_that_overtakes_the_profile_still_sends_once_the_profile_arrives() {
    let suite = Suite::start().await;
    set_up_messaging(&suite).await;
    let mut one_send = wait_then_send("nudge");
    one_send["start"] = json!("send");
    one_send["nodes"].as_object_mut().unwrap().remove("wait");
    publish(&suite, &one_send).await;
    let run = unique_id();
    let (user, email) = (format!("r-{run}"), format!("r-{run}@example.test"));
    // The identify and the trigger in one batch: the event may reach campaign on
    // crm.events.v1 before the profile (address, consent) on crm.profiles.v1.
    suite
        .ingest(&json!([
            {"kind": "identify", "identity": {"user_id": user, "email": email},
             "traits": {"first_name": "Ana", "consent": {"purpose": "marketing", "channel": "email", "granted": true}}},
            {"kind": "track", "name": "Signed Up", "identity": {"user_id": user}}
        ]))
        .await;
    eventually("the mail, once the profile arrived", || async {
        (mail_to(&email).len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mail_to(&email).len(), 1);
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_shows_the_best_offer_decided_when_it_is_sent() {
    let suite = Suite::start().await;
    let campaign = suite.pool_of("campaign").await;
    set_up_messaging(&suite).await;
    let (status, body) = suite
        .admin_call(
            Method::PUT,
            "/v1/templates/offer-mail",
            Some(&json!({"channel": "email", "subject": "For you",
                "html": "<p>{% if offer %}{{ offer.content.headline }}{% else %}No offer{% endif %}</p>",
                "text": "{% if offer %}{{ offer.content.headline }}{% else %}No offer{% endif %}"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for (name, value, headline, eligibility) in [
        (
            "Email boots",
            10,
            "Boots for email readers",
            json!({"context": {"field": "channel", "op": "eq", "value": "email"}}),
        ),
        (
            "Web only",
            50,
            "Only on the web",
            json!({"context": {"field": "channel", "op": "eq", "value": "web"}}),
        ),
    ] {
        let (status, body) = suite
            .admin_call(
                Method::POST,
                "/v1/offers",
                Some(
                    &json!({"name": name, "placements": ["mail_hero"], "value": value,
                             "content": {"headline": headline}, "eligibility": eligibility}),
                ),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, created) = suite
        .admin_call(
            Method::POST,
            "/v1/journeys",
            Some(&json!({"name": "Offer mail", "time_zone": "UTC",
                "trigger": {"event": {"name": "Browsed"}}, "start": "mail",
                "nodes": {"mail": {"send": {"template": "offer-mail", "channel": "email",
                                            "offer_placement": "mail_hero", "next": "done"}},
                          "done": "exit"}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    suite
        .admin_call(Method::POST, &format!("/v1/journeys/{id}/publish"), None)
        .await;
    let run = unique_id();
    let (user, email) = (format!("o-{run}"), format!("o-{run}@example.test"));
    let customer = suite.mailable_customer(&campaign, &user, &email).await;
    suite
        .ingest(&json!({"kind": "track", "name": "Browsed", "identity": {"user_id": user}}))
        .await;
    let mail = eventually("the offer mail", || async {
        mail_to(&email).into_iter().next()
    })
    .await;
    assert!(mail.contains("Boots for email readers"), "{mail}");
    assert!(!mail.contains("Only on the web"), "{mail}");
    // The decision is the customer's, and the sent message is its impression, recorded when
    // the send is (which commits just after the mail server accepted it).
    let mine = eventually("the message's impression", || async {
        let (status, mine) = suite
            .admin_call(
                Method::GET,
                &format!("/v1/customers/{customer}/decisions"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{mine}");
        let shown = mine["outcomes"].as_array().is_some_and(|o| {
            o.iter()
                .any(|o| o["kind"] == "impression" && o["source"] == "message")
        });
        shown.then_some(mine)
    })
    .await;
    assert_eq!(mine["decisions"][0]["placement"], "mail_hero", "{mine}");
    assert_eq!(mine["decisions"][0]["context"]["channel"], "email");
    suite.stop().await;
}
