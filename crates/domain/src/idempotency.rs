//! Idempotent creation: an `Idempotency-Key` a client sends with a create, so that retrying it
//! after a timeout or a dropped connection returns the first response instead of creating a
//! second resource (as Stripe's API does).
//!
//! A key is scoped to the account. Its record holds a fingerprint of the request (route and
//! body), the first successful response once there is one, and, while the first request is
//! still running, an in-flight lease. [`judge`] is the one rule every adapter applies to a key
//! that is already recorded.

use std::fmt;

use sha2::{Digest, Sha256};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

/// How long a key is remembered after its first use.
pub const KEY_TTL: Duration = Duration::hours(24);

/// How long a first request may run before its key is taken over by a retry. A process that
/// dies between claiming a key and storing the response leaves the key in flight; after this
/// long a retry runs the request again (it answers 409 `idempotency_key_in_use` before that).
pub const IN_FLIGHT_LEASE: Duration = Duration::seconds(60);

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// Why a key was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("Idempotency-Key must be 1 to 255 printable ASCII characters")]
pub struct KeyError;

/// A client's `Idempotency-Key`: 1 to 255 printable ASCII characters (spaces allowed inside;
/// surrounding whitespace is trimmed).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a header value.
    ///
    /// # Errors
    /// [`KeyError`] when the trimmed value is empty, longer than [`MAX_KEY_LEN`], or holds a
    /// byte outside printable ASCII.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        let key = raw.trim_matches(|c: char| c == ' ' || c == '\t');
        let printable = key.bytes().all(|b| (b' '..=b'~').contains(&b));
        if key.is_empty() || key.len() > MAX_KEY_LEN || !printable {
            return Err(KeyError);
        }
        Ok(Self(key.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

/// What a request is, for telling a retry from another request under the same key: SHA-256
/// of the route and the body's canonical form, hex.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of `body` sent to `route` (e.g. `POST /v1/assets`). The caller passes
    /// the body in a canonical form, so that a retry serialised differently (key order,
    /// whitespace) is still the same request.
    pub fn of(route: &str, body: &[u8]) -> Self {
        let mut hash = Sha256::new();
        hash.update(route.as_bytes());
        hash.update([0]);
        hash.update(body);
        Self(hex::encode(hash.finalize()))
    }

    /// A stored fingerprint.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first successful response to a keyed request, replayed to its retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: u16,
    /// The headers a replay repeats (e.g. `Location`), in order.
    pub headers: Vec<(String, String)>,
    /// The body, as sent.
    pub body: Vec<u8>,
}

/// One request's hold on a key: random, so that only the request that claimed a key stores
/// its response or lets it go (a retry that took an abandoned key over holds another).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClaimId(String);

impl ClaimId {
    /// A new random claim.
    pub fn generate() -> Self {
        let bytes: [u8; 16] = rand::random();
        Self(hex::encode(bytes))
    }

    /// A stored claim.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    /// The claim as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// The request the key was first used for.
    pub fingerprint: Fingerprint,
    /// When the key is forgotten.
    pub expires_at: OffsetDateTime,
    /// While the first request runs: until when it holds the key.
    pub in_flight_until: Option<OffsetDateTime>,
    /// The first response, once there is one.
    pub response: Option<StoredResponse>,
}

/// What a request under a recorded key does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The record no longer binds (expired, or its first request died in flight): the request
    /// runs and takes the key over.
    TakeOver,
    /// Same request, already answered: replay the response.
    Replay(StoredResponse),
    /// Same request, still running elsewhere: 409 `idempotency_key_in_use`.
    InFlight,
    /// Another request under this key: 422 `idempotency_key_reused`.
    Reused,
}

impl KeyRecord {
    /// Whether the record no longer binds at `now`: it expired, or its first request ran past
    /// its lease without answering.
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
            || (self.response.is_none() && self.in_flight_until.is_none_or(|until| until <= now))
    }
}

