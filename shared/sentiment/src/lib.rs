//! Explainable sentiment of short texts (a social mention, a survey's free text) in Spanish
//! and English, in-process: no model, no network.
//!
//! - **Lexicons** are versioned data (`data/en.tsv`, `data/es.tsv`, version in their first
//!   line, licence in their header), words and phrases with a valence from -4 to 4, matched
//!   without case or accents. Every score names the lexicon version it was made with.
//! - **Rules**: a negator (`not`, `never`, `no`, `nunca`, `sin`, …) flips and damps the next
//!   three words; an intensifier (`very`, `muy`, …) or a diminisher (`slightly`, `poco`, …)
//!   scales the next sentiment word; after a contrast (`but`, `pero`, `sin embargo`) the
//!   clause after counts more than the one before; exclamation marks add emphasis; emoji carry
//!   valence in either language.
//! - **Language**: the network's language when it names one of the two, else stopwords and
//!   Spanish punctuation decide; a text with neither is scored with both lexicons and the one
//!   that recognises more words wins.
//!
//! The sum of the contributions is normalised to -1..1 (`s / sqrt(s² + 15)`, as VADER does);
//! 0.05 or more is positive, -0.05 or less negative. [`Sentiment::because`] lists each
//! contribution.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// A language scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English.
    En,
    /// Spanish.
    Es,
}

impl Language {
    /// The ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }

    /// The language of an ISO 639-1 code (`es`, `es-MX`, `en_GB`), if scored.
    pub fn parse(code: &str) -> Option<Self> {
        match code.get(..2).map(str::to_ascii_lowercase).as_deref() {
            Some("en") => Some(Self::En),
            Some("es") => Some(Self::Es),
            _ => None,
        }
    }
}

/// The label of a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// 0.05 or more.
    Positive,
    /// Between.
    Neutral,
    /// -0.05 or less.
    Negative,
}

/// One word's (or phrase's, or emoji's) part of a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The term as the lexicon has it.
    pub term: String,
    /// Its valence in the lexicon.
    pub valence: f64,
    /// Whether a negator flipped it.
    pub negated: bool,
    /// The intensifier's or diminisher's factor (1 when none).
    pub intensity: f64,
    /// The clause's weight (after a contrast 1.5, before it 0.5, else 1).
    pub weight: f64,
    /// What it adds to the sum.
    pub contribution: f64,
}

/// A text's sentiment, explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sentiment {
    /// From -1 (most negative) to 1.
    pub score: f64,
    /// Its label.
    pub label: Label,
    /// The language scored.
    pub language: Language,
    /// The lexicon's version (`es-1`).
    pub lexicon: String,
    /// Each contribution, in the text's order.
    pub because: Vec<Hit>,
}

/// A lexicon: its version and its entries (single words, and phrases of several).
#[derive(Debug)]
pub struct Lexicon {
    /// `en-2`, `es-1`.
    pub version: String,
    words: HashMap<String, f64>,
    phrases: Vec<(Vec<String>, f64)>,
}

impl Lexicon {
    /// Reads a lexicon file: a `# … version <v>.` line, comments, and `term<TAB>valence`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut version = None;
        let mut words = HashMap::new();
        let mut phrases = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if let Some(comment) = line.strip_prefix('#') {
                if let Some(at) = comment.find("version ") {
                    let v = comment[at + 8..].trim().trim_end_matches('.');
                    version.get_or_insert_with(|| v.to_owned());
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let (term, valence) = line
                .split_once('\t')
                .ok_or_else(|| format!("line {}: term<TAB>valence", n + 1))?;
            let valence: f64 = valence
                .trim()
                .parse()
                .map_err(|_| format!("line {}: the valence is a number", n + 1))?;
            if !(-4.0..=4.0).contains(&valence) {
                return Err(format!("line {}: the valence is from -4 to 4", n + 1));
            }
            let tokens = tokens(term);
            match tokens.len() {
                0 => return Err(format!("line {}: no term", n + 1)),
                1 => {
                    words.insert(tokens[0].clone(), valence);
                }
                _ => phrases.push((tokens, valence)),
            }
        }
        // Longest phrases first, so "me gustan" wins over "gustan".
        phrases.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Ok(Self {
            version: version.ok_or("no version line")?,
            words,
            phrases,
        })
    }

