//! X (Twitter): the Account Activity webhook. Calls are signed in
//! `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256 of the body with the app's
//! consumer secret>`; the URL is challenged with `GET ?crc_token=…`, answered with
//! `{"response_token": "sha256=<base64 HMAC-SHA256 of the token>"}`. A payload carries
//! `for_user_id` (the brand's account), `tweet_create_events` (tweets that mention it or that
//! it posted) and `direct_message_events` with the `users` they name.

use std::collections::HashMap;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use super::mention::{Mention, MentionKind};
use super::network::{hmac_sha256, same, ApiCall, Network, PayloadError, ReplyTo};

/// The X network.
pub struct X;

#[derive(Deserialize)]
struct Activity {
    #[serde(default)]
    for_user_id: String,
    #[serde(default)]
    tweet_create_events: Vec<Tweet>,
    #[serde(default)]
    direct_message_events: Vec<DirectMessage>,
    #[serde(default)]
    users: HashMap<String, User>,
}

#[derive(Deserialize)]
struct Tweet {
    id_str: String,
    created_at: String,
    #[serde(default)]
    text: String,
    extended_tweet: Option<Extended>,
    user: User,
    #[serde(default)]
    entities: Entities,
    lang: Option<String>,
}

#[derive(Deserialize)]
struct Extended {
    full_text: String,
    #[serde(default)]
    entities: Option<Entities>,
}

#[derive(Deserialize, Default)]
struct Entities {
    #[serde(default)]
    hashtags: Vec<Hashtag>,
    #[serde(default)]
    user_mentions: Vec<UserMention>,
}

#[derive(Deserialize)]
struct Hashtag {
    text: String,
}

#[derive(Deserialize)]
struct UserMention {
    screen_name: String,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    id_str: String,
    screen_name: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct DirectMessage {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    created_timestamp: String,
    message_create: MessageCreate,
}

#[derive(Deserialize)]
struct MessageCreate {
    sender_id: String,
    message_data: MessageData,
}

#[derive(Deserialize)]
struct MessageData {
    text: String,
    #[serde(default)]
    entities: Entities,
}

fn signature(secret: &[u8], data: &[u8]) -> String {
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret, data))
    )
}

fn tags(e: &Entities) -> (Vec<String>, Vec<String>) {
    (
        e.hashtags.iter().map(|h| h.text.to_lowercase()).collect(),
        e.user_mentions
            .iter()
            .map(|m| m.screen_name.to_lowercase())
            .collect(),
    )
}

