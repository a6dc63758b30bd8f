//! Surveys on the real parts: a personal link's answer writes each mapped trait by its rule
//! (overwrite, only if empty, append) and is taken once; an anonymous answer through a public
//! link never replaces a verified trait; each answer is a `Survey Answered` event on the
//! timeline; bad answers name the field, a filled honeypot records nothing, the public route
//! is rate-limited, a closed survey takes no answer; the report counts the NPS; another
//! tenant sees none of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use crm_tests::{eventually, unique_id, Suite};
use reqwest::Method;
use serde_json::{json, Value};

async fn public(
    suite: &Suite,
    method: Method,
    url: &str,
    body: Option<&Value>,
    from: &str,
) -> (u16, Value) {
    let mut request = suite
        .http
        .request(method, url)
        .header("x-forwarded-for", format!("198.51.100.1, {from}"));
    if let Some(b) = body {
        request = request.json(b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn timeline_answers(suite: &Suite, customer: &str) -> i64 {
    let identity = suite.identity_pool().await;
    sqlx::query_scalar(
        "SELECT count(*) FROM timeline WHERE customer_id = $1::uuid AND name = 'Survey Answered'",
    )
    .bind(customer)
    .fetch_one(&identity)
    .await
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_write_traits_by_their_rules_and_anonymous_ones_never_replace_verified_traits() {
    let suite = Suite::start().await;
    let run = unique_id();
    let campaign = suite.pool_of("campaign").await;

    // A definition with a fault is refused with the field's path.
    let (status, problem) = suite
        .admin_call(
            Method::POST,
            "/v1/surveys",
            Some(&json!({"name": "broken", "questions": [
                {"id": "colour", "kind": "single", "label": "Colour", "options": ["red"]}]})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "invalid_survey");
    assert_eq!(problem["path"], "/questions/0/options");

    let (status, survey) = suite
        .admin_call(
            Method::POST,
            "/v1/surveys",
            Some(&json!({"name": format!("After delivery {run}"), "questions": [
                {"id": "nps", "kind": "nps", "label": "¿Nos recomendarías?", "required": true},
                {"id": "colour", "kind": "single", "label": "Colour", "options": ["red", "blue", "green"],
                 "maps_to": {"trait": "colour", "rule": "overwrite"}},
                {"id": "size", "kind": "single", "label": "Size", "options": ["s", "m", "l"],
                 "maps_to": {"trait": "size", "rule": "if_empty"}},
                {"id": "sports", "kind": "multiple", "label": "Sports", "options": ["run", "swim", "ride"],
                 "maps_to": {"trait": "sports", "rule": "append"}},
                {"id": "why", "kind": "text", "label": "Why?"}],
             "hidden": [{"id": "email", "maps_to": {"trait": "email", "rule": "if_empty"}}, {"id": "campaign"}],
             "thank_you": "¡Gracias!"})),
        )
        .await;
    assert_eq!(status, 201, "{survey}");
    let id = survey["id"].as_str().unwrap().to_owned();

    // A customer with verified traits.
    let user = format!("sv-{run}");
    let email = format!("sv-{run}@example.test");
    let customer = suite.mailable_customer(&campaign, &user, &email).await;
    suite
        .ingest(&json!({"kind": "identify", "identity": {"user_id": user},
                        "traits": {"colour": "red", "size": "m", "sports": ["run"]}}))
        .await;
    suite
        .wait_for_customer(&user, |p| p["traits"]["colour"] == "red")
        .await;

    // A personal link shows the survey without its trait mappings.
    let (status, link) = suite
        .admin_call(
            Method::POST,
            &format!("/v1/surveys/{id}/links"),
            Some(&json!({"customer_id": customer, "days": 7})),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(link["personal"], true);
    let url = link["url"].as_str().unwrap().to_owned();
    assert!(url.contains("/s/"), "{url}");
    let url = format!("{}/s/{}", suite.gateway, link["token"].as_str().unwrap());
    let (status, shown) = public(&suite, Method::GET, &url, None, "192.0.2.10").await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["questions"].as_array().unwrap().len(), 5);
    assert!(shown["questions"][1].get("maps_to").is_none(), "{shown}");
    assert_eq!(shown["personal"], true);

    // A bad answer names the field and records nothing.
    let (status, problem) = public(
        &suite,
        Method::POST,
        &url,
        Some(&json!({"answers": {"nps": 11}})),
        "192.0.2.10",
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("invalid_answer")),
        "{problem}"
    );
    assert_eq!(problem["path"], "/answers/nps");

    // The answer: overwrite replaces, if_empty keeps, append adds.
    let answer = json!({"answers": {"nps": 10, "colour": "blue", "size": "l", "sports": ["swim"],
                                    "why": "muy buen servicio"},
                        "hidden": {"campaign": "spring"}});
    let (status, taken) = public(&suite, Method::POST, &url, Some(&answer), "192.0.2.10").await;
    assert_eq!(status, 201, "{taken}");
    assert_eq!(taken["status"], "recorded");
    assert_eq!(taken["thank_you"], "¡Gracias!");
    // Answered again through the same link: taken once.
    let (status, again) = public(&suite, Method::POST, &url, Some(&answer), "192.0.2.10").await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("already_answered"))
    );
    let profile = suite
        .wait_for_customer(&user, |p| p["traits"]["colour"] == "blue")
        .await;
    assert_eq!(profile["traits"]["size"], "m", "{profile}");
    assert_eq!(
        profile["traits"]["sports"],
        json!(["run", "swim"]),
        "{profile}"
    );
    let customer_id = customer.to_string();
    eventually("the answer on the timeline", || async {
        (timeline_answers(&suite, &customer_id).await == 1).then_some(())
    })
    .await;

    // An anonymous answer through a public link, typed with the customer's email: it adds to
    // the list, fills nothing verified, and replaces no verified value.
    let (status, open_link) = suite
        .admin_call(
            Method::POST,
            &format!("/v1/surveys/{id}/links"),
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, 201, "{open_link}");
    assert_eq!(open_link["personal"], false);
    let open_url = format!(
        "{}/s/{}",
        suite.gateway,
        open_link["token"].as_str().unwrap()
    );
    let anonymous = json!({"answers": {"nps": 3, "colour": "green", "size": "s", "sports": ["ride"]},
                           "hidden": {"email": email}, "response_id": format!("r-{run}")});
    let (status, taken) = public(
        &suite,
        Method::POST,
        &open_url,
        Some(&anonymous),
        "192.0.2.11",
    )
    .await;
    assert_eq!(status, 201, "{taken}");
    // The same form posted twice (same response id) is one answer.
    let (status, _) = public(
        &suite,
        Method::POST,
        &open_url,
        Some(&anonymous),
        "192.0.2.11",
    )
    .await;
    assert_eq!(status, 200);
    let profile = suite
        .wait_for_customer(&user, |p| {
            p["traits"]["sports"] == json!(["run", "swim", "ride"])
        })
        .await;
    assert_eq!(profile["traits"]["colour"], "blue", "{profile}");
    assert_eq!(profile["traits"]["size"], "m", "{profile}");
    eventually("both answers on the timeline", || async {
        (timeline_answers(&suite, &customer_id).await == 2).then_some(())
    })
    .await;

    // A filled honeypot is told it was taken, and nothing is recorded.
    let robot = json!({"answers": {"nps": 0}, "website": "http://spam.example"});
    let (status, _) = public(&suite, Method::POST, &open_url, Some(&robot), "192.0.2.12").await;
    assert_eq!(status, 201);

    // The report: two answers, one promoter and one detractor: NPS 0.
    let (status, report) = suite
        .admin_call(Method::GET, &format!("/v1/surveys/{id}/report"), None)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["answers"], 2, "{report}");
    assert_eq!(report["nps"]["promoters"], 1);
    assert_eq!(report["nps"]["detractors"], 1);
    assert_eq!(report["nps"]["score"], 0.0);
    let sports = &report["questions"][3];
    assert_eq!(sports["answered"], 2, "{sports}");
    assert_eq!(
        sports["counts"],
        json!([{"value": "run", "count": 0}, {"value": "swim", "count": 1}, {"value": "ride", "count": 1}])
    );
    let (status, page) = suite
        .admin_call(
            Method::GET,
            &format!("/v1/surveys/{id}/answers?limit=10"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["verified"], false);
    assert_eq!(items[1]["verified"], true);
    assert_eq!(items[1]["customer_id"], customer_id.as_str());
    assert_eq!(items[1]["hidden"], json!({"campaign": "spring"}));

    // The public route is rate-limited per client address.
    let mut limited = None;
    for n in 0..25 {
        let (status, body) = public(
            &suite,
            Method::POST,
            &open_url,
            Some(&json!({"answers": {}})),
            "192.0.2.99",
        )
        .await;
        if status == 429 {
            limited = Some((n, body));
            break;
        }
        assert_eq!(status, 422, "{body}");
    }
    let (n, body) = limited.expect("the 21st answer from one address is refused");
    assert_eq!(n, 20);
    assert_eq!(body["code"], "rate_limited");
    // Another address is not held back.
    let (status, _) = public(
        &suite,
        Method::POST,
        &open_url,
        Some(&json!({"answers": {}})),
        "192.0.2.98",
    )
    .await;
    assert_eq!(status, 422);

    // Another tenant sees none of it.
    let globex = suite.new_tenant(&format!("globex{}", &run[..6])).await;
    let (status, problem) = suite
        .keyed_call(&globex, Method::GET, &format!("/v1/surveys/{id}"), None)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("survey_not_found"))
    );
    let (status, list) = suite
        .keyed_call(&globex, Method::GET, "/v1/surveys", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["items"], json!([]));
    let (status, _) = suite
        .keyed_call(
            &globex,
            Method::GET,
            &format!("/v1/surveys/{id}/answers"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Closed, the survey takes no answer; a forged token is refused.
    let (status, closed) = suite
        .admin_call(
            Method::PATCH,
            &format!("/v1/surveys/{id}"),
            Some(&json!({"status": "closed"})),
        )
        .await;
    assert_eq!((status, closed["status"].as_str()), (200, Some("closed")));
    let (status, problem) = public(
        &suite,
        Method::POST,
        &open_url,
        Some(&anonymous),
        "192.0.2.13",
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (410, Some("survey_closed"))
    );
    let forged = format!("{}x", open_url);
    let (status, problem) = public(&suite, Method::GET, &forged, None, "192.0.2.13").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("invalid_token"))
    );
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_mails_a_personal_survey_link_answered_once() {
    let suite = Suite::start().await;
    let run = unique_id();
    let campaign = suite.pool_of("campaign").await;
    let (status, survey) = suite
        .admin_call(
            Method::POST,
            "/v1/surveys",
            Some(&json!({"name": format!("NPS {run}"), "questions": [
                {"id": "nps", "kind": "nps", "label": "How likely are you to recommend us?", "required": true}]})),
        )
        .await;
    assert_eq!(status, 201, "{survey}");
    let survey_id = survey["id"].as_str().unwrap().to_owned();
    let (status, body) = suite
        .admin_call(
            Method::PUT,
            "/v1/channels/mail",
            Some(&json!({"settings": {"kind": "email", "from": "news@acme.test"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = suite
        .admin_call(
            Method::PUT,
            "/v1/templates/nps-ask",
            Some(&json!({"channel": "email", "subject": "How did we do?",
                         "text": "Tell us: {{ survey_url }}"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let journey = json!({
        "name": format!("Ask {run}"), "time_zone": "UTC",
        "trigger": {"event": {"name": "Order Delivered"}},
        "start": "ask",
        "nodes": {
            "ask": {"send": {"template": "nps-ask", "channel": "email", "survey": survey_id,
                             "next": "done"}},
            "done": "exit"
        }
    });
    let (status, created) = suite
        .admin_call(Method::POST, "/v1/journeys", Some(&journey))
        .await;
    assert_eq!(status, 201, "{created}");
    let journey_id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = suite
        .admin_call(
            Method::POST,
            &format!("/v1/journeys/{journey_id}/publish"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (user, email) = (format!("nps-{run}"), format!("nps-{run}@example.test"));
    let customer = suite.mailable_customer(&campaign, &user, &email).await;
    suite
        .ingest(&json!({"kind": "track", "name": "Order Delivered", "identity": {"user_id": user}}))
        .await;
    let mail = eventually("the survey mail", || async {
        crm_tests::mail_to(&email).into_iter().next()
    })
    .await;
    let flat = mail.replace("=\r\n", "").replace("=3D", "=");
    let start = flat.find("/s/").expect("the mail holds the survey link");
    let token: String = flat[start + 3..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let url = format!("{}/s/{token}", suite.gateway);
    let (status, shown) = public(&suite, Method::GET, &url, None, "192.0.2.20").await;
    assert_eq!(
        (status, shown["personal"].as_bool()),
        (200, Some(true)),
        "{shown}"
    );
    let answer = json!({"answers": {"nps": 9}});
    let (status, _) = public(&suite, Method::POST, &url, Some(&answer), "192.0.2.20").await;
    assert_eq!(status, 201);
    let (status, again) = public(&suite, Method::POST, &url, Some(&answer), "192.0.2.20").await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("already_answered"))
    );
    let (_, page) = suite
        .admin_call(
            Method::GET,
            &format!("/v1/surveys/{survey_id}/answers"),
            None,
        )
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["customer_id"], customer.to_string().as_str());
    assert_eq!(items[0]["verified"], true);
    let customer_id = customer.to_string();
    eventually("the answer on the customer's timeline", || async {
        (timeline_answers(&suite, &customer_id).await == 1).then_some(())
    })
    .await;
    suite.stop().await;
}
