//! Accounts, API keys, top-ups and the credit ledger.

use async_trait::async_trait;
use time::OffsetDateTime;

use roughy_app::ports::{AccountRepo, RepoError, TopUpOutcome};
use roughy_app::{Page, PageRequest};
use roughy_domain::billing::{activation_plan, posted_at};
use roughy_domain::{
    Account, AccountId, ApiKey, ApiKeyId, AssetState, Credits, EventKind, KeyHash, LedgerEntry,
};

use super::{conflict, newest_first, AccountRow, KeyRow, MemoryRepository};

#[async_trait]
impl AccountRepo for MemoryRepository {
    async fn create_account(&self, account: &Account) -> Result<(), RepoError> {
        let mut state = self.state()?;
        if state.accounts.contains_key(&account.id) {
            return Err(RepoError::Conflict(
                format!("account {} already exists", account.id).into(),
            ));
        }
        state
            .accounts
            .insert(account.id.clone(), AccountRow::new(account.clone()));
        Ok(())
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, RepoError> {
        Ok(self
            .state()?
            .accounts
            .get(id)
            .map(|row| row.account.clone()))
    }

    async fn create_api_key(&self, key: &ApiKey) -> Result<(), RepoError> {
        let mut state = self.state()?;
        if !state.accounts.contains_key(&key.account_id) {
            return Err(RepoError::NotFound);
        }
        if state.keys.contains_key(&key.id) || state.key_by_hash.contains_key(&key.hash) {
            return Err(RepoError::Conflict(
                format!("api key {} already exists", key.id).into(),
            ));
        }
        state.key_by_hash.insert(key.hash.clone(), key.id.clone());
        state.keys.insert(
            key.id.clone(),
            KeyRow {
                key: key.clone(),
                revoked: false,
            },
        );
        Ok(())
    }

    async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<bool, RepoError> {
        let mut state = self.state()?;
        match state.keys.get_mut(id) {
            Some(row) if !row.revoked => {
                row.revoked = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn account_for_key(&self, hash: &KeyHash) -> Result<Option<AccountId>, RepoError> {
        let state = self.state()?;
        let account = state
            .key_by_hash
            .get(hash)
            .and_then(|id| state.keys.get(id))
            .filter(|row| !row.revoked)
            .map(|row| row.key.account_id.clone());
        Ok(account)
    }

    async fn balance(&self, account: &AccountId) -> Result<Credits, RepoError> {
        let state = self.state()?;
        let row = state.accounts.get(account).ok_or(RepoError::NotFound)?;
        Ok(row.balance)
    }

    async fn top_up(
        &self,
        account: &AccountId,
        credits: Credits,
        at: OffsetDateTime,
    ) -> Result<TopUpOutcome, RepoError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let row = state.accounts.get_mut(account).ok_or(RepoError::NotFound)?;
        let credited = row
            .balance
            .checked_add(credits)
            .ok_or_else(|| RepoError::Conflict("the balance would overflow".into()))?;

        // Waiting assets, oldest first, each with its charge. One already charged is never
        // offered again (it cannot be pending_payment, but a charge happens once, ever).
        let mut pending: Vec<_> = state
            .assets
            .values()
            .filter(|a| &a.account_id == account && a.state == AssetState::PendingPayment)
            .filter(|a| !state.charged.contains(&a.id))
            .filter_map(|a| {
                a.charge()
                    .map(|charge| (a.created_at, a.id.clone(), charge))
            })
            .collect();
        pending.sort_unstable();
        let plan = activation_plan(
            credited,
            pending.into_iter().map(|(_, id, charge)| (id, charge)),
        );

        // Every transition first, on copies: a refusal must leave the top-up undone too.
        let mut activated = Vec::with_capacity(plan.len());
        for (id, charge, balance_after) in plan {
            let mut asset = state.assets.get(&id).cloned().ok_or(RepoError::NotFound)?;
            asset.activate().map_err(conflict)?;
            activated.push((asset, charge, balance_after));
        }

        let entry = LedgerEntry::top_up(account.clone(), credits, credited, at);
        row.post(entry.clone());
        let mut activated_ids = Vec::with_capacity(activated.len());
        let charged = activated.iter().map(|(_, charge, _)| *charge).sum();
        for (n, (asset, charge, balance_after)) in activated.into_iter().enumerate() {
            row.post(LedgerEntry::charge(
                account.clone(),
                asset.id.clone(),
                charge,
                balance_after,
                posted_at(at, n + 1),
            ));
            state.charged.insert(asset.id.clone());
            activated_ids.push(asset.id.clone());
            state.assets.insert(asset.id.clone(), asset);
        }
        for id in &activated_ids {
            if let Some(asset) = state.assets.get(id).cloned() {
                state.announce(EventKind::AssetReady, &asset, at);
            }
        }
        Ok(TopUpOutcome {
            entry,
            activated: activated_ids,
            charged,
        })
    }

    async fn list_ledger(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<LedgerEntry>, RepoError> {
        let state = self.state()?;
        let Some(row) = state.accounts.get(account) else {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        Ok(newest_first(&row.ledger, page, |e| {
            (e.created_at, e.id.as_str())
        }))
    }
}