impl Network for X {
    fn name(&self) -> &'static str {
        "x"
    }

    /// A public mention: `POST /2/tweets` with `reply.in_reply_to_tweet_id`. A direct
    /// message: `POST /2/dm_conversations/with/{sender's user id}/messages`, a message in the
    /// one-to-one conversation with its sender.
    fn reply(&self, api_url: &str, to: &ReplyTo<'_>, text: &str) -> Result<ApiCall, String> {
        let api = api_url.trim_end_matches('/');
        if to.direct {
            let Some(user) = to
                .author_id
                .filter(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()))
            else {
                return Err(
                    "the direct message does not name its sender's X user id, which a reply is \
                     addressed to"
                        .into(),
                );
            };
            return Ok(ApiCall {
                url: format!("{api}/2/dm_conversations/with/{user}/messages"),
                body: serde_json::json!({"text": text}),
            });
        }
        Ok(ApiCall {
            url: format!("{api}/2/tweets"),
            body: serde_json::json!({"text": text,
                                     "reply": {"in_reply_to_tweet_id": to.message_id}}),
        })
    }

    /// A tweet's `data.id`, or a direct message's `data.dm_event_id`.
    fn reply_id(&self, answer: &serde_json::Value) -> Option<String> {
        ["/data/id", "/data/dm_event_id"]
            .iter()
            .find_map(|p| answer.pointer(p).and_then(|v| v.as_str()))
            .map(str::to_owned)
    }

    fn signature_header(&self) -> &'static str {
        "x-twitter-webhooks-signature"
    }

    fn verify(&self, secret: &[u8], given: &str, _url: &str, body: &[u8]) -> bool {
        same(given.trim().as_bytes(), signature(secret, body).as_bytes())
    }

    fn challenge(&self, secret: &[u8], token: &str) -> Option<serde_json::Value> {
        Some(serde_json::json!({"response_token": signature(secret, token.as_bytes())}))
    }

    fn mentions(&self, body: &[u8], account: &str) -> Result<Vec<Mention>, PayloadError> {
        let a: Activity = serde_json::from_slice(body)
            .map_err(|e| PayloadError(format!("not an X Account Activity payload: {e}")))?;
        let brand = account.trim().trim_start_matches('@').to_lowercase();
        let mut out = Vec::new();
        for t in a.tweet_create_events {
            let author = t.user.screen_name.to_lowercase();
            if author == brand || (!a.for_user_id.is_empty() && t.user.id_str == a.for_user_id) {
                continue;
            }
            let posted_at = DateTime::parse_from_str(&t.created_at, "%a %b %d %H:%M:%S %z %Y")
                .map_err(|e| PayloadError(format!("tweet {}: created_at: {e}", t.id_str)))?
                .with_timezone(&Utc);
            let (text, entities) = match &t.extended_tweet {
                Some(x) => (
                    x.full_text.clone(),
                    x.entities.as_ref().unwrap_or(&t.entities),
                ),
                None => (t.text.clone(), &t.entities),
            };
            let (hashtags, mentions) = tags(entities);
            let kind = if mentions.contains(&brand) {
                MentionKind::Mention
            } else {
                MentionKind::Post
            };
            out.push(Mention {
                network: "x".into(),
                url: Some(format!(
                    "https://x.com/{}/status/{}",
                    t.user.screen_name, t.id_str
                )),
                external_id: t.id_str,
                handle: author,
                author_name: t.user.name,
                author_id: Some(t.user.id_str).filter(|i| !i.is_empty()),
                text,
                language: t.lang.filter(|l| l != "und"),
                posted_at,
                kind,
                hashtags,
                mentions,
                email: None,
            });
        }
        for d in a.direct_message_events {
            let sender = &d.message_create.sender_id;
            if d.kind != "message_create" || *sender == a.for_user_id {
                continue;
            }
            let Some(user) = a.users.get(sender) else {
                return Err(PayloadError(format!(
                    "direct message {}: its sender is not among users",
                    d.id
                )));
            };
            let millis: i64 = d
                .created_timestamp
                .parse()
                .map_err(|_| PayloadError(format!("direct message {}: created_timestamp", d.id)))?;
            let posted_at = Utc.timestamp_millis_opt(millis).single().ok_or_else(|| {
                PayloadError(format!("direct message {}: created_timestamp", d.id))
            })?;
            let (hashtags, mentions) = tags(&d.message_create.message_data.entities);
            out.push(Mention {
                network: "x".into(),
                external_id: format!("dm:{}", d.id),
                handle: user.screen_name.to_lowercase(),
                author_name: user.name.clone(),
                author_id: Some(sender.clone()),
                text: d.message_create.message_data.text,
                url: None,
                language: None,
                posted_at,
                kind: MentionKind::DirectMessage,
                hashtags,
                mentions,
                email: None,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_a_tweet_in_reply_or_a_direct_message_to_the_sender() {
        let to = ReplyTo {
            handle: "bo_x",
            message_id: "1863",
            author_id: Some("99"),
            direct: false,
        };
        let call = X.reply("https://api.x.com/", &to, "Thanks!").unwrap();
        assert_eq!(call.url, "https://api.x.com/2/tweets");
        assert_eq!(call.body["reply"]["in_reply_to_tweet_id"], "1863");
        assert_eq!(
            X.reply_id(&serde_json::json!({"data": {"id": "9", "text": "Thanks!"}}))
                .as_deref(),
            Some("9")
        );
        let dm = ReplyTo { direct: true, ..to };
        let call = X.reply("https://api.x.com", &dm, "Hi").unwrap();
        assert_eq!(
            call.url,
            "https://api.x.com/2/dm_conversations/with/99/messages"
        );
        assert_eq!(call.body, serde_json::json!({"text": "Hi"}));
        assert_eq!(
            X.reply_id(
                &serde_json::json!({"data": {"dm_conversation_id": "99-4337",
                                                     "dm_event_id": "1582"}})
            )
            .as_deref(),
            Some("1582")
        );
        // Without the sender's id, or with one that is not an X id, there is no one to write to.
        for author_id in [None, Some(""), Some("99/../../2/tweets")] {
            assert!(X
                .reply("https://api.x.com", &ReplyTo { author_id, ..dm }, "Hi")
                .is_err());
        }
    }

    const ACTIVITY: &str = r#"{"for_user_id":"4337869213",
      "tweet_create_events":[{"created_at":"Wed Dec 02 10:00:00 +0000 2026","id_str":"1863000000000000001",
        "text":"Terrible service from @Acme, never again #fail","lang":"en",
        "user":{"id_str":"99","name":"Bo","screen_name":"Bo_X"},
        "entities":{"hashtags":[{"text":"fail","indices":[41,46]}],"user_mentions":[{"screen_name":"Acme","id_str":"4337869213","indices":[22,27]}]}},
       {"created_at":"Wed Dec 02 10:01:00 +0000 2026","id_str":"1863000000000000002","text":"Thanks!",
        "user":{"id_str":"4337869213","name":"Acme","screen_name":"Acme"},"entities":{}}],
      "direct_message_events":[{"type":"message_create","id":"954491830116155396","created_timestamp":"1796205600000",
        "message_create":{"target":{"recipient_id":"4337869213"},"sender_id":"99","message_data":{"text":"Where is my order?","entities":{"hashtags":[],"user_mentions":[]}}}}],
      "users":{"99":{"id":"99","name":"Bo","screen_name":"Bo_X"}}}"#;

    #[test]
    fn tweets_and_direct_messages_become_mentions_but_not_the_brands_own() {
        let m = X.mentions(ACTIVITY.as_bytes(), "acme").unwrap();
        assert_eq!(m.len(), 2, "{m:#?}");
        assert_eq!(
            (m[0].handle.as_str(), m[0].kind),
            ("bo_x", MentionKind::Mention)
        );
        assert_eq!(m[0].hashtags, ["fail"]);
        assert_eq!(m[0].posted_at.to_rfc3339(), "2026-12-02T10:00:00+00:00");
        assert_eq!(m[0].author_id.as_deref(), Some("99"));
        assert_eq!(
            (m[1].external_id.as_str(), m[1].kind),
            ("dm:954491830116155396", MentionKind::DirectMessage)
        );
        assert_eq!(m[1].author_id.as_deref(), Some("99"));
        assert!(X.mentions(b"{\"tweet_create_events\": 3}", "acme").is_err());
    }

    #[test]
    fn signatures_and_the_crc_challenge_use_the_consumer_secret() {
        let sig = signature(b"consumer-secret", ACTIVITY.as_bytes());
        assert!(X.verify(b"consumer-secret", &sig, "", ACTIVITY.as_bytes()));
        assert!(!X.verify(b"another", &sig, "", ACTIVITY.as_bytes()));
        assert!(!X.verify(b"consumer-secret", &sig, "", b"{}"));
        // The CRC answer is the token's HMAC, base64, as X's documentation shows it.
        let answer = X.challenge(b"consumer-secret", "crc-token").unwrap();
        let expected = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(b"consumer-secret", b"crc-token"));
        assert_eq!(answer["response_token"], format!("sha256={expected}"));
    }
}
