//! `IdempotencyKeys`: keyed creates' records, judged by `roughy_domain::idempotency`.

use async_trait::async_trait;
use time::OffsetDateTime;

use roughy_app::ports::{Claim, IdempotencyKeys, RepoError};
use roughy_domain::idempotency::{IN_FLIGHT_LEASE, KEY_TTL};
use roughy_domain::{AccountId, ClaimId, Fingerprint, IdempotencyKey, KeyRecord, StoredResponse};

use super::{IdempotencyRow, MemoryRepository};

#[async_trait]
impl IdempotencyKeys for MemoryRepository {
    async fn claim_key(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: OffsetDateTime,
    ) -> Result<Claim, RepoError> {
        let mut state = self.state()?;
        let id = (account.clone(), key.clone());
        if let Some(answer) = state
            .idempotency
            .get(&id)
            .and_then(|row| Claim::judged(&row.record, fingerprint, now))
        {
            return Ok(answer);
        }
        let claim = ClaimId::generate();
        state.idempotency.insert(
            id,
            IdempotencyRow {
                claim: claim.clone(),
                record: KeyRecord {
                    fingerprint: fingerprint.clone(),
                    expires_at: now + KEY_TTL,
                    in_flight_until: Some(now + IN_FLIGHT_LEASE),
                    response: None,
                },
            },
        );
        Ok(Claim::Claimed(claim))
    }

    async fn complete_key(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        claim: &ClaimId,
        response: &StoredResponse,
    ) -> Result<bool, RepoError> {
        let mut state = self.state()?;
        match state.idempotency.get_mut(&(account.clone(), key.clone())) {
            Some(row) if &row.claim == claim => {
                row.record.response = Some(response.clone());
                row.record.in_flight_until = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_key(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        claim: &ClaimId,
    ) -> Result<(), RepoError> {
        let mut state = self.state()?;
        let id = (account.clone(), key.clone());
        if state
            .idempotency
            .get(&id)
            .is_some_and(|row| &row.claim == claim)
        {
            state.idempotency.remove(&id);
        }
        Ok(())
    }

    async fn purge_expired_keys(&self, now: OffsetDateTime) -> Result<u64, RepoError> {
        let mut state = self.state()?;
        let before = state.idempotency.len();
        state
            .idempotency
            .retain(|_, row| row.record.expires_at > now);
        Ok(u64::try_from(before - state.idempotency.len()).unwrap_or(u64::MAX))
    }
}
