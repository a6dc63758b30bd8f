//! Campaign killed with SIGKILL between a send and its commit: the message is never sent
//! twice. Campaign runs as its own process (the `crm-campaign` binary); the local SMTP server
//! (scripts/smtp-sink, Debian's python3-aiosmtpd) writes each message to disk and then holds
//! its `250` answer for a while, so the test can kill campaign while the server has the mail
//! and campaign has not heard it accepted: the window docs/campaign.md names ("At most once").
//!
//! The documented window is the one between the commit that marks a message `sending` and
//! the commit of its outcome: at most one SMTP transaction (30 s timeout) or HTTP call (10 s).
//! A crash in it never sends the message again; after `CRM_CAMPAIGN__SEND_LEASE_SECS` the
//! message is recorded as skipped with reason `send_interrupted` (it may or may not have
//! reached the server, as here where it did).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use crm_tests::{eventually_within, mail_in, unique_id, CampaignProcess, Suite, SuiteOptions};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// A local SMTP server that holds each `250` for `hold_ms` after storing the message.
struct HoldingSink {
    port: u16,
    dir: PathBuf,
    child: std::process::Child,
}

impl HoldingSink {
    fn start(hold_ms: u64) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("crm-send-crash-{}", unique_id()));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/smtp-sink");
        let mut child = std::process::Command::new(script)
            .args([
                "--port",
                &port.to_string(),
                "--hold-ms",
                &hold_ms.to_string(),
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("scripts/smtp-sink starts (python3-aiosmtpd; scripts/test installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return HoldingSink { port, dir, child };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the holding SMTP server did not listen on {port}");
    }
}

impl Drop for HoldingSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn message_of(campaign: &sqlx::PgPool, customer: Uuid) -> Option<(String, Option<String>)> {
    sqlx::query_as("SELECT status, skip_reason FROM messages WHERE customer_id = $1")
        .bind(customer)
        .fetch_optional(campaign)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_killed_before_its_commit_is_never_sent_again() {
    // Each message is on the server's disk 8 s before campaign hears it accepted.
    let sink = HoldingSink::start(8_000);
    let suite = Suite::start_with(SuiteOptions {
        campaign_process: Some(CampaignProcess {
            smtp_url: format!("smtp://127.0.0.1:{}", sink.port),
            send_lease_secs: 3,
        }),
        ..Default::default()
    })
    .await;
    let campaign = suite.pool_of("campaign").await;
    let calls = [
        (
            "/v1/channels/mail",
            json!({"settings": {"kind": "email", "from": "news@acme.test"}}),
        ),
        (
            "/v1/templates/welcome",
            json!({"channel": "email", "subject": "Welcome {{ customer.first_name }}",
                   "text": "Hola {{ customer.first_name }}"}),
        ),
    ];
    for (path, body) in calls {
        let (status, answer) = suite.admin_call(Method::PUT, path, Some(&body)).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let journey = json!({
        "name": "Welcome", "time_zone": "UTC", "trigger": {"event": {"name": "Signed Up"}},
        "start": "hello",
        "nodes": {"hello": {"send": {"template": "welcome", "channel": "email", "next": "done"}},
                  "done": "exit"}});
    let (status, created) = suite
        .admin_call(Method::POST, "/v1/journeys", Some(&journey))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, body) = suite
        .admin_call(Method::POST, &format!("/v1/journeys/{id}/publish"), None)
        .await;
    assert_eq!(status, 200, "{body}");

    let run = unique_id();
    let mut people = Vec::new();
    for n in 0..4 {
        let (user, email) = (format!("k{n}-{run}"), format!("k{n}-{run}@example.test"));
        let id = suite.mailable_customer(&campaign, &user, &email).await;
        people.push((user, email, id));
    }
    let signed_up = |user: &str| {
        json!({"kind": "track", "name": "Signed Up", "id": format!("signup-{user}"),
                                        "identity": {"user_id": user}})
    };
    let (first, last) = people.split_at(3);
    for (user, _, _) in first {
        suite.ingest(&signed_up(user)).await;
    }

    // A message is on the server's disk while campaign still waits for its 250: kill then.
    // (The delivery loop claims what is due in batches, so the three may be in one batch or
    // in several; the one caught here is certainly inside the window.)
    let caught: Vec<usize> = eventually_within(
        "a message on the server, still `sending`",
        Duration::from_secs(60),
        || async {
            let mut caught = Vec::new();
            for (n, (_, email, id)) in first.iter().enumerate() {
                let on_disk = mail_in(&sink.dir, email).len() == 1;
                let sending = message_of(&campaign, *id)
                    .await
                    .is_some_and(|(s, _)| s == "sending");
                if on_disk && sending {
                    caught.push(n);
                }
            }
            (!caught.is_empty()).then_some(caught)
        },
    )
    .await;
    suite.kill_campaign().await;
    suite.start_campaign().await;

    // The same trigger events again (an SDK's retry), and a new customer's after the restart.
    for (user, _, _) in first {
        suite.ingest(&signed_up(user)).await;
    }
    suite.ingest(&signed_up(&last[0].0)).await;

    // Every message settles. One caught in the window is recorded as interrupted after the
    // lease, never sent again; one queued at the kill is sent after the restart; one claimed
    // but not yet on the server is interrupted too (lost, and recorded: the window's cost).
    let mut interrupted = 0;
    for (n, (_, email, id)) in people.iter().enumerate() {
        let (status, reason) = eventually_within(
            &format!("the message to {email} settled"),
            Duration::from_secs(60),
            || async {
                message_of(&campaign, *id)
                    .await
                    .filter(|(s, _)| s != "sending" && s != "queued")
            },
        )
        .await;
        let mails = mail_in(&sink.dir, email).len();
        match (status.as_str(), reason.as_deref()) {
            ("sent", None) => assert_eq!(mails, 1, "{email} sent once"),
            ("skipped", Some("send_interrupted")) => {
                interrupted += 1;
                assert!(mails <= 1, "{email} at most once");
            }
            other => panic!("{email}: unexpected {other:?}"),
        }
        if caught.contains(&n) {
            assert_eq!(
                (status.as_str(), reason.as_deref(), mails),
                ("skipped", Some("send_interrupted"), 1),
                "{email} was on the server when campaign died"
            );
        }
    }
    assert!(interrupted >= caught.len());
    eprintln!(
        "{} message(s) caught on the server inside the window, {interrupted} interrupted, \
         none sent twice",
        caught.len()
    );
    let (status, _) = message_of(&campaign, last[0].2).await.unwrap();
    assert_eq!(status, "sent", "the customer triggered after the restart");

    // The API shows the interrupted send with its reason.
    let (status, listed) = suite
        .admin_call(
            Method::GET,
            &format!("/v1/customers/{}/messages", first[caught[0]].2),
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let reasons: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["skip_reason"])
        .collect();
    assert_eq!(reasons, [&json!("send_interrupted")], "{listed}");

    // Longer than a lease and a delivery pass more: nothing changes, the retried triggers
    // made no second message, and no address got a second mail.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (_, email, id) in &people {
        assert!(mail_in(&sink.dir, email).len() <= 1, "{email}");
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages WHERE customer_id = $1")
            .bind(id)
            .fetch_one(&campaign)
            .await
            .unwrap();
        assert_eq!(n, 1, "one message for {email}");
    }
    suite.kill_campaign().await;
    suite.stop().await;
}
