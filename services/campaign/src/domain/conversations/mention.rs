//! The normalised mention (docs/conversations.md, "Mention format"): what any network's
//! payload becomes before it is matched against the tenant's tracked terms and published as a
//! `Social Mention` event with the author's handle as identity.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How the mention reached the brand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MentionKind {
    /// A public post that names the brand's account.
    Mention,
    /// A public post found by a tracked keyword or hashtag.
    Post,
    /// A private message to the brand's account.
    DirectMessage,
}

/// A mention, whatever the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mention {
    /// `mastodon` or `x`.
    pub network: String,
    /// The post's or message's id on the network (with the connector, it keys the event).
    pub external_id: String,
    /// The author's handle, without a leading `@` (`ana@mastodon.social`, `ana_x`).
    pub handle: String,
    /// The author's display name, if any.
    pub author_name: Option<String>,
    /// The author's account id on the network, where its API addresses people by id (X's
    /// direct messages are answered to the sender's user id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<String>,
    /// The text, as plain text.
    pub text: String,
    /// Its address, if public.
    pub url: Option<String>,
    /// The language the network reports (ISO 639-1), if any.
    pub language: Option<String>,
    /// When it was posted.
    pub posted_at: DateTime<Utc>,
    /// How it reached the brand.
    pub kind: MentionKind,
    /// Hashtags, lower case, without `#`.
    pub hashtags: Vec<String>,
    /// Handles it names, lower case, without `@`.
    pub mentions: Vec<String>,
    /// An email's subject and the message ids it replies to (email only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailThread>,
}

/// What an email adds to a mention: its subject, and the ids of the messages it replies to
/// (`In-Reply-To` first, then `References`), without angle brackets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmailThread {
    /// The subject.
    pub subject: Option<String>,
    /// The ids it replies to.
    pub replies_to: Vec<String>,
}

/// The terms a tenant listens for on a connector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Tracked {
    /// Words or phrases, matched case-insensitively on word boundaries.
    pub keywords: Vec<String>,
    /// Hashtags, without `#`, case-insensitive.
    pub hashtags: Vec<String>,
    /// Handles, without `@`, case-insensitive (the brand's own accounts, competitors).
    pub handles: Vec<String>,
}

/// Most terms of each kind.
pub const MAX_TERMS: usize = 100;

impl Tracked {
    /// The first problem, as (JSON pointer below the terms, what to fix).
    pub fn check(&self) -> Result<(), (String, String)> {
        for (name, terms) in [
            ("keywords", &self.keywords),
            ("hashtags", &self.hashtags),
            ("handles", &self.handles),
        ] {
            if terms.len() > MAX_TERMS {
                return Err((format!("/{name}"), format!("at most {MAX_TERMS} terms")));
            }
            for (i, t) in terms.iter().enumerate() {
                let t = t.trim().trim_start_matches(['#', '@']);
                if t.is_empty() || t.chars().count() > 100 || t.contains('\0') {
                    return Err((
                        format!("/{name}/{i}"),
                        "1 to 100 characters, not blank".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The terms `m` matches, as `keyword:<k>`, `#<tag>` and `@<handle>`; a direct message
    /// or a mention of a tracked handle always matches.
    pub fn matches(&self, m: &Mention) -> Vec<String> {
        let mut hits = Vec::new();
        let text = m.text.to_lowercase();
        for k in &self.keywords {
            let k = k.trim().to_lowercase();
            if contains_word(&text, &k) {
                hits.push(format!("keyword:{k}"));
            }
        }
        for h in &self.hashtags {
            let h = h.trim().trim_start_matches('#').to_lowercase();
            if m.hashtags.contains(&h) || contains_word(&text, &format!("#{h}")) {
                hits.push(format!("#{h}"));
            }
        }
        for a in &self.handles {
            let a = a.trim().trim_start_matches('@').to_lowercase();
            if m.mentions.contains(&a) {
                hits.push(format!("@{a}"));
            }
        }
        if hits.is_empty() && m.kind == MentionKind::DirectMessage {
            hits.push("direct_message".into());
        }
        hits
    }
}

/// Whether `needle` occurs in `text` with no letter, digit or `_` right before or after it.
fn contains_word(text: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        !word(before) && !word(after)
    })
}

/// Plain text from a post's HTML (Mastodon sends `content` as HTML): tags dropped, line and
/// paragraph breaks kept as spaces, the common entities decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut tag: Option<String> = None;
    for c in html.chars() {
        match (&mut tag, c) {
            (None, '<') => tag = Some(String::new()),
            (Some(t), '>') => {
                let name: String = t
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase();
                if matches!(name.as_str(), "p" | "br" | "div" | "li") {
                    out.push(' ');
                }
                tag = None;
            }
            (Some(t), c) => t.push(c),
            (None, c) => out.push(c),
        }
    }
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mention(text: &str, kind: MentionKind) -> Mention {
        Mention {
            network: "x".into(),
            external_id: "1".into(),
            handle: "ana".into(),
            author_name: None,
            author_id: None,
            text: text.into(),
            url: None,
            language: None,
            posted_at: Utc::now(),
            kind,
            hashtags: vec!["botas".into()],
            mentions: vec!["acme".into()],
            email: None,
        }
    }

    #[test]
    fn terms_match_on_word_boundaries_and_case() {
        let t = Tracked {
            keywords: vec!["Acme Boots".into(), "boot".into()],
            hashtags: vec!["#Botas".into(), "other".into()],
            handles: vec!["@ACME".into()],
        };
        let m = mention("Love my acme boots!", MentionKind::Post);
        assert_eq!(t.matches(&m), ["keyword:acme boots", "#botas", "@acme"]);
        // "boot" is not a word of "boots".
        assert!(!t.matches(&m).contains(&"keyword:boot".to_owned()));
        let quiet = Tracked::default();
        assert!(quiet.matches(&mention("hi", MentionKind::Post)).is_empty());
        assert_eq!(
            quiet.matches(&mention("hi", MentionKind::DirectMessage)),
            ["direct_message"]
        );
    }

    #[test]
    fn html_becomes_plain_text() {
        assert_eq!(
            html_to_text("<p>Hola <span class=\"h-card\"><a href=\"x\">@<span>acme</span></a></span> &amp; amigos</p><p>¡genial!</p>"),
            "Hola @acme & amigos ¡genial!"
        );
    }

    #[test]
    fn bad_terms_are_named() {
        let t = Tracked {
            hashtags: vec!["ok".into(), "#".into()],
            ..Tracked::default()
        };
        assert_eq!(t.check().unwrap_err().0, "/hashtags/1");
    }

    proptest! {
        /// A keyword always matches a text that holds it between spaces, never one where it is
        /// glued to letters.
        #[test]
        fn keywords_match_whole_words(word in "[a-z]{1,12}", before in "[a-z ]{0,20}", after in "[a-z ]{0,20}") {
            let t = Tracked { keywords: vec![word.clone()], ..Tracked::default() };
            let hit = format!("keyword:{word}");
            let spaced = mention(&format!("{before} {word} {after}"), MentionKind::Post);
            prop_assert!(t.matches(&spaced).contains(&hit));
            let glued = mention(&format!("x{word}x"), MentionKind::Post);
            prop_assert!(!t.matches(&glued).contains(&hit));
        }
    }
}
