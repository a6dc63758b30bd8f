//! Benchmark: online probabilistic candidate lookup with 100,000 customers loaded
//! (`ONLINE_CUSTOMERS` to change), p50/p99 over 1,000 probes, beside a primary-key read of one
//! customer in the same database as the reference.
//!
//! A probe is what identity does for a customer whose person traits changed: its blocking keys,
//! the candidates sharing one (PostgreSQL), each compared and scored with the tenant's model.
//! The model is fitted by EM on Febrl 2. Customers are synthetic (seeded, reproducible).
//!
//! Run: `cargo run --release -p crm-identity --example online_lookup` (PostgreSQL at
//! 127.0.0.1:5432 or `CRM_BENCH_DATABASE_URL`; it creates and drops `crm_bench_online`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crm_envelope::TenantId;
use crm_identity::dedupe::read_records;
use crm_identity::domain::matching::{deduplicate, person, MatchOptions};
use crm_identity::resolve::online::best_candidate;
use crm_identity::store::match_keys::{keys_of, save_model};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use uuid::Uuid;

const GIVEN: &[&str] = &[
    "ana", "bruno", "carla", "diego", "elena", "filipe", "gina", "hugo", "ines", "joao", "karen",
    "luis", "maria", "nuno", "olga", "pedro", "quinn", "rita", "sara", "tiago", "ursula", "vasco",
    "wendy", "xavier", "yara", "zoe", "liam", "emma", "noah", "olivia", "jack", "mia",
];
const SURNAMES: &[&str] = &[
    "silva",
    "santos",
    "ferreira",
    "pereira",
    "oliveira",
    "costa",
    "rodrigues",
    "martins",
    "jesus",
    "sousa",
    "fernandes",
    "goncalves",
    "gomes",
    "lopes",
    "marques",
    "alves",
    "almeida",
    "ribeiro",
    "pinto",
    "carvalho",
    "teixeira",
    "moreira",
    "correia",
    "mendes",
    "nunes",
    "soares",
    "vieira",
    "monteiro",
    "cardoso",
    "rocha",
    "smith",
    "jones",
    "brown",
    "taylor",
    "wilson",
];
const STREETS: &[&str] = &[
    "main street",
    "high street",
    "park road",
    "church lane",
    "station road",
    "mill lane",
    "king street",
    "queen avenue",
    "river drive",
    "hill crescent",
    "oak place",
    "elm court",
];
const SUBURBS: &[&str] = &[
    "porto", "lisboa", "braga", "coimbra", "faro", "aveiro", "evora", "viseu", "leiria", "setubal",
];

fn customer(rng: &mut StdRng) -> Map<String, Value> {
    let pick = |rng: &mut StdRng, list: &[&str]| list[rng.random_range(0..list.len())].to_owned();
    json!({
        "first_name": pick(rng, GIVEN),
        "last_name": format!("{}{}", pick(rng, SURNAMES), if rng.random_bool(0.5) { "" } else { "-" }.to_owned() + &pick(rng, SURNAMES)),
        "street_number": rng.random_range(1..400).to_string(),
        "address": pick(rng, STREETS),
        "city": pick(rng, SUBURBS),
        "postcode": rng.random_range(1000..9999).to_string(),
        "state": pick(rng, &["n", "s", "e", "w", "c"]),
        "birthday": format!("{}{:02}{:02}", rng.random_range(1930..2008), rng.random_range(1..13), rng.random_range(1..29)),
        "national_id": rng.random_range(1_000_000..9_999_999).to_string(),
    })
    .as_object()
    .cloned()
    .unwrap()
}

