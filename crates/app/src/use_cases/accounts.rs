//! Accounts, API keys, authentication, top-ups and the ledger.

use roughy_domain::billing::{Credits, MAX_TOP_UP};
use roughy_domain::{Account, AccountId, ApiKey, ApiKeyId, ApiKeySecret, LedgerEntry};

use super::Ingest;
use crate::error::IngestError;
use crate::pagination::{Page, PageRequest};
use crate::ports::TopUpOutcome;

/// A freshly minted key: its secret is shown this once.
#[derive(Debug)]
pub struct MintedKey {
    /// The stored key.
    pub key: ApiKey,
    /// The secret.
    pub secret: ApiKeySecret,
}

impl Ingest {
    /// Creates an account with a zero balance.
    ///
    /// # Errors
    /// `IngestError::Validation` for a name holding U+0000; `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn create_account(&self, name: Option<String>) -> Result<Account, IngestError> {
        if name.as_deref().is_some_and(|n| n.contains('\0')) {
            // PostgreSQL text cannot hold it: refused as input, never a 500 from the store.
            return Err(IngestError::Validation {
                field: "name",
                message: "must not contain U+0000".to_owned(),
            });
        }
        let account = Account {
            id: AccountId::generate(),
            name,
            created_at: roughy_domain::time_format::to_micros(self.ports.clock.now()),
        };
        self.ports.accounts.create_account(&account).await?;
        Ok(account)
    }

    /// Mints an API key for an account.
    ///
    /// # Errors
    /// `IngestError::NotFound` for an unknown account; `IngestError::Unavailable` when the
    /// repository does not answer (retryable), `Internal` otherwise.
    pub async fn mint_api_key(&self, account: &AccountId) -> Result<MintedKey, IngestError> {
        let secret = ApiKeySecret::generate();
        let key = ApiKey {
            id: ApiKeyId::generate(),
            account_id: account.clone(),
            hash: secret.hash(),
            created_at: roughy_domain::time_format::to_micros(self.ports.clock.now()),
        };
        self.ports.accounts.create_api_key(&key).await?;
        Ok(MintedKey { key, secret })
    }

    /// Revokes a key at once.
    ///
    /// # Errors
    /// `IngestError::NotFound` for an unknown key; `IngestError::Unavailable` when the
    /// repository does not answer (retryable), `Internal` otherwise.
    pub async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<(), IngestError> {
        if self.ports.accounts.revoke_api_key(id).await? {
            Ok(())
        } else {
            Err(IngestError::NotFound)
        }
    }

    /// The account a bearer secret acts for.
    ///
    /// # Errors
    /// `IngestError::Unauthorized` for a malformed, unknown or revoked key;
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn authenticate(&self, bearer: &str) -> Result<AccountId, IngestError> {
        let secret = ApiKeySecret::parse(bearer).ok_or(IngestError::Unauthorized)?;
        self.ports
            .accounts
            .account_for_key(&secret.hash())
            .await?
            .ok_or(IngestError::Unauthorized)
    }

    /// The account, for the operator API.
    ///
    /// # Errors
    /// `IngestError::NotFound` for an unknown account; `IngestError::Unavailable` when the
    /// repository does not answer (retryable), `Internal` otherwise.
    pub async fn get_account(&self, id: &AccountId) -> Result<Account, IngestError> {
        self.ports
            .accounts
            .get_account(id)
            .await?
            .ok_or(IngestError::NotFound)
    }

    /// The balance.
    ///
    /// # Errors
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn balance(&self, account: &AccountId) -> Result<Credits, IngestError> {
        Ok(self.ports.accounts.balance(account).await?)
    }

    /// Credits the account and activates what the new balance covers, oldest first.
    ///
    /// # Errors
    /// `IngestError::NotFound` for an unknown account, `Validation` for an amount outside 1 to `MAX_TOP_UP`;
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn top_up(
        &self,
        account: &AccountId,
        credits: Credits,
    ) -> Result<TopUpOutcome, IngestError> {
        if !(1..=MAX_TOP_UP).contains(&credits) {
            return Err(IngestError::Validation {
                field: "credits",
                message: format!("must be an integer from 1 to {MAX_TOP_UP}"),
            });
        }
        let at = roughy_domain::time_format::to_micros(self.ports.clock.now());
        let outcome = self.ports.accounts.top_up(account, credits, at).await?;
        if !outcome.activated.is_empty() {
            self.ports
                .metrics
                .credits_charged(u64::try_from(outcome.charged).unwrap_or(0));
            tracing::info!(account = %account, activated = outcome.activated.len(), "top-up activated assets");
        }
        Ok(outcome)
    }

    /// The ledger, newest first.
    ///
    /// # Errors
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn ledger(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<LedgerEntry>, IngestError> {
        Ok(self.ports.accounts.list_ledger(account, page).await?)
    }
}
