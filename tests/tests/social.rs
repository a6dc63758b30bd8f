//! Social listening on the real parts: a connector's signed network calls become `Social
//! Mention` events with their sentiment; an unknown handle makes one prospect however many
//! times it posts, and an identify carrying the handle links it to the customer; a positive
//! Spanish mention earns loyalty's bonus once; a bad signature is refused and turns the
//! connector's health red; X's CRC challenge is answered; another tenant sees no connector of
//! this one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use base64::Engine as _;
use crm_gateway::Scope;
use crm_tests::{eventually, unique_id, Suite};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};

const SECRET: &str = "x-consumer-secret-for-tests";

fn x_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fn tweet(id: &str, author: &str, text: &str) -> Value {
    json!({"for_user_id": "4337869213", "tweet_create_events": [{
        "created_at": "Wed Dec 02 10:00:00 +0000 2026", "id_str": id, "text": text, "lang": "es",
        "user": {"id_str": "77", "name": "Bo", "screen_name": author},
        "entities": {"hashtags": [], "user_mentions": [{"screen_name": "Acme", "id_str": "4337869213"}]}}]})
}

async fn call(suite: &Suite, url: &str, body: &Value, signature: &str) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let response = suite
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("x-twitter-webhooks-signature", signature)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn handle_owners(suite: &Suite, handle: &str) -> Vec<uuid::Uuid> {
    let identity = suite.identity_pool().await;
    sqlx::query_scalar(
        "SELECT DISTINCT customer_id FROM identifiers WHERE kind = 'handle:x' AND value = $1",
    )
    .bind(handle)
    .fetch_all(&identity)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_make_one_profile_per_handle_and_a_bad_signature_turns_the_health_red() {
    let suite = Suite::start().await;
    let run = unique_id();
    let (status, body) = suite
        .admin_call(
            Method::PUT,
            "/v1/loyalty/programme",
            Some(&json!({"earn_rate": 1, "bonuses": {"positive_mention": 30}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, connector) = suite
        .admin_call(
            Method::POST,
            "/v1/connectors",
            Some(&json!({"name": format!("X {run}"), "network": "x", "account": "@Acme",
                         "secret": SECRET, "tracked": {"handles": ["acme"], "keywords": ["botas"]}})),
        )
        .await;
    assert_eq!(status, 201, "{connector}");
    assert_eq!(connector["health"]["status"], "amber", "{connector}");
    let id = connector["id"].as_str().unwrap().to_owned();
    let url = connector["webhook_url"].as_str().unwrap().to_owned();
    assert!(url.ends_with(&format!("/hooks/social/acme/{id}")), "{url}");
    let url = format!("{}/hooks/social/acme/{id}", suite.gateway);

    // X's CRC challenge.
    let answer: Value = suite
        .http
        .get(format!("{url}?crc_token=challenge-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["response_token"], x_signature(b"challenge-1"));

    // Two mentions from a handle nobody has: one profile.
    let author = format!("bo_{}", &run[..8]).to_lowercase();
    for (n, text) in ["@Acme me encantan las botas", "@Acme otra vez"]
        .iter()
        .enumerate()
    {
        let body = tweet(&format!("18630{n}{}", &run[..6]), &author, text);
        let signature = x_signature(&serde_json::to_vec(&body).unwrap());
        let (status, taken) = call(&suite, &url, &body, &signature).await;
        assert_eq!(status, 200, "{taken}");
        assert_eq!(
            (taken["read"].as_i64(), taken["published"].as_i64()),
            (Some(1), Some(1))
        );
    }
    // The network retrying the first call publishes the same event: nothing new.
    let first = tweet(
        &format!("186300{}", &run[..6]),
        &author,
        "@Acme me encantan las botas",
    );
    let signature = x_signature(&serde_json::to_vec(&first).unwrap());
    assert_eq!(call(&suite, &url, &first, &signature).await.0, 200);
    let prospect = eventually("the handle's profile", || async {
        let owners = handle_owners(&suite, &author).await;
        (owners.len() == 1).then(|| owners[0])
    })
    .await;
    let identity = suite.identity_pool().await;
    eventually("both mentions on the profile's timeline", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM timeline WHERE customer_id = $1 AND name = 'Social Mention'",
        )
        .bind(prospect)
        .fetch_one(&identity)
        .await
        .unwrap_or(0);
        (n == 2).then_some(())
    })
    .await;
    assert_eq!(handle_owners(&suite, &author).await, [prospect]);

    // Each mention carries its sentiment with the lexicon that scored it; the positive Spanish
    // one earned the bonus once (the retried call changed nothing), the neutral one nothing.
    let scored: Vec<(String, String)> = sqlx::query_as(
        "SELECT properties ->> 'sentiment_label', properties ->> 'sentiment_lexicon' FROM timeline
         WHERE customer_id = $1 AND name = 'Social Mention' ORDER BY event_id",
    )
    .bind(prospect)
    .fetch_all(&identity)
    .await
    .unwrap();
    assert_eq!(
        scored,
        [
            ("positive".to_owned(), "es-1".to_owned()),
            ("neutral".to_owned(), "es-1".to_owned())
        ]
    );
    let balance = || async {
        let (status, body) = suite
            .admin_call(
                Method::GET,
                &format!("/v1/loyalty/customers/{prospect}"),
                None,
            )
            .await;
        (status == 200).then(|| body["balance"].as_i64().unwrap_or(0))
    };
    eventually("the positive mention's bonus", || async {
        (balance().await == Some(30)).then_some(())
    })
    .await;

    // A prospect, with what the mentions matched: the brand twice, the keyword once.
    let prospects = |after: Option<String>| {
        let suite = &suite;
        async move {
            let path = match after {
                Some(a) => format!("/v1/prospects?limit=100&after={a}"),
                None => "/v1/prospects?limit=100".to_owned(),
            };
            let response = suite.get(Some(&suite.key), &path).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let find = |page: &Value| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["customer_id"] == prospect.to_string().as_str())
            .cloned()
    };
    let mine = find(&prospects(None).await).expect("the handle's profile is a prospect");
    assert_eq!(mine["handles"], json!([format!("x:{author}")]), "{mine}");
    assert_eq!(mine["mentions"], 2, "{mine}");
    assert_eq!(
        mine["interests"],
        json!([{"term": "@acme", "mentions": 2}, {"term": "keyword:botas", "mentions": 1}]),
        "{mine}"
    );

    // The customer identifies with the handle: the mentions' profile is theirs, with evidence.
    let user = format!("u-{run}");
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": user,
            "handles": [{"network": "x", "handle": format!("@{author}")}]},
            "traits": {"name": "Bo"}}))
        .await;
    let known = suite.wait_for_customer(&user, |_| true).await;
    let known_id: uuid::Uuid = known["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(handle_owners(&suite, &author).await, [known_id]);
    // Linked to a user id, the profile is a customer's, no longer a prospect.
    let page = prospects(None).await;
    assert!(find(&page).is_none(), "{page}");
    assert!(
        !page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["customer_id"] == known_id.to_string().as_str()),
        "{page}"
    );
    if known_id != prospect {
        let evidence: Option<Value> = sqlx::query_scalar(
            "SELECT evidence FROM merges WHERE survivor_id = $1 AND merged_id = $2",
        )
        .bind(known_id)
        .bind(prospect)
        .fetch_optional(&identity)
        .await
        .unwrap();
        assert!(evidence.is_some(), "the link is a merge with evidence");
    }

    // A call signed with another secret is refused, and the health says so.
    let (status, refused) = call(&suite, &url, &first, &x_signature(b"something else")).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    let (status, read) = suite
        .admin_call(Method::GET, &format!("/v1/connectors/{id}"), None)
        .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["health"]["status"], "red", "{read}");
    assert!(read["health"]["reason"]
        .as_str()
        .unwrap()
        .contains("x-twitter-webhooks-signature"));
    assert_eq!(read["received"], 3, "{read}");
    // A good call turns it green again.
    let body = tweet(&format!("186309{}", &run[..6]), &author, "gracias");
    let signature = x_signature(&serde_json::to_vec(&body).unwrap());
    let (status, taken) = call(&suite, &url, &body, &signature).await;
    assert_eq!(status, 200);
    // Mentions the brand, so it matches even without a keyword.
    assert_eq!(taken["published"], 1, "{taken}");
    let (_, read) = suite
        .admin_call(Method::GET, &format!("/v1/connectors/{id}"), None)
        .await;
    assert_eq!(read["health"]["status"], "green", "{read}");

    // Unknown connectors and other tenants.
    let other = suite
        .new_tenant(&format!("soc{}", &run[..8]).to_lowercase())
        .await;
    let response = suite
        .get(Some(&other), &format!("/v1/connectors/{id}"))
        .await;
    assert_eq!(response.status(), 404);
    let reader = suite.key_with("acme", &[Scope::Read]).await;
    let list: Value = suite
        .get(Some(&reader), "/v1/connectors")
        .await
        .json()
        .await
        .unwrap();
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id.as_str()));
    let (status, _) = call(
        &suite,
        &format!("{}/hooks/social/acme/{}", suite.gateway, uuid::Uuid::nil()),
        &first,
        &signature,
    )
    .await;
    assert_eq!(status, 404);
}