/// One typing error in one field.
fn corrupt(rng: &mut StdRng, traits: &Map<String, Value>) -> Map<String, Value> {
    let mut out = traits.clone();
    let keys: Vec<String> = out.keys().cloned().collect();
    let key = &keys[rng.random_range(0..keys.len())];
    let mut chars: Vec<char> = out[key].as_str().unwrap().chars().collect();
    let i = rng.random_range(0..chars.len());
    chars[i] = if chars[i] == 'x' { 'y' } else { 'x' };
    out.insert(key.clone(), Value::String(chars.into_iter().collect()));
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
    println!(
        "{name:<44} n={:<5} p50={:>7.3} ms  p99={:>7.3} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    (p50, p99)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("ONLINE_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let server = std::env::var("CRM_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let url = format!("{server}/crm_bench_online");
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::query("DROP DATABASE IF EXISTS crm_bench_online")
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE crm_bench_online")
        .execute(&admin)
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    crm_identity::MIGRATOR.run(&pool).await.unwrap();
    let tenant = TenantId::parse("bench").unwrap();
    let schema = person::schema();

    // The tenant's model: EM on Febrl 2.
    let data = std::env::var_os("CRM_REFERENCE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let febrl2 = read_records(File::open(data.join("febrl2.csv")).unwrap(), &[]).unwrap();
    let fitted = deduplicate(&schema, &febrl2.records, &MatchOptions::default()).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    save_model(
        &mut conn,
        &tenant,
        &fitted.model,
        fitted.stats.candidate_pairs,
    )
    .await
    .unwrap();

    // Load the customers and their blocking keys.
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let mut sample = Vec::new();
    for chunk in 0..n.div_ceil(5_000) {
        let size = 5_000.min(n - chunk * 5_000);
        let (mut ids, mut traits, mut key_ids, mut keys) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..size {
            let id = Uuid::now_v7();
            let t = customer(&mut rng);
            let record = crm_identity::domain::matching::person::person_of(&t).unwrap();
            for k in keys_of(&schema, &record) {
                key_ids.push(id);
                keys.push(k);
            }
            if sample.len() < 1_000 && rng.random_bool(0.02) {
                sample.push((id, t.clone()));
            }
            ids.push(id);
            traits.push(Value::Object(t));
        }
        sqlx::query(
            "INSERT INTO customers (tenant_id, id, traits, first_seen_at, last_seen_at)
             SELECT 'bench', id, t, now(), now() FROM unnest($1::uuid[], $2::jsonb[]) AS x(id, t)",
        )
        .bind(&ids)
        .bind(&traits)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO match_keys (tenant_id, key, customer_id)
             SELECT 'bench', k, id FROM unnest($1::text[], $2::uuid[]) AS x(k, id) ON CONFLICT DO NOTHING",
        )
        .bind(&keys)
        .bind(&key_ids)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    println!(
        "loaded {n} customers with their blocking keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Reference: a primary-key read of one customer.
    let mut reference = Vec::new();
    for (id, _) in &sample {
        let t = Instant::now();
        let _: Value = sqlx::query_scalar(
            "SELECT traits FROM customers WHERE tenant_id = 'bench' AND id = $1",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        reference.push(t.elapsed());
    }

    // Probes: a customer typed again with one error must find the original.
    let mut samples = Vec::new();
    let (mut found, mut candidates_seen) = (0, 0usize);
    for (id, traits) in &sample {
        let probe = corrupt(&mut rng, traits);
        let record = crm_identity::domain::matching::person::person_of(&probe).unwrap();
        let t = Instant::now();
        let best = best_candidate(&mut conn, &tenant, &fitted.model, Uuid::nil(), &record)
            .await
            .unwrap();
        samples.push(t.elapsed());
        if let Some(b) = best {
            candidates_seen += 1;
            if b.customer == *id && b.probability >= 0.99 {
                found += 1;
            }
        }
    }
    let (ref50, ref99) = report("primary-key read of one customer (reference)", reference);
    let (p50, p99) = report(
        "online candidate lookup, compare and score",
        samples.clone(),
    );
    println!(
        "ratio to reference: p50 {:.1}x, p99 {:.1}x; original found at >= 0.99 for {found} of {} probes ({candidates_seen} had candidates)",
        p50.as_secs_f64() / ref50.as_secs_f64(),
        p99.as_secs_f64() / ref99.as_secs_f64(),
        samples.len()
    );
    drop(conn);
    pool.close().await;
    sqlx::query("DROP DATABASE IF EXISTS crm_bench_online")
        .execute(&admin)
        .await
        .unwrap();
}
