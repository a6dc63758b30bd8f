//! Webhook subscriptions end to end: events from the output topics reach a local receiver
//! (tests/js/webhook_receiver.mjs) that verifies every signature with the `standardwebhooks`
//! package from npm, an independent implementation of the specification. The gateway runs
//! with the tests' short retry schedule (50, 100, 200 ms) and disables an endpoint failing
//! for 3 s (`crm_tests::test_webhook_settings`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use crm_tests::{eventually, unique_id, Suite};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

/// The receiver, running until dropped.
struct Receiver {
    base: String,
    http: reqwest::Client,
    _child: tokio::process::Child,
}

impl Receiver {
    async fn start() -> Receiver {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/js");
        assert!(
            std::path::Path::new(&format!("{dir}/node_modules/standardwebhooks")).exists(),
            "the test clients are not installed: run scripts/test (or npm ci in tests/js)"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(format!("{dir}/webhook_receiver.mjs"))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the receiver");
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(port) = line.strip_prefix("PORT=") {
                    return port.trim().to_owned();
                }
            }
            panic!("the receiver exited before listening");
        })
        .await
        .expect("the receiver listens within 30 s");
        Receiver {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _child: child,
        }
    }

    fn hook(&self, name: &str) -> String {
        format!("{}/hook/{name}", self.base)
    }

    async fn configure(&self, name: &str, config: Value) {
        let r = self
            .http
            .post(format!("{}/config/{name}", self.base))
            .json(&config)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    async fn records(&self, name: &str) -> Vec<Value> {
        self.http
            .get(format!("{}/records/{name}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Creates an endpoint; `(id, secret)`.
async fn subscribe(suite: &Suite, key: &str, url: &str, types: &[&str]) -> (String, String) {
    let r = suite
        .post(
            key,
            "/v1/webhooks",
            Some(&json!({"url": url, "event_types": types, "description": "test"})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

async fn get_json(suite: &Suite, key: &str, path: &str) -> (u16, Value) {
    let r = suite.get(Some(key), path).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The records of `profile.created` for `user`.
fn created_for<'a>(records: &'a [Value], user: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| {
            r["payload"]["type"] == "profile.created"
                && r["payload"]["data"]["identity"]["user_id"] == user
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_endpoint_gets_the_event_once_signed_and_no_tenant_sees_anothers() {
    let suite = Suite::start().await;
    let receiver = Receiver::start().await;
    let run = unique_id();
    let (acme_hook, acme_secret) =
        subscribe(&suite, &suite.key, &receiver.hook("acme"), &["profile.*"]).await;
    receiver
        .configure(
            "acme",
            json!({"secrets": [acme_secret], "fail_first": 2, "status": 503}),
        )
        .await;
    let globex_key = suite.new_tenant("globex").await;
    let (_, globex_secret) = subscribe(&suite, &globex_key, &receiver.hook("globex"), &["*"]).await;
    receiver
        .configure("globex", json!({"secrets": [globex_secret]}))
        .await;

    let user = format!("wh-{run}");
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": user},
                        "traits": {"plan": "pro"}}))
        .await;
    let globex_user = format!("wh-globex-{run}");
    let r = suite
        .post_events(
            &globex_key,
            &json!({"kind": "identify", "identity": {"user_id": globex_user}}),
        )
        .await;
    assert_eq!(r.status(), 202);

    // Three attempts: 503, 503, then 204; the same webhook-id each time, each one signed.
    let attempts = eventually("three attempts reach the receiver", || async {
        let records = receiver.records("acme").await;
        let mine: Vec<Value> = created_for(&records, &user).into_iter().cloned().collect();
        (mine.iter().any(|r| r["status"] == 204)).then_some(mine)
    })
    .await;
    assert_eq!(attempts.len(), 3, "{attempts:#?}");
    let statuses: Vec<i64> = attempts
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 503, 204]);
    assert!(
        attempts.iter().all(|r| r["verified"] == json!([true])),
        "{attempts:#?}"
    );
    assert!(attempts
        .iter()
        .all(|r| r["webhook_id"] == attempts[0]["webhook_id"]));
    assert_eq!(attempts[0]["payload"]["data"]["tenant_id"], "acme");
    assert_eq!(attempts[0]["payload"]["data"]["traits"]["plan"], "pro");

    // The delivery log shows the three attempts. The receiver answers 204 before the
    // deliverer commits the outcome, so the log is read until the delivery shows there.
    let webhook_id = attempts[0]["webhook_id"].clone();
    let delivery = eventually("the delivery is in the log as delivered", || async {
        let (status, log) = get_json(
            &suite,
            &suite.key,
            &format!("/v1/webhooks/{acme_hook}/deliveries?status=delivered"),
        )
        .await;
        assert_eq!(status, 200);
        log["items"]
            .as_array()?
            .iter()
            .find(|d| {
                d["id"]
                    .as_str()
                    .is_some_and(|id| format!("msg_{}", id.replace('-', "")) == webhook_id)
            })
            .cloned()
    })
    .await;
    assert_eq!(delivery["attempts"], 3);
    let (status, detail) = get_json(
        &suite,
        &suite.key,
        &format!(
            "/v1/webhooks/{acme_hook}/deliveries/{}",
            delivery["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(status, 200);
    let logged: Vec<Value> = detail["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(logged, [json!(503), json!(503), json!(204)]);
    assert_eq!(detail["payload"]["type"], "profile.created");

    // globex got its own event, and never one of acme's; acme never one of globex's.
    eventually("globex receives its own event", || async {
        let records = receiver.records("globex").await;
        (!created_for(&records, &globex_user).is_empty()).then_some(())
    })
    .await;
    let globex = receiver.records("globex").await;
    assert!(globex
        .iter()
        .all(|r| r["payload"]["data"]["tenant_id"] == "globex"));
    assert!(globex.iter().all(|r| r["verified"] == json!([true])));
    assert!(created_for(&globex, &user).is_empty());
    let acme = receiver.records("acme").await;
    assert!(acme
        .iter()
        .all(|r| r["payload"]["data"]["tenant_id"] == "acme"));
    // Nor can globex read acme's endpoint or its log.
    let (status, problem) =
        get_json(&suite, &globex_key, &format!("/v1/webhooks/{acme_hook}")).await;
    assert_eq!(status, 404);
    assert_eq!(problem["code"], "webhook_not_found");
    let (status, _) = get_json(
        &suite,
        &globex_key,
        &format!("/v1/webhooks/{acme_hook}/deliveries"),
    )
    .await;
    assert_eq!(status, 404);
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_signs_with_both_secrets_and_replay_sends_the_same_message_again() {
    let suite = Suite::start().await;
    let receiver = Receiver::start().await;
    let run = unique_id();
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let r = suite
        .post(
            &suite.key,
            "/v1/webhooks",
            Some(
                &json!({"url": receiver.hook("rot"), "event_types": ["profile.created"],
                         "secret": old}),
            ),
        )
        .await;
    assert_eq!(r.status(), 201);
    let hook = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = suite
        .post(
            &suite.key,
            &format!("/v1/webhooks/{hook}/rotate-secret"),
            Some(&json!({"overlap_hours": 1})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_until"].is_string());
    // A third, unrelated secret shows that the receiver's check can fail.
    let stranger = "whsec_c3RyYW5nZXItc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY=";
    receiver
        .configure("rot", json!({"secrets": [old, new, stranger]}))
        .await;

    let user = format!("rot-{run}");
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": user}}))
        .await;
    let first = eventually("the delivery arrives", || async {
        let records = receiver.records("rot").await;
        created_for(&records, &user).first().map(|r| (*r).clone())
    })
    .await;
    // Both secrets verify it: receivers on either side of the switch accept it.
    assert_eq!(first["verified"], json!([true, true, false]));
    assert_eq!(first["signatures"], 2);

    // Replay: the same message (same webhook-id) comes again. A delivery still pending is
    // already queued (a replay would only move it to now), so wait until the deliverer has
    // committed the first attempt: it may do so a moment after the receiver answered.
    let delivery = eventually("the first delivery is logged as delivered", || async {
        let (_, log) = get_json(
            &suite,
            &suite.key,
            &format!("/v1/webhooks/{hook}/deliveries?status=delivered"),
        )
        .await;
        log["items"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let r = suite
        .post(
            &suite.key,
            &format!("/v1/webhooks/{hook}/deliveries/{delivery}/replay"),
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    let again = eventually("the replay arrives", || async {
        let records = receiver.records("rot").await;
        let mine = created_for(&records, &user);
        (mine.len() == 2).then(|| mine[1].clone())
    })
    .await;
    assert_eq!(again["webhook_id"], first["webhook_id"]);
    assert_eq!(again["attempt"], 2);
    assert_eq!(again["verified"], json!([true, true, false]));
    // The replayed attempt's outcome is committed after the receiver's answer, too.
    let detail = eventually("the replayed delivery is logged as delivered", || async {
        let (_, detail) = get_json(
            &suite,
            &suite.key,
            &format!("/v1/webhooks/{hook}/deliveries/{delivery}"),
        )
        .await;
        (detail["status"] == "delivered").then_some(detail)
    })
    .await;
    assert_eq!(detail["attempts"], 2);
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoints_that_are_gone_or_keep_failing_are_disabled_and_bad_ones_refused() {
    let suite = Suite::start().await;
    let receiver = Receiver::start().await;
    let run = unique_id();

    // Clear refusals.
    for (body, needle) in [
        (
            json!({"url": receiver.hook("x"), "event_types": ["orders.*"]}),
            "event_types[0]",
        ),
        (
            json!({"url": "ftp://example.com/", "event_types": ["*"]}),
            "url",
        ),
        (
            json!({"url": receiver.hook("x"), "event_types": []}),
            "event_types",
        ),
        (
            json!({"url": receiver.hook("x"), "event_types": ["*"], "secret": "nope"}),
            "secret",
        ),
    ] {
        let r = suite.post(&suite.key, "/v1/webhooks", Some(&body)).await;
        assert_eq!(r.status(), 422, "{body}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_webhook");
        assert!(
            problem["detail"].as_str().unwrap().contains(needle),
            "{problem}"
        );
    }
    let r = suite
        .post(&suite.key, "/v1/webhooks", Some(&json!({"url": 3})))
        .await;
    assert!(r.status().is_client_error());
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );

    // 410 Gone disables the endpoint at once.
    let (gone, secret) = subscribe(
        &suite,
        &suite.key,
        &receiver.hook("gone"),
        &["profile.created"],
    )
    .await;
    receiver
        .configure(
            "gone",
            json!({"secrets": [secret], "fail_first": 1000, "status": 410}),
        )
        .await;
    // Always 503: disabled once it has failed for 3 s.
    let (failing, secret) = subscribe(
        &suite,
        &suite.key,
        &receiver.hook("failing"),
        &["profile.created"],
    )
    .await;
    receiver
        .configure(
            "failing",
            json!({"secrets": [secret], "fail_first": 1000, "status": 503}),
        )
        .await;

    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": format!("g1-{run}")}}))
        .await;
    let endpoint = eventually("the gone endpoint is disabled", || async {
        let (_, e) = get_json(&suite, &suite.key, &format!("/v1/webhooks/{gone}")).await;
        (e["enabled"] == false).then_some(e)
    })
    .await;
    assert_eq!(endpoint["disabled_reason"], "gone");
    assert_eq!(receiver.records("gone").await.len(), 1);

    // The failing endpoint used up the schedule on the first event (4 attempts) and stays
    // enabled; a failure more than 3 s after the first disables it.
    let failed = eventually("the first delivery fails for good", || async {
        let (_, log) = get_json(
            &suite,
            &suite.key,
            &format!("/v1/webhooks/{failing}/deliveries?status=failed"),
        )
        .await;
        log["items"].as_array().and_then(|i| i.first().cloned())
    })
    .await;
    assert_eq!(failed["attempts"], 4);
    assert_eq!(failed["last_status"], 503);
    let (_, e) = get_json(&suite, &suite.key, &format!("/v1/webhooks/{failing}")).await;
    assert_eq!(e["enabled"], true);
    assert!(e["failing_since"].is_string());
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": format!("g2-{run}")}}))
        .await;
    let endpoint = eventually("the failing endpoint is disabled", || async {
        let (_, e) = get_json(&suite, &suite.key, &format!("/v1/webhooks/{failing}")).await;
        (e["enabled"] == false).then_some(e)
    })
    .await;
    assert_eq!(endpoint["disabled_reason"], "failing");

    // Re-enabled, and the receiver back: recover sends the failed deliveries again.
    receiver
        .configure("failing", json!({"secrets": [secret]}))
        .await;
    let r = suite
        .http
        .patch(format!("{}/v1/webhooks/{failing}", suite.gateway))
        .bearer_auth(&suite.key)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = suite
        .post(
            &suite.key,
            &format!("/v1/webhooks/{failing}/recover"),
            Some(&json!({"since": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(r.status(), 202);
    assert!(
        r.json::<Value>().await.unwrap()["requeued"]
            .as_u64()
            .unwrap()
            >= 1
    );
    eventually(
        "every delivery of the failing endpoint is delivered",
        || async {
            let (_, log) = get_json(
                &suite,
                &suite.key,
                &format!("/v1/webhooks/{failing}/deliveries"),
            )
            .await;
            let items = log["items"].as_array().cloned().unwrap_or_default();
            (items.len() == 2 && items.iter().all(|d| d["status"] == "delivered")).then_some(())
        },
    )
    .await;
    suite.stop().await;
}
