//! Webhooks as the Standard Webhooks specification has them: each delivery carries
//! `webhook-id`, `webhook-timestamp` and `webhook-signature`; the signature is HMAC-SHA256 over
//! `{id}.{timestamp}.{body}` with the endpoint's secret (`whsec_` + base64), written `v1,` +
//! base64, several space-separated while a secret is rotated. Failed deliveries are retried on
//! the specification's schedule; a 410 disables the endpoint. Targets must be public
//! addresses unless the tenant allows private ones ([`is_public`], checked on every resolved
//! address, so a name that resolves to 127.0.0.1 is refused too).

use std::net::IpAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// An endpoint's signing secret: `whsec_` + base64 of 24 to 64 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// Parses `whsec_…`, or says what is wrong.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let b64 = text
            .strip_prefix("whsec_")
            .ok_or("a webhook secret starts with `whsec_`")?;
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| "a webhook secret is `whsec_` followed by base64")?;
        if !(24..=64).contains(&bytes.len()) {
            return Err("a webhook secret holds 24 to 64 bytes");
        }
        Ok(Self(bytes))
    }

    /// A new random secret of 32 bytes.
    pub fn generate() -> Self {
        Self((0..32).map(|_| rand::random::<u8>()).collect())
    }

    /// The secret as shown once to the tenant.
    pub fn expose(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.0))
    }

    /// The HMAC-SHA256 of `{id}.{timestamp}.{body}`, ready to finalise or verify.
    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).ok()?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        Some(mac)
    }

    /// `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts a key of any length; the `None` branch cannot happen.
        self.mac(id, timestamp, body)
            .map_or_else(String::new, |mac| {
                format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
            })
    }
}

/// The `webhook-signature` header: one signature per active secret (the new one first during
/// a rotation), space-separated.
pub fn signature_header(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `header` holds a valid signature by `secret` (what a receiver checks; used in
/// tests and by the test-send endpoint). Compared in constant time (`Mac::verify_slice`).
pub fn verify(secret: &Secret, header: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
    header.split(' ').any(|candidate| {
        let Some(sig) = candidate
            .strip_prefix("v1,")
            .and_then(|b64| STANDARD.decode(b64).ok())
        else {
            return false;
        };
        secret
            .mac(id, timestamp, body)
            .is_some_and(|mac| mac.verify_slice(&sig).is_ok())
    })
}

/// Delays before each retry after a failed attempt (the specification's schedule): 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h, 10 h; after the last, the delivery has failed.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// What to do after an attempt that got `status` (`None`: no answer, a timeout or a refused
/// connection), this being attempt `attempt` (1 for the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Delivered (2xx).
    Delivered,
    /// Try again after this delay.
    Retry(Duration),
    /// Give up: the schedule is exhausted.
    Failed,
    /// 410 Gone: the endpoint is disabled, no more deliveries to it.
    Disable,
}

/// The outcome of an attempt, on the specification's [`RETRY_SCHEDULE`].
pub fn after_attempt(status: Option<u16>, attempt: usize) -> AfterAttempt {
    after_attempt_on(&RETRY_SCHEDULE, status, attempt)
}

/// The outcome of an attempt on another schedule (a deployment may shorten it, as the tests
/// do): the delay before retry `n` is `schedule[n - 1]`; past its end, the delivery failed.
pub fn after_attempt_on(
    schedule: &[Duration],
    status: Option<u16>,
    attempt: usize,
) -> AfterAttempt {
    match status {
        Some(s) if (200..300).contains(&s) => AfterAttempt::Delivered,
        Some(410) => AfterAttempt::Disable,
        _ => schedule
            .get(attempt.saturating_sub(1))
            .map_or(AfterAttempt::Failed, |d| AfterAttempt::Retry(*d)),
    }
}

/// Whether `ip` is a public address a webhook may reach: not loopback, private, link-local
/// (cloud metadata at 169.254.169.254), unspecified, multicast, broadcast, documentation,
/// shared (100.64/10) or unique-local IPv6, nor an IPv4 address mapped into IPv6.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_specifications_test_vector() {
        let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            s.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(verify(
            &s,
            "v1,bad v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body
        ));
        assert!(!verify(
            &s,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body
        ));
        assert_eq!(format!("{s:?}"), "Secret(…)");
    }

    #[test]
    fn during_a_rotation_both_secrets_sign() {
        let (old, new) = (Secret::generate(), Secret::generate());
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 1_700_000_000, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&old, &header, "msg_1", 1_700_000_000, b"{}"));
        assert!(verify(&new, &header, "msg_1", 1_700_000_000, b"{}"));
        assert!(!verify(
            &Secret::generate(),
            &header,
            "msg_1",
            1_700_000_000,
            b"{}"
        ));
        assert_eq!(Secret::parse(&new.expose()).unwrap(), new);
        assert!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(Secret::parse("whsec_!!!").is_err());
        assert!(Secret::parse("whsec_c2hvcnQ=").is_err());
    }

    #[test]
    fn retries_follow_the_schedule_and_410_disables() {
        assert_eq!(after_attempt(Some(204), 1), AfterAttempt::Delivered);
        assert_eq!(
            after_attempt(Some(500), 1),
            AfterAttempt::Retry(Duration::from_secs(5))
        );
        assert_eq!(
            after_attempt(None, 2),
            AfterAttempt::Retry(Duration::from_secs(300))
        );
        assert_eq!(
            after_attempt(Some(429), 7),
            AfterAttempt::Retry(Duration::from_secs(36_000))
        );
        assert_eq!(after_attempt(Some(500), 8), AfterAttempt::Failed);
        assert_eq!(after_attempt(Some(410), 3), AfterAttempt::Disable);
        let short = [Duration::from_millis(50), Duration::from_millis(100)];
        assert_eq!(
            after_attempt_on(&short, Some(503), 2),
            AfterAttempt::Retry(Duration::from_millis(100))
        );
        assert_eq!(after_attempt_on(&short, Some(503), 3), AfterAttempt::Failed);
        assert_eq!(
            after_attempt_on(&short, Some(200), 3),
            AfterAttempt::Delivered
        );
    }

    #[test]
    fn private_and_loopback_targets_are_refused() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "198.18.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(good.parse().unwrap()), "{good}");
        }
    }

    proptest! {
        #[test]
        fn a_signature_verifies_only_its_own_message(
            id in "[a-z0-9_]{1,30}", ts in 0i64..4_000_000_000, body in prop::collection::vec(any::<u8>(), 0..200),
            flip in 0usize..200,
        ) {
            let s = Secret::generate();
            let header = s.sign(&id, ts, &body);
            prop_assert!(verify(&s, &header, &id, ts, &body));
            if !body.is_empty() {
                let mut other = body.clone();
                let i = flip % other.len();
                other[i] ^= 1;
                prop_assert!(!verify(&s, &header, &id, ts, &other));
            }
        }
    }
}
