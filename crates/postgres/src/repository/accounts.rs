//! Accounts, API keys, top-ups (with activations) and the credit ledger.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::OffsetDateTime;

use roughy_app::ports::{AccountRepo, RepoError, TopUpOutcome};
use roughy_app::{Cursor, Page, PageRequest};
use roughy_domain::billing::{activation_plan, posted_at};
use roughy_domain::{
    Account, AccountId, ApiKey, ApiKeyId, Asset, AssetState, Credits, EventKind, KeyHash,
    LedgerEntry,
};

use super::PgRepository;
use crate::error::{conflict, db_error, StoreError};
use crate::rows::{
    stored_id, AccountRow, AssetChanges, AssetRow, LedgerRow, NewAccount, NewApiKey,
};
use crate::schema::{accounts, api_keys, assets, ledger_entries};

#[async_trait]
impl AccountRepo for PgRepository {
    #[tracing::instrument(skip_all, fields(account = %account.id))]
    async fn create_account(&self, account: &Account) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        diesel::insert_into(accounts::table)
            .values(NewAccount {
                id: account.id.as_str(),
                name: account.name.as_deref(),
                balance: 0,
                created_at: account.created_at,
            })
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(account = %id))]
    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, RepoError> {
        let mut conn = self.conn().await?;
        accounts::table
            .find(id.as_str())
            .select(AccountRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?
            .map(Account::try_from)
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(key = %key.id, account = %key.account_id))]
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        // A missing account is a foreign key violation, translated to `NotFound`.
        diesel::insert_into(api_keys::table)
            .values(NewApiKey {
                id: key.id.as_str(),
                account_id: key.account_id.as_str(),
                hash: key.hash.as_str(),
                created_at: key.created_at,
            })
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(key = %id))]
    async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<bool, RepoError> {
        let mut conn = self.conn().await?;
        // The port carries no instant: the database's clock dates the revocation.
        let revoked = diesel::update(
            api_keys::table
                .find(id.as_str())
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(diesel::dsl::now))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(revoked > 0)
    }

    #[tracing::instrument(skip_all)]
    async fn account_for_key(&self, hash: &KeyHash) -> Result<Option<AccountId>, RepoError> {
        let mut conn = self.conn().await?;
        let account: Option<String> = api_keys::table
            .filter(api_keys::hash.eq(hash.as_str()))
            .filter(api_keys::revoked_at.is_null())
            .select(api_keys::account_id)
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        account.map(|a| stored_id!(AccountId, a)).transpose()
    }

    #[tracing::instrument(skip_all, fields(account = %account))]
    async fn balance(&self, account: &AccountId) -> Result<Credits, RepoError> {
        let mut conn = self.conn().await?;
        accounts::table
            .find(account.as_str())
            .select(accounts::balance)
            .first(&mut conn)
            .await
            .map_err(db_error)
    }

    #[tracing::instrument(skip_all, fields(account = %account, credits))]
    async fn top_up(
        &self,
        account: &AccountId,
        credits: Credits,
        at: OffsetDateTime,
    ) -> Result<TopUpOutcome, RepoError> {
        let mut conn = self.conn().await?;
        let outcome = conn
            .transaction::<_, StoreError, _>(async |conn| {
                // The account row is the lock that serialises every balance change.
                let balance: Option<i64> = accounts::table
                    .find(account.as_str())
                    .select(accounts::balance)
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                let balance = balance.ok_or(RepoError::NotFound)?;
                let credited = balance
                    .checked_add(credits)
                    .ok_or_else(|| RepoError::Conflict("the balance would overflow".into()))?;

                // Waiting assets, oldest first. One already charged is never offered again (it
                // cannot be pending_payment, but a charge happens once, ever).
                let charged = ledger_entries::table
                    .filter(ledger_entries::kind.eq("asset_charge"))
                    .filter(ledger_entries::asset_id.eq(assets::id.nullable()));
                let rows: Vec<AssetRow> = assets::table
                    .filter(assets::account_id.eq(account.as_str()))
                    .filter(assets::state.eq(AssetState::PendingPayment.as_str()))
                    .filter(diesel::dsl::not(diesel::dsl::exists(charged)))
                    .order((assets::created_at.asc(), assets::id.asc()))
                    .select(AssetRow::as_select())
                    .for_update()
                    .load(conn)
                    .await?;
                let mut waiting = Vec::with_capacity(rows.len());
                for row in rows {
                    waiting.push(Asset::try_from(row)?);
                }
                let plan = activation_plan(
                    credited,
                    waiting
                        .iter()
                        .filter_map(|a| a.charge().map(|charge| (a.id.clone(), charge))),
                );

                let entry = LedgerEntry::top_up(account.clone(), credits, credited, at);
                let mut entries = vec![LedgerRow::from(&entry)];
                let mut activated = Vec::with_capacity(plan.len());
                let mut balance_after = credited;
                for (n, (id, charge, after)) in plan.into_iter().enumerate() {
                    let mut asset = waiting
                        .iter()
                        .find(|a| a.id == id)
                        .cloned()
                        .ok_or(RepoError::NotFound)?;
                    asset.activate().map_err(conflict)?;
                    diesel::update(assets::table.find(asset.id.as_str()))
                        .set(AssetChanges::try_from(&asset)?)
                        .execute(conn)
                        .await?;
                    entries.push(LedgerRow::from(&LedgerEntry::charge(
                        account.clone(),
                        asset.id.clone(),
                        charge,
                        after,
                        // One microsecond apart after the top-up: newest first reads them in
                        // posting order, each `balance_after` a running balance.
                        posted_at(at, n + 1),
                    )));
                    balance_after = after;
                    activated.push(asset);
                }
                super::webhooks::announce(conn, EventKind::AssetReady, &activated, at).await?;
                let activated = activated.into_iter().map(|a| a.id).collect();
                diesel::insert_into(ledger_entries::table)
                    .values(&entries)
                    .execute(conn)
                    .await?;
                diesel::update(accounts::table.find(account.as_str()))
                    .set(accounts::balance.eq(balance_after))
                    .execute(conn)
                    .await?;
                Ok(TopUpOutcome {
                    entry,
                    activated,
                    charged: credited - balance_after,
                })
            })
            .await?;
        Ok(outcome)
    }

    #[tracing::instrument(skip_all, fields(account = %account, limit = page.limit))]
    async fn list_ledger(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<LedgerEntry>, RepoError> {
        let mut conn = self.conn().await?;
        let mut query = ledger_entries::table
            .filter(ledger_entries::account_id.eq(account.as_str()))
            .select(LedgerRow::as_select())
            .order((ledger_entries::created_at.desc(), ledger_entries::id.desc()))
            .limit(crate::rows::overfetch(page.limit))
            .into_boxed();
        if let Some(cursor) = &page.cursor {
            query = query.filter(
                ledger_entries::created_at
                    .lt(cursor.created_at)
                    .or(ledger_entries::created_at
                        .eq(cursor.created_at)
                        .and(ledger_entries::id.lt(cursor.id.as_str()))),
            );
        }
        let rows = query.load(&mut conn).await.map_err(db_error)?;
        let entries = rows
            .into_iter()
            .map(LedgerEntry::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(entries, page.limit, |e| Cursor {
            created_at: e.created_at,
            id: e.id.as_str().to_owned(),
        }))
    }
}
