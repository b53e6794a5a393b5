//! Standard Webhooks signatures: signing for senders, [`Verifier`] for
//! receivers.
//!
//! A signed request carries three headers:
//!
//! - `webhook-id`: the message id, the same on every retry of one message,
//!   so a receiver can deduplicate;
//! - `webhook-timestamp`: seconds since the Unix epoch when the attempt was
//!   signed;
//! - `webhook-signature`: one or more space-separated `v1,<base64>`
//!   entries, each the HMAC-SHA256 of `{id}.{timestamp}.{body}` under one
//!   secret (several during a secret rotation).
//!
//! Secrets are written `whsec_<base64 of the key bytes>`; the prefix is
//! optional on input.
//!
//! ```
//! use evbus_webhook::sign::{Secret, Verifier, sign};
//!
//! let secret: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
//! let sig = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
//! assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//!
//! let verifier = Verifier::new(secret);
//! verifier.verify_parts(
//!     "msg_p5jXN8AQM9LWM0D4loKWxJek",
//!     "1614265330",
//!     &sig,
//!     br#"{"test": 2432232314}"#,
//!     1614265330 + 10, // the receiver's clock, seconds since the epoch
//! )?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{fmt, str::FromStr, time::Duration};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header holding the message id.
pub const HEADER_ID: &str = "webhook-id";
/// The header holding the signing time, in seconds since the Unix epoch.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header holding the space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// The timestamp tolerance the specification recommends: 5 minutes either
/// way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The shortest secret accepted (bytes). The specification asks for 24 to
/// 64 bytes; fewer than 16 is refused outright.
pub const MIN_SECRET_LEN: usize = 16;
/// The longest secret accepted (bytes).
pub const MAX_SECRET_LEN: usize = 256;

/// Longest accepted `webhook-signature` header, in bytes; a longer one is
/// [`VerifyError::Malformed`] (it bounds the work per request).
pub const MAX_SIGNATURE_HEADER: usize = 4096;

type HmacSha256 = Hmac<Sha256>;

/// A signing secret: the raw key bytes. Its `Debug` form hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The text after `whsec_` is not standard base64.
    #[error("secret is not valid base64")]
    Base64,
    /// The key is shorter than [`MIN_SECRET_LEN`] or longer than
    /// [`MAX_SECRET_LEN`] bytes.
    #[error("secret is {0} bytes; expected {MIN_SECRET_LEN} to {MAX_SECRET_LEN}")]
    Length(usize),
}

impl Secret {
    /// A secret from raw key bytes.
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let key = key.into();
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self { key })
    }

    /// A fresh random 32-byte secret (from the operating system's RNG via
    /// `rand`).
    pub fn generate() -> Self {
        let mut key = vec![0u8; 32];
        rand::fill(&mut key[..]);
        Self { key }
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.key
    }

    /// The text form, `whsec_<base64>`.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: u64, body: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl FromStr for Secret {
    type Err = SecretError;

    /// Parses `whsec_<base64>` (the prefix is optional).
    fn from_str(s: &str) -> Result<Self, SecretError> {
        let b64 = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        let key = STANDARD.decode(b64).map_err(|_| SecretError::Base64)?;
        Self::from_bytes(key)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("len", &self.key.len())
            .finish_non_exhaustive()
    }
}

/// The `v1,<base64>` signature of one message under one secret.
pub fn sign(secret: &Secret, id: &str, timestamp: u64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(secret.mac(id, timestamp, body)))
}

/// The `webhook-signature` header value for a message under every secret
/// in `secrets` (space-separated, in order): during a rotation a sender
/// signs with the old and the new secret so receivers holding either
/// accept it.
pub fn signature_header<'a, I>(secrets: I, id: &str, timestamp: u64, body: &[u8]) -> String
where
    I: IntoIterator<Item = &'a Secret>,
{
    let mut out = String::new();
    for secret in secrets {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&sign(secret, id, timestamp, body));
    }
    out
}

