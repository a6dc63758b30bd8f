//! Sentiment scoring throughput on one core, beside a reference measured in the same run: a
//! JSON encode and decode of the same texts (serde_json), so the ratio does not depend on the
//! machine. Texts are mentions of the kind connectors deliver, Spanish and English, with and
//! without a language hint (detection runs when there is none).
//!
//! Run: `cargo run --release -p crm-sentiment --example sentiment_bench [texts, default 200000]`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

const SAMPLES: [&str; 12] = [
    "@Acme me encantan las botas nuevas, muy cómodas 😍",
    "@Acme el pedido llegó tarde y la caja rota, fatal",
    "No estoy nada contento con el servicio de atención",
    "Las botas son bonitas pero el envío fue lentísimo",
    "@Acme gracias por la ayuda, todo perfecto",
    "¿Alguien sabe si Acme tiene tienda en Valencia?",
    "@Acme love the new boots, super comfy!",
    "Worst customer service ever, still waiting for a refund 😡",
    "The boots are nice but shipping took forever",
    "Not bad at all, would buy again #acme",
    "@Acme is the store in Madrid open on Sundays?",
    "Really really disappointed with the quality this time",
];

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let texts: Vec<(String, Option<&str>)> = (0..n)
        .map(|i| {
            let base = SAMPLES[i % SAMPLES.len()];
            // A varying tail so no two texts are the same string.
            let text = format!("{base} {}", i % 997);
            let hint = match i % 3 {
                0 => None,
                _ if i % SAMPLES.len() < 6 => Some("es"),
                _ => Some("en"),
            };
            (text, hint)
        })
        .collect();

    // Warm up both.
    for (t, h) in texts.iter().take(1000) {
        black_box(crm_sentiment::score(t, *h));
    }

    let started = Instant::now();
    let mut positive = 0usize;
    for (t, h) in &texts {
        let s = crm_sentiment::score(black_box(t), *h);
        if s.score > 0.0 {
            positive += 1;
        }
    }
    let scoring = started.elapsed();

    let started = Instant::now();
    let mut bytes = 0usize;
    for (t, _) in &texts {
        let encoded = serde_json::to_vec(&serde_json::json!({"text": black_box(t)})).unwrap();
        let decoded: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
        bytes += decoded["text"].as_str().map_or(0, str::len);
    }
    let reference = started.elapsed();

    let per_sec = n as f64 / scoring.as_secs_f64();
    let ref_per_sec = n as f64 / reference.as_secs_f64();
    println!("texts: {n} ({positive} scored positive; {bytes} bytes in the reference)");
    println!(
        "sentiment: {:.0} texts/s on one core ({:.2} µs each)",
        per_sec,
        scoring.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "reference, JSON encode+decode of the same texts: {:.0} texts/s",
        ref_per_sec
    );
    println!(
        "ratio: scoring takes {:.1}x the reference's time per text",
        scoring.as_secs_f64() / reference.as_secs_f64()
    );
}
