//! Batch import through the gateway, against real PostgreSQL, Redis and the broker: the Febrl 1
//! reference file (1,000 person records, 500 true duplicate pairs) imported with its record id
//! as an opaque anonymous_id; the import ends by cleaning the base with the probabilistic
//! matcher, which must merge exactly the true pairs. Importing the same file again creates
//! nothing new. A file with bad rows gets a per-row report.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use crm_tests::{eventually, eventually_within, Suite};
use serde_json::{json, Value};

fn febrl1() -> String {
    let path = std::env::var_os("CRM_REFERENCE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
        .join("febrl1.csv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reference data {}: {e}", path.display()));
    // The record id becomes an opaque identifier: it links nothing (every row has its own).
    text.replacen("rec_id,", "anonymous_id,", 1)
}

async fn import(suite: &Suite, body: String, format: &str) -> Value {
    let started: Value = suite
        .http
        .post(format!("{}/v1/imports?format={format}", suite.gateway))
        .bearer_auth(&suite.key)
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The file is stored before the answer; the import runs as a job.
    assert_eq!(started["status"], "queued", "{started}");
    assert_eq!(
        started["url"]
            .as_str()
            .map(|u| u.starts_with("/v1/imports/")),
        Some(true),
        "{started}"
    );
    let id = started["id"].as_str().unwrap().to_owned();
    // The import is a long job: on a loaded machine it may outlast eventually's minute.
    eventually_within("import done", Duration::from_secs(240), || async {
        let job: Value = suite
            .get(Some(&suite.key), &format!("/v1/imports/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_ne!(job["status"], "failed", "{job}");
        (job["status"] == "done").then_some(job)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_febrl_merges_the_true_pairs_and_a_second_import_changes_nothing() {
    let suite = Suite::start().await;
    let pool = suite.identity_pool().await;

    let job = import(&suite, febrl1(), "csv").await;
    assert_eq!(job["total_rows"], 1000);
    assert_eq!(job["imported"], 1000);
    assert_eq!(job["failed"], 0);
    assert_eq!(job["cleanup"]["customers"], 1000);
    assert_eq!(job["cleanup"]["merged"], 500, "{job}");
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM customers WHERE tenant_id = 'acme' AND status = 'active'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(active, 500);
    // Every probabilistic merge keeps the weight of each field.
    let evidence: Value = sqlx::query_scalar(
        "SELECT evidence FROM merges WHERE tenant_id = 'acme' AND kind = 'probabilistic' LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(evidence["fields"].as_array().unwrap().len(), 10);
    assert!(evidence["probability"].as_f64().unwrap() >= 0.99);

    // Online: the clean-up fitted the tenant's model; a new customer typed with small
    // differences from an imported one merges into it as it arrives.
    let imported = eventually("imported record", || {
        suite.customer_by("anonymous_id", "rc1dc2796a95f")
    })
    .await;
    suite
        .ingest(
            &json!({"id": "online-1", "kind": "identify", "identity": {"user_id": "isabella-i"},
            "traits": {"first_name": "Isabella", "last_name": "Imgraben", "street_number": "16",
                       "address": "Wade St", "city": "Salisbury East", "postcode": "2161",
                       "state": "QLD", "birthday": "1986-08-10", "national_id": "7528902"}}),
        )
        .await;
    let merged = suite.wait_for_customer("isabella-i", |_| true).await;
    assert_eq!(merged["id"], imported["id"]);
    let online: Value = sqlx::query_scalar(
        "SELECT evidence FROM merges WHERE tenant_id = 'acme' AND survivor_id = $1::uuid
         AND evidence->>'rule' = 'fellegi_sunter_online'",
    )
    .bind(imported["id"].as_str().unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(online["probability"].as_f64().unwrap() >= 0.99, "{online}");

    // The same file again: nothing new.
    let again = import(&suite, febrl1(), "csv").await;
    assert_eq!(again["imported"], 0);
    assert_eq!(again["unchanged"], 1000);
    assert_eq!(again["cleanup"]["merged"], 0);

    // A clean-up on demand is a job: 202 with its URL, followed to its result.
    let started = suite.post(&suite.key, "/v1/cleanup", None).await;
    assert_eq!(started.status().as_u16(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/v1/jobs/identity-"), "{location}");
    let job = eventually_within("the clean-up job", Duration::from_secs(240), || async {
        let job: Value = suite
            .get(Some(&suite.key), &location)
            .await
            .json()
            .await
            .unwrap();
        assert_ne!(job["status"], "failed", "{job}");
        (job["status"] == "succeeded").then_some(job)
    })
    .await;
    assert_eq!(job["kind"], "cleanup");
    assert_eq!(job["result"]["customers"], 500, "{job}");
    assert_eq!(job["result"]["merged"], 0, "{job}");
    // The uploaded files are gone once their imports ended.
    let chunks: i64 = sqlx::query_scalar("SELECT count(*) FROM import_chunks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(chunks, 0);
    let customers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM customers WHERE tenant_id = 'acme'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(customers, 1001);
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_reported_and_the_rest_imported() {
    let suite = Suite::start().await;
    let ndjson = [
        r#"{"user_id": "n1", "first_name": "Ana", "plan": "pro"}"#,
        r#"{"first_name": "Nobody"}"#,
        r#"not json"#,
        r#"{"email": "n4@example.com", "occurred_at": "soon"}"#,
        r#"{"email": "n5@example.com", "traits": {"age": 31}}"#,
    ]
    .join("\n");
    let job = import(&suite, ndjson, "ndjson").await;
    assert_eq!(job["total_rows"], 5);
    assert_eq!(job["imported"], 2);
    assert_eq!(job["failed"], 3);
    let errors: Vec<(u64, String)> = job["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            (2, "no_identifier".into()),
            (3, "invalid_json".into()),
            (4, "invalid_time".into())
        ]
    );
    let n5 = eventually("n5", || suite.customer_by("email", "n5@example.com")).await;
    assert_eq!(n5["traits"]["age"], 31);
    let bad = suite
        .http
        .post(format!("{}/v1/imports?format=xml", suite.gateway))
        .bearer_auth(&suite.key)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["code"], "invalid_format");
    suite.stop().await;
}

/// An import whose worker died mid-file: its job's lease runs out, a worker takes it over and
/// goes on from the last checkpoint (rows before it are not read again), and the file is
/// deleted at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_whose_worker_died_is_taken_over_from_its_checkpoint() {
    let suite = Suite::start().await;
    let pool = suite.identity_pool().await;
    let mut csv = String::from("user_id,email,first_name\n");
    for i in 1..=10 {
        csv.push_str(&format!("resume-{i},resume{i}@example.com,R{i}\n"));
    }
    // What a worker that died after checkpointing row 5 leaves: the job row with its counts,
    // the stored file, and a running job whose lease has run out.
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO import_jobs (tenant_id, id, format, status, total_rows, processed, imported)
         VALUES ('acme', $1, 'csv', 'running', 10, 5, 5)",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    let (first, second) = csv.as_bytes().split_at(40);
    for (seq, part) in [first, second].iter().enumerate() {
        sqlx::query("INSERT INTO import_chunks (tenant_id, import_id, seq, data) VALUES ('acme', $1, $2, $3)")
            .bind(id)
            .bind(seq as i32)
            .bind(*part)
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO jobs (tenant_id, kind, params, status, attempts, lease_owner, lease_until, started_at)
         VALUES ('acme', 'import', $1, 'running', 1, 'dead-replica', now() - interval '1 second', now())",
    )
    .bind(sqlx::types::Json(json!({"import_id": id})))
    .execute(&pool)
    .await
    .unwrap();

    let job = eventually("the import taken over", || async {
        let job: Value = suite
            .get(Some(&suite.key), &format!("/v1/imports/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_ne!(job["status"], "failed", "{job}");
        (job["status"] == "done").then_some(job)
    })
    .await;
    assert_eq!(job["imported"], 10, "{job}");
    assert_eq!(job["processed"], 10);
    // Rows 6 to 10 were imported by the new worker; rows 1 to 5 were not read again.
    assert!(suite.customer_by_user("resume-6").await.is_some());
    assert!(suite.customer_by_user("resume-10").await.is_some());
    assert!(suite.customer_by_user("resume-5").await.is_none());
    let (attempts, owner): (i32, Option<String>) = sqlx::query_as(
        "SELECT attempts, lease_owner FROM jobs WHERE kind = 'import' AND params->>'import_id' = $1",
    )
    .bind(id.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((attempts, owner), (2, None));
    let chunks: i64 = sqlx::query_scalar("SELECT count(*) FROM import_chunks WHERE import_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(chunks, 0);
    suite.stop().await;
}
