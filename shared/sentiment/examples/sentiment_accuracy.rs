//! Accuracy and macro-F1 of crm-sentiment on a labelled data set: lines of
//! `id<TAB>mean rating<TAB>text`, the format of the human-rated ground truth that the
//! `vaderSentiment` 3.3.2 source package on PyPI ships (`additional_resources/hutto_ICWSM_2014`,
//! MIT licence: tweets, Amazon review, movie review and New York Times snippets, each rated by
//! about ten people from -4 to 4). `scripts/sentiment-eval` downloads it and runs this.
//!
//! Gold labels: positive above `band`, negative below `-band`, neutral between (default band
//! 0.5 on the -4..4 scale). Predictions: the crate's label. Three-class accuracy and macro-F1,
//! and the two-class accuracy over the texts whose gold label is not neutral (as the VADER
//! paper reports it).
//!
//! Run: `cargo run --release -p crm-sentiment --example sentiment_accuracy -- <file> [language] [band]`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
// A confusion matrix reads best indexed by class.
#![allow(clippy::needless_range_loop)]

use crm_sentiment::Label;

fn class(label: Label) -> usize {
    match label {
        Label::Positive => 0,
        Label::Neutral => 1,
        Label::Negative => 2,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: sentiment_accuracy <file> [language] [band]");
    let language = args.next().filter(|l| l != "-");
    let band: f64 = args.next().and_then(|b| b.parse().ok()).unwrap_or(0.5);
    let raw = std::fs::read(&path).expect("the data set is readable");
    let text = String::from_utf8_lossy(&raw);
    // confusion[gold][predicted]
    let mut confusion = [[0usize; 3]; 3];
    let mut skipped = 0usize;
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(_id), Some(rating), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
            skipped += 1;
            continue;
        };
        let Ok(rating) = rating.trim().parse::<f64>() else {
            skipped += 1;
            continue;
        };
        let gold = if rating > band {
            0
        } else if rating < -band {
            2
        } else {
            1
        };
        let predicted = class(crm_sentiment::score(t, language.as_deref()).label);
        confusion[gold][predicted] += 1;
    }
    let n: usize = confusion.iter().flatten().sum();
    assert!(n > 0, "no labelled lines in {path}");
    let correct: usize = (0..3).map(|i| confusion[i][i]).sum();
    let mut f1s = Vec::new();
    for c in 0..3 {
        let tp = confusion[c][c] as f64;
        let predicted: usize = (0..3).map(|g| confusion[g][c]).sum();
        let actual: usize = confusion[c].iter().sum();
        let precision = if predicted == 0 {
            0.0
        } else {
            tp / predicted as f64
        };
        let recall = if actual == 0 { 0.0 } else { tp / actual as f64 };
        f1s.push(if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        });
    }
    let macro_f1 = f1s.iter().sum::<f64>() / 3.0;
    // Two classes: gold not neutral; a neutral prediction counts as wrong.
    let polar = confusion[0].iter().sum::<usize>() + confusion[2].iter().sum::<usize>();
    let polar_right = confusion[0][0] + confusion[2][2];
    println!("data set: {path} ({n} texts, {skipped} lines skipped, neutral band ±{band})");
    println!(
        "gold: {} positive, {} neutral, {} negative",
        confusion[0].iter().sum::<usize>(),
        confusion[1].iter().sum::<usize>(),
        confusion[2].iter().sum::<usize>()
    );
    println!(
        "three classes: accuracy {:.3}, macro-F1 {:.3} (F1 positive {:.3}, neutral {:.3}, negative {:.3})",
        correct as f64 / n as f64,
        macro_f1,
        f1s[0],
        f1s[1],
        f1s[2]
    );
    println!(
        "two classes (gold not neutral): accuracy {:.3} over {polar} texts",
        polar_right as f64 / polar.max(1) as f64
    );
    println!(
        "confusion (rows gold, columns predicted; positive, neutral, negative): {confusion:?}"
    );
}