    /// How many entries it has.
    pub fn len(&self) -> usize {
        self.words.len() + self.phrases.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The shipped lexicon of `language`.
pub fn lexicon(language: Language) -> &'static Lexicon {
    static EN: OnceLock<Lexicon> = OnceLock::new();
    static ES: OnceLock<Lexicon> = OnceLock::new();
    let (cell, text) = match language {
        Language::En => (&EN, include_str!("../data/en.tsv")),
        Language::Es => (&ES, include_str!("../data/es.tsv")),
    };
    // The shipped files are checked by this crate's tests; an unreadable one scores nothing.
    cell.get_or_init(|| {
        Lexicon::parse(text).unwrap_or(Lexicon {
            version: "invalid".into(),
            words: HashMap::new(),
            phrases: Vec::new(),
        })
    })
}

fn fold(c: char) -> char {
    match c {
        'á' | 'à' | 'ä' | 'â' => 'a',
        'é' | 'è' | 'ë' | 'ê' => 'e',
        'í' | 'ì' | 'ï' | 'î' => 'i',
        'ó' | 'ò' | 'ö' | 'ô' => 'o',
        'ú' | 'ù' | 'ü' | 'û' => 'u',
        'ñ' => 'n',
        c => c,
    }
}

/// Whether `c` is an emoji the rules know (or any pictograph, kept as a token).
fn is_pictograph(c: char) -> bool {
    matches!(u32::from(c), 0x1F300..=0x1FAFF | 0x2600..=0x27BF)
}

/// Lower-case, accent-free words, `n't` split off as `not`, pictographs as tokens of their own,
/// and `.` where a sentence ends.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if word.is_empty() {
            return;
        }
        if let Some(stem) = word
            .strip_suffix("n't")
            .or_else(|| word.strip_suffix("n’t"))
        {
            if !stem.is_empty() {
                out.push(stem.to_owned());
            }
            out.push("not".to_owned());
        } else if word == "cannot" {
            out.push("can".to_owned());
            out.push("not".to_owned());
        } else {
            out.push(word.clone());
        }
        word.clear();
    };
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || ((c == '\'' || c == '’') && !word.is_empty()) {
            word.push(fold(c));
        } else {
            flush(&mut word, &mut out);
            if is_pictograph(c) {
                out.push(c.to_string());
            } else if matches!(c, '.' | '!' | '?' | ';') && out.last().is_some_and(|t| t != ".") {
                // A sentence's end: negation and intensity stop here.
                out.push(".".to_owned());
            }
        }
    }
    flush(&mut word, &mut out);
    out
}

const EMOJI: &[(&str, f64)] = &[
    ("😀", 2.0),
    ("😃", 2.0),
    ("😄", 2.0),
    ("😁", 2.0),
    ("😊", 2.0),
    ("🙂", 1.0),
    ("😍", 3.0),
    ("🥰", 3.0),
    ("😘", 2.0),
    ("❤", 3.0),
    ("💕", 3.0),
    ("👍", 2.0),
    ("👏", 2.0),
    ("🎉", 2.0),
    ("💯", 2.0),
    ("🙌", 2.0),
    ("😎", 1.5),
    ("🤩", 3.0),
    ("😞", -2.0),
    ("😠", -3.0),
    ("😡", -3.0),
    ("🤬", -3.5),
    ("😢", -2.0),
    ("😭", -2.5),
    ("👎", -2.0),
    ("💩", -2.5),
    ("😤", -2.0),
    ("🙄", -1.5),
    ("😒", -1.5),
    ("😩", -2.0),
    ("😫", -2.0),
];

struct Rules {
    negators: &'static [&'static str],
    intensifiers: &'static [(&'static str, f64)],
    contrasts: &'static [&'static [&'static str]],
}

fn rules(language: Language) -> Rules {
    match language {
        Language::En => Rules {
            negators: &[
                "not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "without",
            ],
            intensifiers: &[
                ("very", 1.5),
                ("really", 1.4),
                ("so", 1.3),
                ("extremely", 1.8),
                ("super", 1.5),
                ("totally", 1.4),
                ("absolutely", 1.6),
                ("too", 1.3),
                ("incredibly", 1.7),
                ("slightly", 0.6),
                ("somewhat", 0.7),
                ("kinda", 0.7),
                ("barely", 0.5),
            ],
            contrasts: &[&["but"], &["however"]],
        },
        Language::Es => Rules {
            negators: &[
                "no", "nunca", "jamas", "nada", "ni", "tampoco", "sin", "nadie",
            ],
            intensifiers: &[
                ("muy", 1.5),
                ("super", 1.5),
                ("tan", 1.4),
                ("demasiado", 1.4),
                ("bastante", 1.2),
                ("realmente", 1.4),
                ("totalmente", 1.4),
                ("extremadamente", 1.8),
                ("increiblemente", 1.7),
                ("poco", 0.5),
                ("algo", 0.7),
            ],
            contrasts: &[&["pero"], &["sin", "embargo"]],
        },
    }
}

