//! Journeys' outbound HTTP through real components: a webhook channel signed per the Standard
//! Webhooks specification (the signature checked here with a separate implementation of the
//! scheme: HMAC-SHA256 over `id.timestamp.body` with the base64 key of the `whsec_` secret),
//! disabled when its endpoint answers 410 Gone; and an SMS through a Twilio-style provider
//! (form POST with Basic auth and a status callback), whose `undelivered` callback suppresses
//! the number. The receivers are local HTTP servers (the deployment allows private targets in
//! the tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use crm_tests::{eventually, unique_id, Suite, TRACKING_BASE};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

/// What a receiver got: path, headers, body.
type Seen = Arc<Mutex<Vec<(String, HashMap<String, String>, Vec<u8>)>>>;

async fn receiver() -> (String, Seen) {
    async fn keep(
        State(seen): State<Seen>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> (StatusCode, String) {
        let h = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        seen.lock()
            .unwrap()
            .push((uri.path().to_owned(), h, body.to_vec()));
        match uri.path() {
            "/gone" => (StatusCode::GONE, String::new()),
            "/sms" | "/push" => (StatusCode::CREATED, json!({"sid": "SM123"}).to_string()),
            _ => (StatusCode::OK, String::new()),
        }
    }
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/hook", post(keep))
        .route("/gone", post(keep))
        .route("/sms", post(keep))
        .route("/push", post(keep))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

/// The Standard Webhooks signature of `id.ts.body` with `secret` (`whsec_<base64>`).
fn standard_signature(secret: &str, id: &str, ts: &str, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

async fn publish(suite: &Suite, trigger: &str, node: Value) -> String {
    let definition = json!({"name": trigger, "time_zone": "UTC",
        "trigger": {"event": {"name": trigger}}, "start": "act",
        "nodes": {"act": node, "done": "exit"}});
    let (status, created) = suite
        .admin_call(Method::POST, "/v1/journeys", Some(&definition))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = suite
        .admin_call(Method::POST, &format!("/v1/journeys/{id}/publish"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_disabled_when_gone_and_sms_goes_through_a_provider() {
    let suite = Suite::start().await;
    let (base, seen) = receiver().await;
    let put = |path: String, body: Value| {
        let suite = &suite;
        async move {
            let (status, b) = suite.admin_call(Method::PUT, &path, Some(&body)).await;
            assert_eq!(status, 200, "{b}");
            b
        }
    };
    let hook = put(
        "/v1/channels/hook".into(),
        json!({"settings": {"kind": "webhook", "url": format!("{base}/hook")}}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{hook}");
    put(
        "/v1/channels/gone".into(),
        json!({"settings": {"kind": "webhook", "url": format!("{base}/gone")}}),
    )
    .await;
    put(
        "/v1/channels/sms".into(),
        json!({"settings": {"kind": "sms", "url": format!("{base}/sms"), "account": "AC1",
                            "from": "+15550000001"}, "token": "provider-token"}),
    )
    .await;
    put(
        "/v1/channels/push".into(),
        json!({"settings": {"kind": "push", "url": format!("{base}/push"), "account": "AC2"},
               "token": "push-token"}),
    )
    .await;
    put(
        "/v1/templates/push-hello".into(),
        json!({"channel": "push", "subject": "Hi", "text": "Your cart, {{ customer.first_name }}"}),
    )
    .await;
    publish(
        &suite,
        "Push Me",
        json!({"send": {"template": "push-hello", "channel": "push", "next": "done"}}),
    )
    .await;
    put(
        "/v1/templates/sms-hello".into(),
        json!({"channel": "sms", "subject": "Hi", "text": "Hola {{ customer.first_name }}"}),
    )
    .await;
    publish(
        &suite,
        "Hook Me",
        json!({"webhook": {"channel": "hook", "next": "done"}}),
    )
    .await;
    publish(
        &suite,
        "Gone Away",
        json!({"webhook": {"channel": "gone", "next": "done"}}),
    )
    .await;
    publish(
        &suite,
        "Text Me",
        json!({"send": {"template": "sms-hello", "channel": "sms", "next": "done"}}),
    )
    .await;

    let run = unique_id();
    let user = format!("o-{run}");
    suite
        .ingest(
            &json!({"kind": "identify", "identity": {"user_id": user, "phone": "+34 600 111 222"},
            "traits": {"first_name": "Ana", "push_token": "ExponentPushToken[xk3-Ana]",
                       "consent": [{"purpose": "marketing", "channel": "sms", "granted": true},
                                   {"purpose": "marketing", "channel": "push", "granted": true}]}}),
        )
        .await;
    suite.wait_for_customer(&user, |_| true).await;
    for name in ["Hook Me", "Gone Away"] {
        suite
            .ingest(&json!({"kind": "track", "name": name, "identity": {"user_id": user}}))
            .await;
    }

    // The webhook call carries a Standard Webhooks signature that checks out independently.
    let (headers, body) = eventually("the webhook call", || async {
        let seen = seen.lock().unwrap();
        seen.iter()
            .find(|(p, _, _)| p == "/hook")
            .map(|(_, h, b)| (h.clone(), b.clone()))
    })
    .await;
    let (id, ts) = (&headers["webhook-id"], &headers["webhook-timestamp"]);
    let expected = standard_signature(&secret, id, ts, &body);
    assert!(
        headers["webhook-signature"]
            .split(' ')
            .any(|s| s == expected),
        "{headers:?}"
    );
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["type"], "journey.webhook");
    assert_eq!(payload["data"]["traits"]["first_name"], "Ana");

    // 410 Gone disables the channel.
    eventually("the gone channel disabled", || async {
        let (status, ch) = suite
            .admin_call(Method::GET, "/v1/channels/gone", None)
            .await;
        assert_eq!(status, 200, "{ch}");
        (!ch["disabled_at"].is_null()).then_some(())
    })
    .await;

    // The SMS goes to the provider with Basic auth, the number and the rendered text.
    suite
        .ingest(&json!({"kind": "track", "name": "Text Me", "identity": {"user_id": user}}))
        .await;
    let (headers, body) = eventually("the provider call", || async {
        let seen = seen.lock().unwrap();
        seen.iter()
            .find(|(p, _, _)| p == "/sms")
            .map(|(_, h, b)| (h.clone(), b.clone()))
    })
    .await;
    let auth = format!("Basic {}", STANDARD.encode("AC1:provider-token"));
    assert_eq!(headers["authorization"], auth);
    let form: HashMap<String, String> = url_pairs(&body);
    assert_eq!(form["To"], "+34600111222");
    assert_eq!(form["From"], "+15550000001");
    assert_eq!(form["Body"], "Hola Ana");
    // The provider reports the number undeliverable: suppressed at once.
    let callback = form["StatusCallback"].replace(TRACKING_BASE, &suite.gateway);
    let answer = suite
        .http
        .post(&callback)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("MessageSid=SM123&MessageStatus=undelivered")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let (_, list) = suite
        .admin_call(Method::GET, "/v1/suppressions", None)
        .await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["address"] == "+34600111222" && s["reason"] == "hard_bounce"),
        "{list}"
    );

    // Push goes to the device token in the `push_token` trait, not to the phone.
    suite
        .ingest(&json!({"kind": "track", "name": "Push Me", "identity": {"user_id": user}}))
        .await;
    let (headers, body) = eventually("the push provider call", || async {
        let seen = seen.lock().unwrap();
        seen.iter()
            .find(|(p, _, _)| p == "/push")
            .map(|(_, h, b)| (h.clone(), b.clone()))
    })
    .await;
    let auth = format!("Basic {}", STANDARD.encode("AC2:push-token"));
    assert_eq!(headers["authorization"], auth);
    let form: HashMap<String, String> = url_pairs(&body);
    assert_eq!(form["To"], "ExponentPushToken[xk3-Ana]");
    assert_eq!(form["Body"], "Your cart, Ana");
    suite.stop().await;
}

/// `a=b&c=d` (percent-decoded, `+` as a space).
fn url_pairs(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