/// The rule for a request with `fingerprint` under a key recorded as `record`, at `now`.
pub fn judge(record: &KeyRecord, fingerprint: &Fingerprint, now: OffsetDateTime) -> Verdict {
    if record.is_stale(now) {
        return Verdict::TakeOver;
    }
    if &record.fingerprint != fingerprint {
        return Verdict::Reused;
    }
    match &record.response {
        Some(response) => Verdict::Replay(response.clone()),
        None => Verdict::InFlight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-04 12:00 UTC);

    fn record(response: Option<StoredResponse>) -> KeyRecord {
        KeyRecord {
            fingerprint: Fingerprint::of("POST /v1/assets", b"{}"),
            expires_at: NOW + KEY_TTL,
            in_flight_until: response.is_none().then_some(NOW + IN_FLIGHT_LEASE),
            response,
        }
    }

    fn created() -> StoredResponse {
        StoredResponse {
            status: 201,
            headers: vec![("location".into(), "http://x/v1/uploads/upl_1".into())],
            body: b"{\"id\":\"ast_1\"}".to_vec(),
        }
    }

    #[test]
    fn keys_are_printable_ascii_of_1_to_255_bytes() {
        assert_eq!(IdempotencyKey::parse(" a b ").unwrap().as_str(), "a b");
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "   ", &"k".repeat(256), "caf\u{e9}", "a\u{7}b", "a\nb"] {
            assert_eq!(IdempotencyKey::parse(bad), Err(KeyError), "{bad:?}");
        }
    }

    #[test]
    fn the_fingerprint_tells_routes_and_bodies_apart() {
        let a = Fingerprint::of("POST /v1/assets", b"{}");
        assert_eq!(a, Fingerprint::of("POST /v1/assets", b"{}"));
        assert_ne!(a, Fingerprint::of("POST /v1/projects", b"{}"));
        assert_ne!(a, Fingerprint::of("POST /v1/assets", b"{\"a\":1}"));
        assert_eq!(a.as_str().len(), 64);
    }

    #[test]
    fn the_same_request_replays_the_first_response() {
        let fp = Fingerprint::of("POST /v1/assets", b"{}");
        assert_eq!(
            judge(&record(Some(created())), &fp, NOW + Duration::hours(23)),
            Verdict::Replay(created())
        );
    }

    #[test]
    fn another_body_under_a_live_key_is_refused_answered_or_not() {
        let other = Fingerprint::of("POST /v1/assets", b"{\"size_bytes\":100}");
        assert_eq!(
            judge(&record(Some(created())), &other, NOW),
            Verdict::Reused
        );
        assert_eq!(judge(&record(None), &other, NOW), Verdict::Reused);
    }

    #[test]
    fn a_request_still_running_holds_the_key_until_its_lease_ends() {
        let fp = Fingerprint::of("POST /v1/assets", b"{}");
        let running = record(None);
        assert_eq!(judge(&running, &fp, NOW), Verdict::InFlight);
        let lease_end = NOW + IN_FLIGHT_LEASE;
        assert_eq!(
            judge(&running, &fp, lease_end - Duration::SECOND),
            Verdict::InFlight
        );
        assert_eq!(judge(&running, &fp, lease_end), Verdict::TakeOver);
        // Another body may take over an abandoned key as well.
        let other = Fingerprint::of("POST /v1/projects", b"{}");
        assert_eq!(judge(&running, &other, lease_end), Verdict::TakeOver);
    }

    #[test]
    fn an_expired_key_is_free_again_whatever_it_recorded() {
        let other = Fingerprint::of("POST /v1/projects", b"{}");
        let answered = record(Some(created()));
        assert_eq!(
            judge(&answered, &other, NOW + KEY_TTL - Duration::SECOND),
            Verdict::Reused
        );
        assert_eq!(judge(&answered, &other, NOW + KEY_TTL), Verdict::TakeOver);
        assert!(answered.is_stale(NOW + KEY_TTL));
        assert!(!answered.is_stale(NOW + IN_FLIGHT_LEASE * 2));
    }
}
