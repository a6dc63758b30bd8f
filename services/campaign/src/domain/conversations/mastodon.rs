//! Mastodon: a server's webhook (`status.created`, Administration > Webhooks), signed in
//! `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>`. The
//! `object` is a Status entity (docs.joinmastodon.org/entities/Status): `id`, `created_at`,
//! `content` (HTML), `url`, `language`, `account` (`acct`, `display_name`), `tags`
//! (`name`), `mentions` (`acct`), `visibility` (`direct` for a private mention).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::mention::{html_to_text, Mention, MentionKind};
use super::network::{verify_hex_sha256, ApiCall, Network, PayloadError, ReplyTo};

/// The Mastodon network.
pub struct Mastodon;

#[derive(Deserialize)]
struct Event {
    event: String,
    object: Option<Status>,
}

#[derive(Deserialize)]
struct Status {
    id: String,
    created_at: DateTime<Utc>,
    #[serde(default)]
    content: String,
    url: Option<String>,
    language: Option<String>,
    #[serde(default)]
    visibility: String,
    account: Account,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    mentions: Vec<Account>,
}

#[derive(Deserialize)]
struct Account {
    acct: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct Tag {
    name: String,
}

fn handle(acct: &str) -> String {
    acct.trim().trim_start_matches('@').to_lowercase()
}

impl Network for Mastodon {
    fn name(&self) -> &'static str {
        "mastodon"
    }

    /// `POST /api/v1/statuses` (docs.joinmastodon.org/methods/statuses): the reply names its
    /// author first, answers their status, and stays direct when theirs was.
    fn reply(&self, api_url: &str, to: &ReplyTo<'_>, text: &str) -> Result<ApiCall, String> {
        Ok(ApiCall {
            url: format!("{}/api/v1/statuses", api_url.trim_end_matches('/')),
            body: serde_json::json!({
                "status": format!("@{} {text}", to.handle),
                "in_reply_to_id": to.message_id,
                "visibility": if to.direct { "direct" } else { "public" },
            }),
        })
    }

    fn reply_id(&self, answer: &serde_json::Value) -> Option<String> {
        answer.get("id").and_then(|v| v.as_str()).map(str::to_owned)
    }

    fn signature_header(&self) -> &'static str {
        "x-hub-signature"
    }

    fn verify(&self, secret: &[u8], signature: &str, _url: &str, body: &[u8]) -> bool {
        verify_hex_sha256(secret, signature, body)
    }

    fn mentions(&self, body: &[u8], account: &str) -> Result<Vec<Mention>, PayloadError> {
        let e: Event = serde_json::from_slice(body)
            .map_err(|err| PayloadError(format!("not a Mastodon webhook event: {err}")))?;
        let Some(s) = e.object.filter(|_| e.event == "status.created") else {
            return Ok(Vec::new());
        };
        let account = handle(account);
        let author = handle(&s.account.acct);
        if !account.is_empty() && author == account {
            return Ok(Vec::new());
        }
        let mentions: Vec<String> = s.mentions.iter().map(|m| handle(&m.acct)).collect();
        let names_brand = |m: &String| *m == account || m.split('@').next() == Some(&account);
        let kind = match (s.visibility.as_str(), mentions.iter().any(names_brand)) {
            ("direct", true) => MentionKind::DirectMessage,
            (_, true) => MentionKind::Mention,
            _ => MentionKind::Post,
        };
        Ok(vec![Mention {
            network: "mastodon".into(),
            external_id: s.id,
            handle: author,
            author_name: s.account.display_name.filter(|n| !n.is_empty()),
            author_id: None,
            text: html_to_text(&s.content),
            url: s.url,
            language: s.language,
            posted_at: s.created_at,
            kind,
            hashtags: s.tags.iter().map(|t| t.name.to_lowercase()).collect(),
            mentions,
            email: None,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_answers_the_status_and_stays_direct() {
        let to = ReplyTo {
            author_id: None,
            handle: "ana@mastodon.social",
            message_id: "110",
            direct: true,
        };
        let call = Mastodon
            .reply("https://social.acme.test/", &to, "Thanks!")
            .unwrap();
        assert_eq!(call.url, "https://social.acme.test/api/v1/statuses");
        assert_eq!(
            call.body,
            serde_json::json!({"status": "@ana@mastodon.social Thanks!",
                               "in_reply_to_id": "110", "visibility": "direct"})
        );
        assert_eq!(
            Mastodon
                .reply_id(&serde_json::json!({"id": "111"}))
                .as_deref(),
            Some("111")
        );
    }

    const EVENT: &str = r#"{"event":"status.created","created_at":"2026-12-01T10:00:01.000Z",
      "object":{"id":"113501","created_at":"2026-12-01T10:00:00.000Z","visibility":"public",
      "language":"es","url":"https://mastodon.social/@ana/113501",
      "content":"<p>Me encantan las botas de <span class=\"h-card\"><a href=\"https://mastodon.social/@acme\" class=\"u-url mention\">@<span>acme</span></a></span> <a href=\"https://mastodon.social/tags/botas\" class=\"mention hashtag\">#<span>botas</span></a></p>",
      "account":{"id":"1","username":"ana","acct":"ana@mastodon.social","display_name":"Ana"},
      "mentions":[{"id":"2","username":"acme","acct":"acme","url":"https://mastodon.social/@acme"}],
      "tags":[{"name":"Botas","url":"https://mastodon.social/tags/botas"}]}}"#;

    #[test]
    fn a_status_becomes_a_mention_of_the_brand() {
        let m = Mastodon.mentions(EVENT.as_bytes(), "@acme").unwrap();
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!(
            (m.handle.as_str(), m.kind),
            ("ana@mastodon.social", MentionKind::Mention)
        );
        assert_eq!(m.text, "Me encantan las botas de @acme #botas");
        assert_eq!(m.hashtags, ["botas"]);
        assert_eq!(m.language.as_deref(), Some("es"));
        // The brand's own posts and other events are not mentions.
        assert!(Mastodon
            .mentions(EVENT.as_bytes(), "ana@mastodon.social")
            .unwrap()
            .is_empty());
        let other = r#"{"event":"account.created","object":null}"#;
        assert!(Mastodon
            .mentions(other.as_bytes(), "acme")
            .unwrap()
            .is_empty());
        assert!(Mastodon.mentions(b"[1]", "acme").is_err());
    }

    #[test]
    fn only_the_secret_signs() {
        let sig = format!(
            "sha256={}",
            hex::encode(super::super::network::hmac_sha256(
                b"s3cret",
                EVENT.as_bytes()
            ))
        );
        assert!(Mastodon.verify(b"s3cret", &sig, "", EVENT.as_bytes()));
        assert!(!Mastodon.verify(b"other", &sig, "", EVENT.as_bytes()));
        assert!(!Mastodon.verify(b"s3cret", &sig, "", b"{}"));
        assert!(!Mastodon.verify(b"s3cret", "sha1=abc", "", EVENT.as_bytes()));
    }
}
