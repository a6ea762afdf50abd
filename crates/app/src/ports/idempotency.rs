//! Idempotency keys: the record of keyed creates, so a retry replays the first response.

use async_trait::async_trait;
use time::OffsetDateTime;

use roughy_domain::idempotency::{judge, Verdict};
use roughy_domain::{AccountId, ClaimId, Fingerprint, IdempotencyKey, KeyRecord, StoredResponse};

use super::RepoError;

#[cfg(test)]
use mockall::automock;

/// What claiming a key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's (new, or taken over from a stale record): run it, then
    /// store its response or let the key go.
    Claimed(ClaimId),
    /// The same request was answered: this is its response.
    Replay(StoredResponse),
    /// The same request is still running.
    InFlight,
    /// The key was used for another request.
    Reused,
}

impl Claim {
    /// What a claim of `fingerprint` answers for a key recorded as `record` at `now`
    /// (`roughy_domain::idempotency::judge`); `None` when the record no longer binds and the
    /// claim takes the key over.
    pub fn judged(
        record: &KeyRecord,
        fingerprint: &Fingerprint,
        now: OffsetDateTime,
    ) -> Option<Self> {
        match judge(record, fingerprint, now) {
            Verdict::TakeOver => None,
            Verdict::Replay(response) => Some(Self::Replay(response)),
            Verdict::InFlight => Some(Self::InFlight),
            Verdict::Reused => Some(Self::Reused),
        }
    }
}

/// Idempotency keys, scoped to the account.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait IdempotencyKeys: Send + Sync {
    /// Atomically, at `now`: when the account has no live record of `key`, or its record is
    /// stale (`KeyRecord::is_stale`), records it in flight for `fingerprint` (until `now` +
    /// `IN_FLIGHT_LEASE`, forgotten at `now` + `KEY_TTL`) under a new claim; otherwise answers
    /// what `roughy_domain::idempotency::judge` says of the record. Of two concurrent claims of
    /// one key, exactly one is `Claimed`.
    async fn claim_key(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: OffsetDateTime,
    ) -> Result<Claim, RepoError>;
    /// Stores the response of the request holding `claim` (the key is then answered, no
    /// longer in flight). Returns `false` when the key is no longer held by `claim`.
    async fn complete_key(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        claim: &ClaimId,
        response: &StoredResponse,
    ) -> Result<bool, RepoError>;
    /// Forgets the key if `claim` still holds it (the request failed: a retry runs again).
    async fn release_key(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        claim: &ClaimId,
    ) -> Result<(), RepoError>;
    /// Deletes the records expired at `now`; returns how many.
    async fn purge_expired_keys(&self, now: OffsetDateTime) -> Result<u64, RepoError>;
}