const EN_STOPWORDS: &[&str] = &[
    "the", "and", "is", "are", "was", "to", "of", "in", "it", "that", "this", "for", "with", "my",
    "you", "have", "but", "on", "be", "at", "they", "i", "me", "so", "very", "from", "just",
    "your", "what", "all", "would", "there", "an", "or", "if", "will", "can", "do", "not", "love",
    "again", "never",
];
const ES_STOPWORDS: &[&str] = &[
    "de", "la", "que", "el", "en", "y", "los", "se", "del", "las", "un", "por", "con", "una",
    "para", "es", "al", "lo", "como", "mas", "pero", "sus", "le", "ya", "este", "porque", "esta",
    "muy", "sin", "sobre", "tambien", "me", "hasta", "hay", "donde", "todo", "nos", "mi", "mis",
    "nunca", "estoy", "son",
];

/// The language of `text` by its stopwords and Spanish punctuation, if either is ahead.
pub fn detect(text: &str) -> Option<Language> {
    let words = tokens(text);
    let count = |list: &[&str]| words.iter().filter(|w| list.contains(&w.as_str())).count();
    let spanish_marks = text
        .chars()
        .filter(|c| matches!(c, 'ñ' | 'Ñ' | '¿' | '¡' | 'á' | 'é' | 'í' | 'ó' | 'ú'))
        .count();
    let (en, es) = (count(EN_STOPWORDS), count(ES_STOPWORDS) + spanish_marks);
    match en.cmp(&es) {
        std::cmp::Ordering::Greater => Some(Language::En),
        std::cmp::Ordering::Less => Some(Language::Es),
        std::cmp::Ordering::Equal => None,
    }
}

/// Whether the tokens at `at` begin with `phrase`.
fn starts_with(words: &[String], at: usize, phrase: &[impl AsRef<str>]) -> bool {
    phrase.len() <= words.len() - at
        && phrase
            .iter()
            .zip(&words[at..])
            .all(|(p, w)| p.as_ref() == w.as_str())
}

/// The score of `text` in `language`.
pub fn score_in(text: &str, language: Language) -> Sentiment {
    let lex = lexicon(language);
    let r = rules(language);
    let words = tokens(text);
    // Where the last contrast starts, if any: before it weighs 0.5, after it 1.5.
    let mut contrast_at = None;
    for i in 0..words.len() {
        if r.contrasts.iter().any(|c| starts_with(&words, i, c)) {
            contrast_at = Some(i);
        }
    }
    let mut because = Vec::new();
    let (mut negated_until, mut intensity, mut intensity_until) = (0usize, 1.0f64, 0usize);
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        if w == "." {
            (negated_until, intensity_until) = (0, 0);
            i += 1;
            continue;
        }
        // A phrase of the lexicon ("nunca mas", "never again") is read as itself, before its
        // first word can count as a negator.
        let phrase = lex.phrases.iter().find(|(p, _)| starts_with(&words, i, p));
        // "sin embargo" is a contrast, not a negator.
        let is_contrast = r.contrasts.iter().any(|c| starts_with(&words, i, c));
        if phrase.is_none() && !is_contrast && r.negators.contains(&w) {
            negated_until = i + 4;
            i += 1;
            continue;
        }
        if let Some((_, f)) = r.intensifiers.iter().find(|(t, _)| *t == w) {
            intensity = *f;
            intensity_until = i + 3;
            i += 1;
            continue;
        }
        let (term, valence, len) = match phrase {
            Some((p, v)) => (p.join(" "), *v, p.len()),
            None => match lex.words.get(w) {
                Some(v) => (w.to_owned(), *v, 1),
                None => match EMOJI.iter().find(|(e, _)| w.starts_with(e)) {
                    Some((e, v)) => ((*e).to_owned(), *v, 1),
                    None => {
                        i += 1;
                        continue;
                    }
                },
            },
        };
        let negated = i < negated_until;
        let factor = if i < intensity_until { intensity } else { 1.0 };
        let weight = match contrast_at {
            Some(c) if i > c => 1.5,
            Some(_) => 0.5,
            None => 1.0,
        };
        let sign = if negated { -0.74 } else { 1.0 };
        because.push(Hit {
            term,
            valence,
            negated,
            intensity: factor,
            weight,
            contribution: valence * factor * sign * weight,
        });
        intensity_until = 0;
        i += len;
    }
    let mut sum: f64 = because.iter().map(|h| h.contribution).sum();
    let bangs = text.chars().filter(|c| *c == '!').count().min(3);
    if sum != 0.0 {
        sum += sum.signum() * 0.292 * bangs as f64;
    }
    let score = sum / (sum * sum + 15.0).sqrt();
    let label = if score >= 0.05 {
        Label::Positive
    } else if score <= -0.05 {
        Label::Negative
    } else {
        Label::Neutral
    };
    Sentiment {
        score,
        label,
        language,
        lexicon: lex.version.clone(),
        because,
    }
}

