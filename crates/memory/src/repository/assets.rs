//! Assets: create (with the upload), read, list, delete.

use async_trait::async_trait;
use time::OffsetDateTime;

use roughy_app::ports::{AssetFilter, AssetRepo, GoneReason, Purge, RepoError};
use roughy_app::{Page, PageRequest};
use roughy_domain::{AccountId, Asset, AssetId, Upload};

use super::{newest_first, MemoryRepository};

#[async_trait]
impl AssetRepo for MemoryRepository {
    async fn create_asset(&self, asset: &Asset, upload: &Upload) -> Result<(), RepoError> {
        let mut state = self.state()?;
        let project_is_the_accounts = state
            .projects
            .get(&asset.project_id)
            .is_some_and(|p| p.account_id == asset.account_id);
        if !project_is_the_accounts {
            return Err(RepoError::NotFound);
        }
        if upload.id != asset.upload_id
            || upload.asset_id != asset.id
            || upload.account_id != asset.account_id
        {
            return Err(RepoError::Conflict(format!(
                "upload {} does not belong to asset {}",
                upload.id, asset.id
            )));
        }
        // A tombstoned upload id stays taken: it must keep answering 410.
        if state.assets.contains_key(&asset.id)
            || state.uploads.contains_key(&upload.id)
            || state.tombstones.contains_key(&upload.id)
        {
            return Err(RepoError::Conflict(format!(
                "asset {} or upload {} already exists",
                asset.id, upload.id
            )));
        }
        state.assets.insert(asset.id.clone(), asset.clone());
        state.uploads.insert(upload.id.clone(), upload.clone());
        Ok(())
    }

    async fn get_asset(
        &self,
        account: &AccountId,
        id: &AssetId,
    ) -> Result<Option<Asset>, RepoError> {
        let state = self.state()?;
        Ok(state
            .assets
            .get(id)
            .filter(|a| &a.account_id == account)
            .cloned())
    }

    async fn list_assets(
        &self,
        account: &AccountId,
        filter: &AssetFilter,
        page: &PageRequest,
    ) -> Result<Page<Asset>, RepoError> {
        let state = self.state()?;
        let matching = state.assets.values().filter(|a| {
            &a.account_id == account
                && filter
                    .project_id
                    .as_ref()
                    .is_none_or(|p| &a.project_id == p)
                && filter.state.is_none_or(|s| a.state == s)
        });
        Ok(newest_first(matching, page, |a| {
            (a.created_at, a.id.as_str())
        }))
    }

    async fn delete_asset(
        &self,
        account: &AccountId,
        id: &AssetId,
        at: OffsetDateTime,
    ) -> Result<Option<Purge>, RepoError> {
        let mut state = self.state()?;
        let is_callers = state
            .assets
            .get(id)
            .is_some_and(|a| &a.account_id == account);
        if !is_callers {
            return Ok(None);
        }
        Ok(state.remove_asset(id, GoneReason::AssetDeleted, at))
    }
}
