//! TUS uploads: lookup with tombstones, progress, finalisation (with the job), discarding,
//! expiry.

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use roughy_app::ports::{GoneReason, Purge, RepoError, UploadFence, UploadLookup, UploadRepo};
use roughy_domain::{AccountId, MediaFormat, Staging, Upload, UploadId, UploadState};

use super::{conflict, JobRow, MemoryRepository};

/// The upload, if it is still taking bytes. (Over the map, not the whole state, so the
/// asset can be borrowed beside it.)
fn active<'a>(
    uploads: &'a mut HashMap<UploadId, Upload>,
    id: &UploadId,
) -> Result<&'a mut Upload, RepoError> {
    uploads
        .get_mut(id)
        .filter(|u| u.state == UploadState::Active)
        .ok_or(RepoError::NotFound)
}

#[async_trait]
impl UploadRepo for MemoryRepository {
    async fn upload_owner(&self, id: &UploadId) -> Result<Option<AccountId>, RepoError> {
        let state = self.state()?;
        Ok(state
            .uploads
            .get(id)
            .map(|u| u.account_id.clone())
            .or_else(|| state.tombstones.get(id).map(|t| t.account_id.clone())))
    }

    async fn find_upload(
        &self,
        account: &AccountId,
        id: &UploadId,
    ) -> Result<UploadLookup, RepoError> {
        let state = self.state()?;
        if let Some(upload) = state.uploads.get(id).filter(|u| &u.account_id == account) {
            return Ok(UploadLookup::Live(upload.clone()));
        }
        // Another account's tombstone answers as never issued: existence never leaks.
        Ok(match state.tombstones.get(id) {
            Some(t) if &t.account_id == account => UploadLookup::Gone(t.reason),
            _ => UploadLookup::Unknown,
        })
    }

    async fn identify_upload(
        &self,
        id: &UploadId,
        format: MediaFormat,
        staging: &Staging,
        fence: &UploadFence,
    ) -> Result<(), RepoError> {
        let mut state = self.state()?;
        self.fenced(id, fence)?;
        let state = &mut *state;
        let upload = active(&mut state.uploads, id)?;
        let asset = state
            .assets
            .get_mut(&upload.asset_id)
            .ok_or(RepoError::NotFound)?;
        // Both transitions on copies, written only when both succeeded.
        let mut staged = upload.clone();
        staged.stage(staging.clone()).map_err(conflict)?;
        let mut identified = asset.clone();
        identified.identify(format).map_err(conflict)?;
        *upload = staged;
        *asset = identified;
        Ok(())
    }

    async fn record_progress(
        &self,
        id: &UploadId,
        offset: u64,
        staging: &Staging,
        expires_at: OffsetDateTime,
        identified: Option<MediaFormat>,
        fence: &UploadFence,
    ) -> Result<(), RepoError> {
        let mut state = self.state()?;
        self.fenced(id, fence)?;
        let state = &mut *state;
        let upload = active(&mut state.uploads, id)?;
        // Both transitions on copies, written only when both succeeded.
        let mut advanced = upload.clone();
        advanced
            .advance(offset, staging.clone(), expires_at)
            .map_err(conflict)?;
        if let Some(format) = identified {
            let asset = state
                .assets
                .get_mut(&upload.asset_id)
                .ok_or(RepoError::NotFound)?;
            asset.identify(format).map_err(conflict)?;
        }
        *upload = advanced;
        Ok(())
    }

    async fn finalize_upload(
        &self,
        id: &UploadId,
        staging: &Staging,
        identified: Option<MediaFormat>,
        at: OffsetDateTime,
        fence: &UploadFence,
    ) -> Result<(), RepoError> {
        let mut state = self.state()?;
        self.fenced(id, fence)?;
        let state = &mut *state;
        let upload = active(&mut state.uploads, id)?;
        let asset = state
            .assets
            .get_mut(&upload.asset_id)
            .ok_or(RepoError::NotFound)?;
        let mut completed = upload.clone();
        completed.complete(staging.clone()).map_err(conflict)?;
        let mut finished = asset.clone();
        if let Some(format) = identified {
            finished.identify(format).map_err(conflict)?;
        }
        finished
            .finish_upload(completed.length.get())
            .map_err(conflict)?;
        *upload = completed;
        *asset = finished;
        let seq = state.next_job_seq;
        state.next_job_seq += 1;
        state.jobs.insert(
            asset.id.clone(),
            JobRow {
                seq,
                available_at: at,
                lease: None,
                attempts: 0,
            },
        );
        Ok(())
    }

    async fn discard_upload(
        &self,
        id: &UploadId,
        reason: GoneReason,
        expired_before: Option<OffsetDateTime>,
        at: OffsetDateTime,
        fence: &UploadFence,
    ) -> Result<Option<Purge>, RepoError> {
        let mut state = self.state()?;
        self.fenced(id, fence)?;
        let Ok(upload) = active(&mut state.uploads, id) else {
            return Ok(None);
        };
        // The reaper listed it as expired earlier; a PATCH may have refreshed it since.
        if expired_before.is_some_and(|before| !upload.expired_before(before)) {
            return Ok(None);
        }
        let asset_id = upload.asset_id.clone();
        Ok(state.remove_asset(&asset_id, reason, at))
    }

    async fn expired_uploads(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<UploadId>, RepoError> {
        let state = self.state()?;
        let mut expired: Vec<&Upload> = state
            .uploads
            .values()
            .filter(|u| u.expired_before(now))
            .collect();
        // Longest expired first, so a limited batch is deterministic.
        expired.sort_unstable_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)));
        Ok(expired
            .into_iter()
            .take(limit)
            .map(|u| u.id.clone())
            .collect())
    }

    async fn prune_tombstones(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut state = self.state()?;
        let count = state.tombstones.len();
        state.tombstones.retain(|_, t| t.at >= before);
        Ok((count - state.tombstones.len()) as u64)
    }
}