/// Why a request failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub enum VerifyError {
    /// A required header is absent (or not valid text).
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not a non-negative integer.
    #[error("webhook-timestamp is not an integer number of seconds")]
    BadTimestamp,
    /// The timestamp is older than the tolerance allows (a replay, or a
    /// very late delivery).
    #[error("timestamp {timestamp} is {age_secs} s old, over the tolerance")]
    TooOld {
        /// The request's timestamp.
        timestamp: u64,
        /// How old it is, in seconds, by the receiver's clock.
        age_secs: u64,
    },
    /// The timestamp is further in the future than the tolerance allows.
    #[error("timestamp {timestamp} is {ahead_secs} s in the future, over the tolerance")]
    TooNew {
        /// The request's timestamp.
        timestamp: u64,
        /// How far ahead it is, in seconds.
        ahead_secs: u64,
    },
    /// The signature header is over [`MAX_SIGNATURE_HEADER`] bytes.
    #[error("webhook-signature header is too long")]
    Malformed,
    /// No `v1` signature in the header matches any of the secrets.
    #[error("no signature matches")]
    NoMatch,
}

/// Checks signed requests at a receiver: any of its secrets may match
/// (rotation), and the timestamp must lie within the tolerance of the
/// receiver's clock.
///
/// The comparison of signatures is constant-time (`subtle`), so the time a
/// rejection takes says nothing about how many bytes matched.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier with one secret and the [`DEFAULT_TOLERANCE`].
    pub fn new(secret: Secret) -> Self {
        Self {
            secrets: vec![secret],
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Also accepts signatures under `secret` (for a rotation).
    #[must_use]
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// How far the timestamp may be from the receiver's clock, either way.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a request from its headers and raw body, with `now` (seconds
    /// since the Unix epoch) as the receiver's clock.
    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<(), VerifyError> {
        let get = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(VerifyError::MissingHeader(name))
        };
        self.verify_parts(
            get(HEADER_ID)?,
            get(HEADER_TIMESTAMP)?,
            get(HEADER_SIGNATURE)?,
            body,
            now,
        )
    }

    /// Verifies a request from the three header values and the raw body,
    /// with `now` (seconds since the Unix epoch) as the receiver's clock.
    pub fn verify_parts(
        &self,
        id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: u64,
    ) -> Result<(), VerifyError> {
        if signatures.len() > MAX_SIGNATURE_HEADER {
            return Err(VerifyError::Malformed);
        }
        if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VerifyError::BadTimestamp);
        }
        let ts: u64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
        let tol = self.tolerance.as_secs();
        if now > ts && now - ts > tol {
            return Err(VerifyError::TooOld {
                timestamp: ts,
                age_secs: now - ts,
            });
        }
        if ts > now && ts - now > tol {
            return Err(VerifyError::TooNew {
                timestamp: ts,
                ahead_secs: ts - now,
            });
        }
        let expected: Vec<[u8; 32]> = self.secrets.iter().map(|s| s.mac(id, ts, body)).collect();
        let mut matched = subtle::Choice::from(0u8);
        for entry in signatures.split(' ') {
            let Some(b64) = entry.strip_prefix("v1,") else {
                continue;
            };
            let Ok(given) = STANDARD.decode(b64) else {
                continue;
            };
            for want in &expected {
                // `ct_eq` on slices of different lengths is false, in time
                // independent of the contents.
                matched |= want[..].ct_eq(&given[..]);
            }
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(VerifyError::NoMatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors published with the Standard Webhooks specification (its
    // libraries' test suites share them).
    const V1_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const V1_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const V1_TS: u64 = 1614265330;
    const V1_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const V1_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const V2_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const V2_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const V2_TS: u64 = 1649367553;
    const V2_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const V2_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn v1() -> Secret {
        V1_SECRET.parse().unwrap()
    }

    #[test]
    fn signs_the_published_vectors() {
        assert_eq!(sign(&v1(), V1_ID, V1_TS, V1_BODY), V1_SIG);
        let s2: Secret = V2_SECRET.parse().unwrap();
        assert_eq!(sign(&s2, V2_ID, V2_TS, V2_BODY), V2_SIG);
        // The prefix is optional.
        let bare: Secret = V1_SECRET[SECRET_PREFIX.len()..].parse().unwrap();
        assert_eq!(bare, v1());
        assert_eq!(v1().to_whsec(), V1_SECRET);
    }

    #[test]
    fn verifies_the_published_vectors() {
        let v = Verifier::new(v1());
        assert_eq!(
            v.verify_parts(V1_ID, "1614265330", V1_SIG, V1_BODY, V1_TS),
            Ok(())
        );
        let v2 = Verifier::new(V2_SECRET.parse().unwrap());
        assert_eq!(
            v2.verify_parts(V2_ID, "1649367553", V2_SIG, V2_BODY, V2_TS + 299),
            Ok(())
        );
    }

    #[test]
    fn rejects_what_the_specification_rejects() {
        let v = Verifier::new(v1());
        let ok = |sig: &str| v.verify_parts(V1_ID, "1614265330", sig, V1_BODY, V1_TS);
        // Wrong signature bytes (the suites' "invalid signature").
        assert_eq!(
            ok("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="),
            Err(VerifyError::NoMatch)
        );
        // Partial signatures.
        assert_eq!(ok("v1,"), Err(VerifyError::NoMatch));
        assert_eq!(ok(&V1_SIG[..8]), Err(VerifyError::NoMatch));
        assert_eq!(
            ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="),
            Err(VerifyError::NoMatch)
        );
        // A valid signature under another version tag does not count.
        assert_eq!(ok(&V1_SIG.replace("v1,", "v2,")), Err(VerifyError::NoMatch));
        // Several signatures, one valid (the suites' "valid multi sig").
        let multi = format!(
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {V1_SIG} v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
        );
        assert_eq!(ok(&multi), Ok(()));
        // Tampered body, other id.
        assert_eq!(
            v.verify_parts(
                V1_ID,
                "1614265330",
                V1_SIG,
                br#"{"test": 2432232315}"#,
                V1_TS
            ),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            v.verify_parts("msg_other", "1614265330", V1_SIG, V1_BODY, V1_TS),
            Err(VerifyError::NoMatch)
        );
        // Wrong secret.
        let wrong = Verifier::new(V2_SECRET.parse().unwrap());
        assert_eq!(
            wrong.verify_parts(V1_ID, "1614265330", V1_SIG, V1_BODY, V1_TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_rejected() {
        let v = Verifier::new(v1());
        let at = |now: u64| v.verify_parts(V1_ID, "1614265330", V1_SIG, V1_BODY, now);
        assert_eq!(at(V1_TS + 300), Ok(()));
        assert_eq!(at(V1_TS - 300), Ok(()));
        assert_eq!(
            at(V1_TS + 301),
            Err(VerifyError::TooOld {
                timestamp: V1_TS,
                age_secs: 301
            })
        );
        assert_eq!(
            at(V1_TS - 301),
            Err(VerifyError::TooNew {
                timestamp: V1_TS,
                ahead_secs: 301
            })
        );
        for bad in [
            "",
            "-1614265330",
            "161426533.0",
            "invalid timestamp",
            "99999999999999999999999",
        ] {
            assert_eq!(
                v.verify_parts(V1_ID, bad, V1_SIG, V1_BODY, V1_TS),
                Err(VerifyError::BadTimestamp),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rotation_signs_with_every_secret_and_either_verifies() {
        let old = v1();
        let new = Secret::generate();
        let header = signature_header([&old, &new], V1_ID, V1_TS, V1_BODY);
        assert!(header.starts_with(V1_SIG));
        assert_eq!(header.split(' ').count(), 2);
        for s in [old.clone(), new.clone()] {
            let v = Verifier::new(s);
            assert_eq!(
                v.verify_parts(V1_ID, "1614265330", &header, V1_BODY, V1_TS),
                Ok(())
            );
        }
        let stranger = Verifier::new(Secret::generate());
        assert_eq!(
            stranger.verify_parts(V1_ID, "1614265330", &header, V1_BODY, V1_TS),
            Err(VerifyError::NoMatch)
        );
        // A receiver holding both accepts a message signed by only one.
        let both = Verifier::new(Secret::generate()).with_secret(new.clone());
        let only_new = sign(&new, V1_ID, V1_TS, V1_BODY);
        assert_eq!(
            both.verify_parts(V1_ID, "1614265330", &only_new, V1_BODY, V1_TS),
            Ok(())
        );
    }

    #[test]
    fn headers_are_read_from_a_header_map() {
        let v = Verifier::new(v1());
        let mut h = http::HeaderMap::new();
        assert_eq!(
            v.verify(&h, V1_BODY, V1_TS),
            Err(VerifyError::MissingHeader(HEADER_ID))
        );
        h.insert(HEADER_ID, V1_ID.parse().unwrap());
        assert_eq!(
            v.verify(&h, V1_BODY, V1_TS),
            Err(VerifyError::MissingHeader(HEADER_TIMESTAMP))
        );
        h.insert(HEADER_TIMESTAMP, "1614265330".parse().unwrap());
        assert_eq!(
            v.verify(&h, V1_BODY, V1_TS),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        );
        h.insert(HEADER_SIGNATURE, V1_SIG.parse().unwrap());
        assert_eq!(v.verify(&h, V1_BODY, V1_TS), Ok(()));
    }

    #[test]
    fn secrets_are_validated_and_never_printed() {
        assert_eq!("whsec_!!!".parse::<Secret>(), Err(SecretError::Base64));
        assert_eq!("whsec_AAAA".parse::<Secret>(), Err(SecretError::Length(3)));
        let s = Secret::generate();
        assert_eq!(s.as_bytes().len(), 32);
        assert_eq!(s.to_whsec().parse::<Secret>(), Ok(s.clone()));
        assert!(!format!("{s:?}").contains(&s.to_whsec()[6..]));
        let long = "a".repeat(MAX_SIGNATURE_HEADER + 1);
        assert_eq!(
            Verifier::new(s).verify_parts("id", "1", &long, b"", 1),
            Err(VerifyError::Malformed)
        );
    }

    proptest::proptest! {
        #[test]
        fn signed_messages_verify_and_any_change_is_caught(
            id in "[ -~]{0,40}",
            ts in 0u64..4_000_000_000,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            flip in 0usize..256,
        ) {
            let secret = Secret::from_bytes(vec![7u8; 24]).unwrap();
            let v = Verifier::new(secret.clone());
            let sig = sign(&secret, &id, ts, &body);
            proptest::prop_assert_eq!(v.verify_parts(&id, &ts.to_string(), &sig, &body, ts), Ok(()));
            if !body.is_empty() {
                let mut tampered = body.clone();
                tampered[flip % body.len()] ^= 1;
                proptest::prop_assert_eq!(
                    v.verify_parts(&id, &ts.to_string(), &sig, &tampered, ts),
                    Err(VerifyError::NoMatch)
                );
            }
        }

        #[test]
        fn arbitrary_headers_never_panic(
            id in ".{0,64}",
            ts in ".{0,24}",
            sig in ".{0,200}",
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            now in proptest::num::u64::ANY,
        ) {
            let v = Verifier::new(Secret::from_bytes(vec![1u8; 32]).unwrap());
            let _ = v.verify_parts(&id, &ts, &sig, &body, now);
            let _ = sig.parse::<Secret>();
        }
    }
}
