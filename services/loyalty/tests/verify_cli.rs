//! `crm-loyalty verify` against a real database: exit 0 on a consistent ledger, 1 with the
//! violation printed once a balance disagrees with its entries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use chrono::Utc;
use crm_envelope::TenantId;
use uuid::Uuid;

#[tokio::test]
async fn verify_exits_non_zero_on_a_violation() {
    let server = std::env::var("CRM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let url = format!("{server}/crm_test_{}_verify", Uuid::new_v4().simple());
    crm_service::db::ensure_database(&url).await.unwrap();
    let pool = crm_service::db::connect(&url, 2).await.unwrap();
    crm_service::db::migrate(&pool, &crm_loyalty::MIGRATOR)
        .await
        .unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let p = crm_loyalty::domain::programme::Programme::default();
    let customer = Uuid::now_v7();
    let mut tx = pool.begin().await.unwrap();
    crm_loyalty::store::rewards::adjust(
        &mut tx,
        &tenant,
        &p,
        customer,
        crm_loyalty::domain::ledger::Points::adjustment(40).unwrap(),
        "welcome",
        "k1",
        Utc::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_crm-loyalty"))
            .arg("verify")
            .env("CRM_LOYALTY__DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let ok = run();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("every invariant holds"));

    // A balance changed behind the ledger's back, and an entry that cannot be changed.
    sqlx::query("UPDATE accounts SET balance = balance + 5 WHERE kind = 'customer'")
        .execute(&pool)
        .await
        .unwrap();
    let refused = sqlx::query("UPDATE entries SET amount = amount + 5")
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "entries must be immutable");
    let bad = run();
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(
        out.contains("balance_mismatch") && out.contains("lots_mismatch"),
        "{out}"
    );
    pool.close().await;
}
