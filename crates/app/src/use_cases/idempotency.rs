//! Idempotent creation: a request sent with an `Idempotency-Key` runs once per key; its
//! retries get the first response back.
//!
//! The caller (the HTTP adapter) validates the request, claims the key, runs the create,
//! and either stores the response (success) or lets the key go (any refusal or failure, so a
//! retry runs again). A process that dies in between leaves the key in flight until
//! `roughy_domain::idempotency::IN_FLIGHT_LEASE` has passed.

use roughy_domain::{AccountId, ClaimId, Fingerprint, IdempotencyKey, StoredResponse};

use super::Ingest;
use crate::error::IngestError;
use crate::ports::Claim;

/// What a keyed request does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyedRequest {
    /// Run it under this claim.
    Run(ClaimId),
    /// Answer this: the first response to the same request.
    Replay(StoredResponse),
}

impl Ingest {
    /// Claims `key` for a request with `fingerprint`.
    ///
    /// # Errors
    /// `IngestError::IdempotencyKeyInUse` while the same request runs elsewhere;
    /// `IngestError::IdempotencyKeyReused` when the key was used for another request;
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn claim_idempotency_key(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
    ) -> Result<KeyedRequest, IngestError> {
        let now = self.ports.clock.now();
        match self
            .ports
            .idempotency
            .claim_key(account, key, fingerprint, now)
            .await?
        {
            Claim::Claimed(claim) => Ok(KeyedRequest::Run(claim)),
            Claim::Replay(response) => Ok(KeyedRequest::Replay(response)),
            Claim::InFlight => Err(IngestError::IdempotencyKeyInUse),
            Claim::Reused => Err(IngestError::IdempotencyKeyReused),
        }
    }

    /// Stores the response of the request that holds `claim`. The resource exists already, so
    /// a failure here is logged, not answered: the key then stays in flight until its lease
    /// ends, and a retry after that runs the create again.
    pub async fn store_idempotent_response(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        claim: &ClaimId,
        response: &StoredResponse,
    ) {
        match self
            .ports
            .idempotency
            .complete_key(account, key, claim, response)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    key = key.as_str(),
                    "idempotency key was taken over before its response was stored"
                );
            }
            Err(e) => {
                tracing::warn!(key = key.as_str(), error = %e, "failed to store the response of an idempotency key");
            }
        }
    }

    /// Lets `key` go after its request was refused or failed, so that a retry runs again.
    /// A failure is logged: the key then stays in flight until its lease ends.
    pub async fn release_idempotency_key(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        claim: &ClaimId,
    ) {
        if let Err(e) = self
            .ports
            .idempotency
            .release_key(account, key, claim)
            .await
        {
            tracing::warn!(key = key.as_str(), error = %e, "failed to release an idempotency key");
        }
    }
}
