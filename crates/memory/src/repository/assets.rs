//! Assets: create (with the upload), read, list, delete.

use async_trait::async_trait;
use time::OffsetDateTime;

use roughy_app::ports::{AssetFilter, AssetRepo, GoneReason, Purge, RepoError};
use roughy_app::{Page, PageRequest};
use roughy_domain::{AccountId, Asset, AssetId, AssetState, Upload};

use super::{newest_first, MemoryRepository};

#[async_trait]
impl AssetRepo for MemoryRepository {
    async fn create_asset(
        &self,
        asset: &Asset,
        upload: &Upload,
        max_pending: u32,
    ) -> Result<(), RepoError> {
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
            return Err(RepoError::Conflict(
                format!("upload {} does not belong to asset {}", upload.id, asset.id).into(),
            ));
        }
        // A tombstoned upload id stays taken: it must keep answering 410.
        if state.assets.contains_key(&asset.id)
            || state.uploads.contains_key(&upload.id)
            || state.tombstones.contains_key(&upload.id)
        {
            return Err(RepoError::Conflict(
                format!("asset {} or upload {} already exists", asset.id, upload.id).into(),
            ));
        }
        let pending = state
            .assets
            .values()
            .filter(|a| a.account_id == asset.account_id && a.state == AssetState::PendingUpload)
            .count();
        if pending >= usize::try_from(max_pending).unwrap_or(usize::MAX) {
            return Err(RepoError::TooManyPending);
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

    async fn release_failed_bytes(
        &self,
        failed_before: OffsetDateTime,
        _at: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Purge>, RepoError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let mut due: Vec<(OffsetDateTime, AssetId)> = state
            .failed_at
            .iter()
            .filter(|(_, failed)| **failed < failed_before)
            .map(|(id, failed)| (*failed, id.clone()))
            .collect();
        due.sort_unstable();
        due.truncate(limit);
        let mut purges = Vec::with_capacity(due.len());
        for (_, id) in due {
            state.failed_at.remove(&id);
            let Some(asset) = state.assets.get(&id) else {
                continue;
            };
            let staging = state
                .uploads
                .get(&asset.upload_id)
                .map(|u| u.staging.clone())
                .unwrap_or_default();
            let purge = Purge {
                asset_id: id,
                upload_id: asset.upload_id.clone(),
                staging,
            };
            // Recorded with the release, as a database transaction would.
            state.purges.push(purge.clone());
            purges.push(purge);
        }
        Ok(purges)
    }
}