fn mastodon_status(id: &str, author: &str, html: &str, visibility: &str) -> Value {
    json!({"event": "status.created", "created_at": "2026-12-02T10:00:01.000Z",
        "object": {"id": id, "created_at": "2026-12-02T10:00:00.000Z", "visibility": visibility,
            "language": "es", "url": format!("https://mastodon.social/@{author}/{id}"),
            "content": html,
            "account": {"id": "9", "username": author, "acct": format!("{author}@mastodon.social"),
                        "display_name": "Carla"},
            "mentions": [{"id": "1", "username": "acme", "acct": "acme"}], "tags": []}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_mention_opens_a_conversation_that_agents_work() {
    const HOOK_SECRET: &str = "mastodon-webhook-secret-1";
    let suite = Suite::start().await;
    let sales = suite.key_with("acme", &[Scope::Sales, Scope::Read]).await;
    let (status, connector) = suite
        .admin_call(
            Method::POST,
            "/v1/connectors",
            Some(
                &json!({"name": "Mastodon", "network": "mastodon", "account": "acme",
                         "secret": HOOK_SECRET, "tracked": {"handles": ["acme"]}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{connector}");
    let url = format!(
        "{}/hooks/social/acme/{}",
        suite.gateway,
        connector["id"].as_str().unwrap()
    );
    let post = |body: Value| {
        let (suite, url) = (&suite, &url);
        async move {
            let bytes = serde_json::to_vec(&body).unwrap();
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
            mac.update(&bytes);
            let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            let response = suite
                .http
                .post(url)
                .header("content-type", "application/json")
                .header("x-hub-signature", signature)
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        }
    };
    let author = format!("carla{}", &unique_id()[..6]).to_lowercase();
    // A happy mention is listening only; an angry one opens an urgent thread, once however
    // often the network delivers it; a second angry one joins the same thread.
    post(mastodon_status(
        "1001",
        &author,
        "<p>@acme me encantan vuestras botas</p>",
        "public",
    ))
    .await;
    let angry = mastodon_status(
        "1002",
        &author,
        "<p>@acme pésimo servicio, ¡nunca más! 😡</p>",
        "public",
    );
    post(angry.clone()).await;
    post(angry).await;
    post(mastodon_status(
        "1003",
        &author,
        "<p>@acme y el pedido sigue sin llegar</p>",
        "public",
    ))
    .await;
    let list = |query: &'static str| {
        let (suite, sales) = (&suite, &sales);
        async move {
            let (status, page) = api_call(
                suite,
                sales,
                Method::GET,
                &format!("/v1/conversations{query}"),
                None,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            page["items"].as_array().unwrap().clone()
        }
    };
    let urgent = list("?priority=urgent&status=open").await;
    assert_eq!(urgent.len(), 1, "{urgent:#?}");
    let thread = &urgent[0];
    assert_eq!(
        thread["contact"],
        format!("{author}@mastodon.social").as_str()
    );
    assert!(thread["waiting_since"].is_string() && thread["first_reply_due"].is_string());
    let path = format!("/v1/conversations/{}", thread["id"].as_str().unwrap());
    let (status, detail) = api_call(&suite, &sales, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{detail}");
    let texts: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 2, "{detail}");
    assert!(
        texts[0].contains("pésimo") && texts[1].contains("sigue sin llegar"),
        "{texts:?}"
    );
    assert!(
        detail["messages"][0]["properties"]["sentiment"]
            .as_f64()
            .unwrap()
            <= -0.6
    );

    // An agent takes it, snoozes it, then resolves it; resolved, it stays resolved.
    let (status, snoozed) = api_call(&suite, &sales, Method::PATCH, &path,
        Some(&json!({"assignee": "ana", "status": "snoozed", "snoozed_until": "2099-01-01T00:00:00Z"}))).await;
    assert_eq!(status, 200, "{snoozed}");
    assert_eq!(
        (snoozed["assignee"].as_str(), snoozed["status"].as_str()),
        (Some("ana"), Some("snoozed"))
    );
    let (status, refused) = api_call(
        &suite,
        &sales,
        Method::PATCH,
        &path,
        Some(&json!({"status": "snoozed"})),
    )
    .await;
    assert_eq!(
        (status, refused["path"].as_str()),
        (422, Some("/snoozed_until")),
        "{refused}"
    );
    let (status, done) = api_call(
        &suite,
        &sales,
        Method::PATCH,
        &path,
        Some(&json!({"status": "resolved"})),
    )
    .await;
    assert_eq!(
        (status, done["status"].as_str()),
        (200, Some("resolved")),
        "{done}"
    );
    assert!(done["resolved_at"].is_string() && done["waiting_since"].is_null());
    let (status, _) = api_call(
        &suite,
        &sales,
        Method::PATCH,
        &path,
        Some(&json!({"status": "open"})),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(list("?assignee=ana&status=resolved").await.len(), 1);
    // Another tenant sees no thread of this one.
    let other = suite
        .new_tenant(&format!("cv{}", &unique_id()[..8]).to_lowercase())
        .await;
    let (status, _) = api_call(&suite, &other, Method::GET, &path, None).await;
    assert_eq!(status, 404);
}

/// The open conversation of `contact` (an address, number or handle), which `what` opened.
async fn open_thread(suite: &Suite, contact: &str, what: &str) -> Value {
    let (status, page) = suite
        .admin_call(Method::GET, "/v1/conversations?status=open", None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["contact"] == contact)
        .cloned()
        .unwrap_or_else(|| panic!("{what}: no open conversation with {contact} in {page}"))
}

/// Posts a reply to conversation `id`; it is accepted (202) and queued. Answers the response.
async fn post_reply(suite: &Suite, id: &str, reply: Value) -> Value {
    let (status, queued) = suite
        .admin_call(
            Method::POST,
            &format!("/v1/conversations/{id}/replies"),
            Some(&reply),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    queued
}

/// The conversation once its first reply (the second message) shows `sent`.
async fn reply_sent(suite: &Suite, id: &str, what: &str) -> Value {
    eventually(what, || async {
        let (_, d) = suite
            .admin_call(Method::GET, &format!("/v1/conversations/{id}"), None)
            .await;
        (d["messages"][1]["status"] == "sent").then_some(d)
    })
    .await
}

async fn api_call(
    suite: &Suite,
    key: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    suite.keyed_call(key, method, path, body).await
}

/// A raw email, as the inbound webhook receives it, built with lettre.
fn raw_email(from: &str, subject: &str, id: &str, replies_to: &[&str], text: &str) -> Vec<u8> {
    let mut b = lettre::Message::builder()
        .from(from.parse().unwrap())
        .to("help@acme.test".parse().unwrap())
        .subject(subject)
        .message_id(Some(format!("<{id}>")));
    if let Some(last) = replies_to.last() {
        b = b.in_reply_to(format!("<{last}>"));
        let refs: Vec<String> = replies_to.iter().map(|r| format!("<{r}>")).collect();
        b = b.references(refs.join(" "));
    }
    b.body(text.to_owned()).unwrap().formatted()
}

async fn inbound(suite: &Suite, url: &str, secret: &str, raw: &[u8]) -> (u16, Value) {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(raw);
    let response = suite
        .http
        .post(url)
        .header("content-type", "message/rfc822")
        .header(
            "x-inbound-signature",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        )
        .body(raw.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_email_reply_threads_into_its_conversation() {
    let suite = Suite::start().await;
    let run = unique_id();
    let campaign = suite.pool_of("campaign").await;
    let secret = "inbound-relay-secret-for-tests";
    let (status, body) = suite
        .admin_call(
            Method::PUT,
            "/v1/channels/mail",
            Some(
                &json!({"settings": {"kind": "email", "from": "support@acme.test",
                                      "from_name": "Acme"}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, connector) = suite
        .admin_call(
            Method::POST,
            "/v1/connectors",
            Some(&json!({"name": format!("Help {run}"), "network": "email",
                         "account": "help@acme.test", "secret": secret})),
        )
        .await;
    assert_eq!(status, 201, "{connector}");
    let url = format!(
        "{}/hooks/social/acme/{}",
        suite.gateway,
        connector["id"].as_str().unwrap()
    );
    let (user, email) = (format!("mail-{run}"), format!("mail-{run}@example.test"));
    let customer = suite.mailable_customer(&campaign, &user, &email).await;

    // The customer writes: a thread opens, high priority (the text is negative), with its
    // subject, both SLAs, and the contact waiting.
    let first_id = format!("first-{run}@example.test");
    let first = raw_email(
        &format!("Ana <{email}>"),
        "Order 42 arrived broken",
        &first_id,
        &[],
        "My boots arrived broken. Terrible, I am very disappointed.",
    );
    let (status, taken) = inbound(&suite, &url, secret, &first).await;
    assert_eq!(
        (status, taken["published"].as_i64()),
        (200, Some(1)),
        "{taken}"
    );
    let thread = open_thread(&suite, &email, "the email opened a conversation").await;
    assert_eq!(thread["channel"], "email");
    assert_eq!(thread["priority"], "high", "{thread}");
    assert_eq!(thread["subject"], "Order 42 arrived broken");
    assert!(thread["waiting_since"].is_string() && thread["resolution_due"].is_string());
    let id = thread["id"].as_str().unwrap().to_owned();

    // A canned reply: the template rendered for the thread, mailed threaded.
    let (status, body) = suite
        .admin_call(
            Method::PUT,
            "/v1/templates/sorry",
            Some(&json!({"channel": "email", "subject": "Sorry",
                         "text": "Hello {{ contact }}, we are sorry about: {{ subject }}."})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let queued = post_reply(&suite, &id, json!({"template": "sorry", "author": "bea"})).await;
    assert_eq!(queued["message"]["status"], "queued");
    let mail = eventually("the reply's mail", || async {
        crm_tests::mail_to(&email).into_iter().next()
    })
    .await;
    let header = |name: &str| crm_tests::mail_header(&mail, name).map(str::to_owned);
    assert_eq!(
        header("In-Reply-To"),
        Some(format!("<{first_id}>")),
        "{mail}"
    );
    assert_eq!(header("References"), Some(format!("<{first_id}>")));
    assert_eq!(header("Reply-To").as_deref(), Some("help@acme.test"));
    assert_eq!(
        header("Subject").as_deref(),
        Some("Re: Order 42 arrived broken")
    );
    // The body is quoted-printable: soft line breaks joined.
    let flat = mail.replace("=\r\n", "").replace("=\n", "");
    assert!(
        flat.contains(&format!(
            "Hello {email}, we are sorry about: Order 42 arrived broken."
        )),
        "{mail}"
    );
    let reply_id = header("Message-ID").unwrap();
    let reply_id = reply_id.trim_matches(['<', '>']).to_owned();
    let detail = reply_sent(&suite, &id, "the reply sent").await;
    assert_eq!(detail["status"], "pending", "{detail}");
    assert!(detail["first_reply_at"].is_string());
    assert_eq!(detail["messages"][1]["author"], "bea");

    // Resolved; then the customer answers the reply: the same thread reopens with the answer,
    // its quoted part left out.
    let (status, _) = suite
        .admin_call(
            Method::PATCH,
            &format!("/v1/conversations/{id}"),
            Some(&json!({"status": "resolved"})),
        )
        .await;
    assert_eq!(status, 200);
    let answer = raw_email(
        &email,
        "Re: Order 42 arrived broken",
        &format!("answer-{run}@example.test"),
        &[&first_id, &reply_id],
        "Thanks, that helps!\n\nOn Fri, Dec 4, 2026 Acme <support@acme.test> wrote:\n> Hello",
    );
    let (status, _) = inbound(&suite, &url, secret, &answer).await;
    assert_eq!(status, 200);
    // The relay retrying the same message changes nothing.
    assert_eq!(inbound(&suite, &url, secret, &answer).await.0, 200);
    let (_, detail) = suite
        .admin_call(Method::GET, &format!("/v1/conversations/{id}"), None)
        .await;
    assert_eq!(detail["status"], "open", "{detail}");
    assert!(detail["resolved_at"].is_null());
    let messages = detail["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{detail}");
    assert_eq!(messages[2]["direction"], "in");
    assert_eq!(messages[2]["text"], "Thanks, that helps!");
    let (_, all) = suite
        .admin_call(Method::GET, "/v1/conversations?limit=200", None)
        .await;
    let mine = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["contact"] == email.as_str())
        .count();
    assert_eq!(mine, 1, "one thread for the contact: {all}");

    // Both emails are on the customer's timeline.
    let identity = suite.identity_pool().await;
    eventually("both emails on the timeline", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM timeline WHERE customer_id = $1 AND name = 'Email Received'",
        )
        .bind(customer)
        .fetch_one(&identity)
        .await
        .unwrap_or(0);
        (n == 2).then_some(())
    })
    .await;

    // A message signed with another secret is refused; another tenant sees no thread.
    let (status, refused) = inbound(&suite, &url, "not-the-relay-secret", &answer).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    let globex = suite.new_tenant(&format!("globex{}", &run[..6])).await;
    let (status, _) = suite
        .keyed_call(
            &globex,
            Method::GET,
            &format!("/v1/conversations/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    suite.stop().await;
}

/// What a stand-in API received: path, authorization, idempotency key, raw body.
type Posted = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String, String)>>>;

/// A stand-in for a network's or a provider's API on a local port: it records each `POST`,
/// whatever its path, and answers `answer`, as the real API answers a post (Mastodon's
/// status, X's direct message event, the SMS provider's message).
async fn api_stand_in(answer: Value) -> (String, Posted) {
    use axum::http::{HeaderMap, Uri};
    let posted: Posted = Default::default();
    let seen = posted.clone();
    let app = axum::Router::new().fallback(axum::routing::post(
        move |uri: Uri, headers: HeaderMap, body: String| {
            let (seen, answer) = (seen.clone(), answer.clone());
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                seen.lock().unwrap().push((
                    uri.path().to_owned(),
                    header("authorization"),
                    header("idempotency-key"),
                    body,
                ));
                axum::Json(answer)
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, posted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_a_mastodon_direct_message_is_posted_direct_with_the_connectors_token() {
    let suite = Suite::start().await;
    let run = unique_id();
    let (api, posted) = api_stand_in(json!({"id": "9001", "visibility": "direct"})).await;
    let secret = "mastodon-webhook-secret-for-tests";
    let (status, connector) = suite
        .admin_call(
            Method::POST,
            "/v1/connectors",
            Some(
                &json!({"name": format!("Mastodon {run}"), "network": "mastodon",
                         "account": "acme", "secret": secret, "tracked": {"handles": ["acme"]},
                         "api_url": api, "api_token": "token-for-posting"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{connector}");
    assert_eq!(connector["can_reply"], true);
    assert!(
        connector.get("api_token").is_none(),
        "the token is write-only"
    );
    let url = format!(
        "{}/hooks/social/acme/{}",
        suite.gateway,
        connector["id"].as_str().unwrap()
    );
    let author = format!("ana{}@mastodon.social", &run[..6]);
    let status_id = format!("1135{}", &run[..6]);
    let event = json!({"event": "status.created", "created_at": "2026-12-04T10:00:01.000Z",
        "object": {"id": status_id, "created_at": "2026-12-04T10:00:00.000Z",
            "visibility": "direct", "language": "es", "url": null,
            "content": "<p>@acme ¿cuándo llega mi pedido?</p>",
            "account": {"id": "1", "username": "ana", "acct": author, "display_name": "Ana"},
            "mentions": [{"id": "2", "username": "acme", "acct": "acme"}], "tags": []}});
    let body = serde_json::to_vec(&event).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let response = suite
        .http
        .post(&url)
        .header("content-type", "application/json")
        .header(
            "x-hub-signature",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let thread = open_thread(&suite, &author, "the direct message opened a conversation").await;
    assert_eq!(thread["channel"], "mastodon");
    let id = thread["id"].as_str().unwrap().to_owned();
    let queued = post_reply(&suite, &id, json!({"text": "Mañana, Ana. ¡Gracias!"})).await;
    let reply_id = queued["message"]["id"].as_str().unwrap().to_owned();
    let detail = reply_sent(&suite, &id, "the reply posted").await;
    assert_eq!(
        detail["messages"][1]["external_id"], "mastodon:9001",
        "{detail}"
    );
    let calls = posted.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (path, auth, key, body) = &calls[0];
    assert_eq!(path, "/api/v1/statuses");
    assert_eq!(auth, "Bearer token-for-posting");
    assert_eq!(key, &reply_id);
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"status": format!("@{author} Mañana, Ana. ¡Gracias!"),
               "in_reply_to_id": status_id, "visibility": "direct"})
    );
    suite.stop().await;
}

/// The timeline entries called `name` of the customer an identifier of `kind` points to.
async fn timeline_count(suite: &Suite, kind: &str, value: &str, name: &str) -> i64 {
    let identity = suite.identity_pool().await;
    sqlx::query_scalar(
        "SELECT count(*) FROM timeline t JOIN identifiers i ON i.customer_id = t.customer_id
         WHERE i.kind = $1 AND i.value = $2 AND t.name = $3",
    )
    .bind(kind)
    .bind(value)
    .bind(name)
    .fetch_one(&identity)
    .await
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_an_x_direct_message_goes_to_the_senders_conversation_and_the_timeline() {
    let suite = Suite::start().await;
    let run = unique_id();
    let (api, posted) = api_stand_in(
        json!({"data": {"dm_conversation_id": "77-4337869213", "dm_event_id": "1582"}}),
    )
    .await;
    let (status, connector) = suite
        .admin_call(
            Method::POST,
            "/v1/connectors",
            Some(
                &json!({"name": format!("X DM {run}"), "network": "x", "account": "acme",
                         "secret": SECRET, "tracked": {"handles": ["acme"]},
                         "api_url": api, "api_token": "x-user-token"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{connector}");
    let url = format!(
        "{}/hooks/social/acme/{}",
        suite.gateway,
        connector["id"].as_str().unwrap()
    );
    let author = format!("dm_{}", &run[..8]);
    let dm = json!({"for_user_id": "4337869213",
        "direct_message_events": [{"type": "message_create", "id": format!("95{}", &run[..6]),
            "created_timestamp": "1796205600000",
            "message_create": {"target": {"recipient_id": "4337869213"}, "sender_id": "77",
                "message_data": {"text": "Where is my order?", "entities": {}}}}],
        "users": {"77": {"id": "77", "name": "Dee", "screen_name": author}}});
    let signature = x_signature(&serde_json::to_vec(&dm).unwrap());
    let (status, taken) = call(&suite, &url, &dm, &signature).await;
    assert_eq!(
        (status, taken["published"].as_i64()),
        (200, Some(1)),
        "{taken}"
    );

    let thread = open_thread(&suite, &author, "the direct message opened a conversation").await;
    assert_eq!(thread["channel"], "x");
    let id = thread["id"].as_str().unwrap().to_owned();
    post_reply(&suite, &id, json!({"text": "It ships today."})).await;
    let detail = reply_sent(&suite, &id, "the direct message sent").await;
    assert_eq!(detail["messages"][1]["external_id"], "x:1582", "{detail}");
    let calls = posted.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (path, auth, _, body) = &calls[0];
    // The one-to-one conversation with the sender, by the user id X gave for them.
    assert_eq!(path, "/2/dm_conversations/with/77/messages");
    assert_eq!(auth, "Bearer x-user-token");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"text": "It ships today."})
    );
    // An agent takes the thread and resolves it; a second patch that moves nothing publishes
    // nothing.
    for _ in 0..2 {
        let (status, patched) = suite
            .admin_call(
                Method::PATCH,
                &format!("/v1/conversations/{id}"),
                Some(&json!({"status": "resolved", "assignee": "sam"})),
            )
            .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["status"], "resolved", "{patched}");
    }
    // The message, the answer and the agent's change are all on the handle's timeline.
    eventually(
        "the message, the reply and the change on the timeline",
        || async {
            let handle = author.to_lowercase();
            let got = (
                timeline_count(&suite, "handle:x", &handle, "Social Mention").await,
                timeline_count(&suite, "handle:x", &handle, "Conversation Reply Sent").await,
                timeline_count(&suite, "handle:x", &handle, "Conversation Updated").await,
            );
            (got == (1, 1, 1)).then_some(())
        },
    )
    .await;
    suite.stop().await;
}

/// A form as an SMS provider posts it, and its `X-Twilio-Signature` for `url` and `token`.
fn sms_call(url: &str, token: &str, fields: &[(&str, &str)]) -> (String, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut sorted = fields.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (body, signature)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_from_a_number_make_one_sms_thread_answered_through_the_sms_channel() {
    let suite = Suite::start().await;
    let run = unique_id();
    let token = "0123456789abcdef0123456789abcdef";
    let (provider, sent) = api_stand_in(json!({"sid": "SMreply0001", "status": "queued"})).await;
    let (status, body) = suite
        .admin_call(
            Method::PUT,
            "/v1/channels/texts",
            Some(
                &json!({"settings": {"kind": "sms", "url": format!("{provider}/Messages.json"),
                                      "account": "AC1", "from": "+34910000000"},
                         "token": "provider-token"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, connector) = suite
        .admin_call(
            Method::POST,
            "/v1/connectors",
            Some(&json!({"name": format!("SMS {run}"), "network": "sms",
                         "account": "+34910000000", "secret": token})),
        )
        .await;
    assert_eq!(status, 201, "{connector}");
    // The provider signs the URL registered with it: the connector's webhook_url.
    let registered = connector["webhook_url"].as_str().unwrap().to_owned();
    let url = format!(
        "{}/hooks/social/acme/{}",
        suite.gateway,
        connector["id"].as_str().unwrap()
    );
    let digits = u64::from_str_radix(&run[..8], 16).unwrap() % 10_000_000;
    let number = format!("+3460{digits:07}");
    suite
        .ingest(&json!({"kind": "identify",
                         "identity": {"user_id": format!("sms-{run}"), "phone": number}}))
        .await;
    let text = |sid: &str, body: &str| -> (String, String) {
        sms_call(
            &registered,
            token,
            &[
                ("MessageSid", sid),
                ("AccountSid", "AC1"),
                ("From", &number),
                ("To", "+34910000000"),
                ("Body", body),
                ("NumMedia", "0"),
            ],
        )
    };
    let post = |(body, signature): (String, String)| {
        let (http, url) = (suite.http.clone(), url.clone());
        async move {
            http.post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };

    // A text: taken with an empty TwiML answer, and a thread on the SMS channel.
    let answer = post(text(&format!("SMa{run}"), "¿Dónde está mi pedido?")).await;
    assert_eq!(answer.status(), 200);
    assert!(answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/xml")));
    assert!(answer.text().await.unwrap().contains("<Response>"));
    let thread = open_thread(&suite, &number, "the text opened a conversation").await;
    assert_eq!(thread["channel"], "sms");
    let id = thread["id"].as_str().unwrap().to_owned();

    // The agent answers: the provider gets the text, from the channel's number, to the sender.
    post_reply(&suite, &id, json!({"text": "Llega mañana."})).await;
    let detail = reply_sent(&suite, &id, "the reply sent").await;
    assert_eq!(detail["messages"][1]["external_id"], "sms:SMreply0001");
    let calls = sent.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (path, auth, _, form) = &calls[0];
    assert_eq!(path, "/Messages.json");
    let basic = base64::engine::general_purpose::STANDARD.encode("AC1:provider-token");
    assert_eq!(auth, &format!("Basic {basic}"));
    let form: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(
        (field("To"), field("From"), field("Body")),
        (
            Some(number.as_str()),
            Some("+34910000000"),
            Some("Llega mañana.")
        )
    );

    // The answer to the answer joins the same thread; the provider retrying it adds nothing.
    let again = text(&format!("SMb{run}"), "¡Gracias!");
    assert_eq!(post(again.clone()).await.status(), 200);
    assert_eq!(post(again).await.status(), 200);
    let (_, detail) = suite
        .admin_call(Method::GET, &format!("/v1/conversations/{id}"), None)
        .await;
    assert_eq!(detail["messages"].as_array().unwrap().len(), 3, "{detail}");
    assert_eq!(detail["status"], "open", "{detail}");

    // Both texts and the reply are on the customer's timeline, found by the number.
    eventually(
        "the texts and the reply on the customer's timeline",
        || async {
            let got = (
                timeline_count(&suite, "phone", &number, "SMS Received").await,
                timeline_count(&suite, "phone", &number, "Conversation Reply Sent").await,
            );
            (got == (2, 1)).then_some(())
        },
    )
    .await;
    let owners: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT customer_id FROM identifiers WHERE kind = 'phone' AND value = $1",
    )
    .bind(&number)
    .fetch_all(&suite.identity_pool().await)
    .await
    .unwrap();
    assert_eq!(owners.len(), 1, "one customer for the number: {owners:?}");

    // A form signed for another URL, or with another token, is refused.
    let (body, forged) = sms_call(
        "https://elsewhere.example/hook",
        token,
        &[
            ("MessageSid", "SMx"),
            ("From", &number),
            ("To", "+34910000000"),
        ],
    );
    let refused = post((body, forged)).await;
    assert_eq!(refused.status(), 401);
    suite.stop().await;
}
