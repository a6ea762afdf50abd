//! TUS uploads: lookup with tombstones, progress, finalisation (with the job), discarding,
//! expiry.

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use roughy_app::ports::{GoneReason, Purge, RepoError, UploadLookup, UploadRepo};
use roughy_domain::{AccountId, MediaFormat, Upload, UploadId, UploadState};

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

    async fn identify_upload(&self, id: &UploadId, format: MediaFormat) -> Result<(), RepoError> {
        let mut state = self.state()?;
        let asset_id = active(&mut state.uploads, id)?.asset_id.clone();
        let asset = state.assets.get_mut(&asset_id).ok_or(RepoError::NotFound)?;
        // A refused transition leaves the asset as it was, so it may run in place.
        asset.identify(format).map_err(conflict)
    }

    async fn record_progress(
        &self,
        id: &UploadId,
        offset: u64,
        expires_at: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let mut state = self.state()?;
        let upload = active(&mut state.uploads, id)?;
        if offset > upload.length.get() {
            return Err(RepoError::Conflict(format!(
                "offset {offset} is past the upload length {}",
                upload.length.get()
            )));
        }
        upload.offset = offset;
        upload.expires_at = expires_at;
        Ok(())
    }

    async fn finalize_upload(
        &self,
        id: &UploadId,
        size: u64,
        at: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let upload = active(&mut state.uploads, id)?;
        let asset = state
            .assets
            .get_mut(&upload.asset_id)
            .ok_or(RepoError::NotFound)?;
        asset.finish_upload(size).map_err(conflict)?;
        upload.state = UploadState::Completed;
        upload.offset = upload.length.get();
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
    ) -> Result<Option<Purge>, RepoError> {
        let mut state = self.state()?;
        let Ok(upload) = active(&mut state.uploads, id) else {
            return Ok(None);
        };
        // The reaper listed it as expired earlier; a PATCH may have refreshed it since.
        if expired_before.is_some_and(|before| upload.expires_at >= before) {
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
            .filter(|u| u.state == UploadState::Active && u.expires_at < now)
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