/// The score of `text`: in the language `hint` names (the network's) when it is one of the
/// two, else the detected one, else whichever lexicon recognises more of it (English on a tie).
pub fn score(text: &str, hint: Option<&str>) -> Sentiment {
    if let Some(language) = hint.and_then(Language::parse).or_else(|| detect(text)) {
        return score_in(text, language);
    }
    let (en, es) = (score_in(text, Language::En), score_in(text, Language::Es));
    if es.because.len() > en.because.len() {
        es
    } else {
        en
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_shipped_lexicons_read_with_their_versions() {
        assert_eq!(lexicon(Language::En).version, "en-2");
        assert_eq!(lexicon(Language::Es).version, "es-1");
        assert!(lexicon(Language::En).len() > 100);
        assert!(lexicon(Language::Es).len() > 100);
        assert!(Lexicon::parse("# v\nbad\t9\n").is_err());
        assert!(Lexicon::parse("good\t1\n").is_err());
    }

    #[test]
    fn spanish_and_english_basics() {
        let s = score("Me gustan las botas de @acme 😍", None);
        assert_eq!((s.language, s.label), (Language::Es, Label::Positive));
        assert_eq!(s.because[0].term, "me gustan");
        assert_eq!(s.lexicon, "es-1");
        let s = score("El envío llegó tarde y la caja rota. ¡Nunca más!", None);
        assert_eq!((s.language, s.label), (Language::Es, Label::Negative));
        let s = score("Terrible service from Acme, never again", Some("en"));
        assert_eq!(s.label, Label::Negative);
        let s = score("The order arrived on Tuesday", None);
        assert_eq!(s.label, Label::Neutral);
    }

    #[test]
    fn negation_intensity_and_contrast_change_the_score() {
        let good = score_in("the boots are good", Language::En).score;
        let very = score_in("the boots are very good", Language::En).score;
        let not = score_in("the boots are not good", Language::En);
        assert!(very > good, "{very} > {good}");
        assert!(not.score < 0.0 && not.because[0].negated);
        let s = score_in("no es bueno", Language::Es);
        assert_eq!(s.label, Label::Negative);
        // A phrase that starts with a negator is read as itself.
        let s = score_in("nunca más", Language::Es);
        assert_eq!(
            (s.because[0].term.as_str(), s.because[0].negated),
            ("nunca mas", false)
        );
        let s = score_in("I don't like it", Language::En);
        assert!(s.score < 0.0, "{s:?}");
        // After "but" the second clause decides.
        let s = score_in(
            "the price is good but the service is terrible",
            Language::En,
        );
        assert_eq!(s.label, Label::Negative);
        assert_eq!((s.because[0].weight, s.because[1].weight), (0.5, 1.5));
        let s = score_in(
            "el precio es malo, sin embargo el servicio es excelente",
            Language::Es,
        );
        assert_eq!(s.label, Label::Positive, "{s:?}");
        assert!(
            !s.because.iter().any(|h| h.negated),
            "sin embargo is no negation"
        );
    }

    #[test]
    fn languages_are_told_apart() {
        assert_eq!(
            detect("¿Dónde está mi pedido? Llevo una semana esperando"),
            Some(Language::Es)
        );
        assert_eq!(
            detect("Where is my order? I have been waiting for a week"),
            Some(Language::En)
        );
        assert_eq!(detect("👍"), None);
        assert_eq!(Language::parse("es-MX"), Some(Language::Es));
        assert_eq!(Language::parse("fr"), None);
    }

    proptest! {
        /// Any text scores within -1..1, with a label that agrees with the score.
        #[test]
        fn scores_stay_in_range(text in "\\PC{0,200}") {
            let s = score(&text, None);
            prop_assert!((-1.0..=1.0).contains(&s.score));
            let expected = if s.score >= 0.05 { Label::Positive } else if s.score <= -0.05 { Label::Negative } else { Label::Neutral };
            prop_assert_eq!(s.label, expected);
        }

        /// Adding a positive word never lowers a score; adding a negative one never raises it.
        #[test]
        fn more_praise_never_lowers_a_score(text in "[a-z ]{0,60}") {
            let base = score_in(&text, Language::En).score;
            let praised = score_in(&format!("{text}. excellent"), Language::En).score;
            let panned = score_in(&format!("{text}. terrible"), Language::En).score;
            prop_assert!(praised >= base - 1e-12, "{praised} < {base}");
            prop_assert!(panned <= base + 1e-12, "{panned} > {base}");
        }
    }
}
