//! The processing queue: leased claims, settlement of the charge (once, ever), release.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use roughy_app::ports::{Job, JobOutcome, JobRepo, RepoError};
use roughy_domain::ids::random_base62;
use roughy_domain::{AssetState, EventKind};

use super::{conflict, JobLease, JobRow, MemoryRepository};

/// Length of a lease token: as unguessable as an id.
const LEASE_TOKEN_LEN: usize = 22;

impl JobRow {
    /// Whether `job` is the current claim of this row.
    fn leased_to(&self, job: &Job) -> bool {
        self.lease.as_ref().is_some_and(|l| l.token == job.lease)
    }
}

#[async_trait]
impl JobRepo for MemoryRepository {
    async fn claim_job(
        &self,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Option<Job>, RepoError> {
        let mut state = self.state()?;
        let state = &mut *state;
        // Oldest first by enqueue order. A job whose asset is missing cannot be processed;
        // the delete cascade removes both, so it is only skipped here.
        let claimable = state
            .jobs
            .iter_mut()
            .filter(|(_, job)| job.available_at <= now)
            .filter(|(_, job)| job.lease.as_ref().is_none_or(|l| l.until <= now))
            .filter_map(|(id, job)| {
                let asset = state.assets.get(id)?;
                let upload = state.uploads.get(&asset.upload_id)?;
                Some((job, asset, upload))
            })
            .min_by_key(|(job, _, _)| job.seq);
        let Some((row, asset, upload)) = claimable else {
            return Ok(None);
        };
        let token = random_base62(LEASE_TOKEN_LEN);
        let attempts = row.attempts;
        row.attempts = row.attempts.saturating_add(1);
        row.lease = Some(JobLease {
            token: token.clone(),
            until: now + lease,
        });
        Ok(Some(Job {
            asset: asset.clone(),
            upload: upload.clone(),
            attempts,
            lease: token,
        }))
    }

    async fn complete_job(
        &self,
        job: &Job,
        outcome: &JobOutcome,
        at: OffsetDateTime,
    ) -> Result<Option<AssetState>, RepoError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let asset_id = &job.asset.id;
        // Another worker took over after the lease ran out (or the asset was deleted and the
        // job with it): this claim settles nothing.
        if !state
            .jobs
            .get(asset_id)
            .is_some_and(|row| row.leased_to(job))
        {
            return Ok(None);
        }
        let Some(current) = state.assets.get(asset_id) else {
            state.jobs.remove(asset_id);
            return Ok(None);
        };

        // Transitions on a copy first: a refusal leaves the asset, balance and job untouched.
        let mut asset = current.clone();
        let mut charge_entry = None;
        match outcome {
            JobOutcome::Measured { duration, format } => {
                if state.charged.contains(asset_id) {
                    return Err(RepoError::Conflict(
                        format!("asset {asset_id} was already charged").into(),
                    ));
                }
                let balance = state
                    .accounts
                    .get(&asset.account_id)
                    .ok_or(RepoError::NotFound)?
                    .balance;
                charge_entry = asset
                    .settle_measured(*duration, *format, balance, at)
                    .map_err(conflict)?;
            }
            JobOutcome::Failed(failure) => asset.fail(failure.clone()).map_err(conflict)?,
        }

        if let Some(entry) = charge_entry {
            state.account_mut(&asset.account_id)?.post(entry);
            state.charged.insert(asset.id.clone());
        }
        state.jobs.remove(asset_id);
        let new_state = asset.state;
        if new_state == AssetState::Failed {
            state.failed_at.insert(asset.id.clone(), at);
        }
        if let Some(kind) = EventKind::for_state(new_state) {
            state.announce(kind, &asset, at);
        }
        state.assets.insert(asset.id.clone(), asset);
        Ok(Some(new_state))
    }

    async fn release_job(&self, job: &Job, retry_at: OffsetDateTime) -> Result<(), RepoError> {
        let mut state = self.state()?;
        // A stale claim gives back nothing: the job belongs to whoever holds it now.
        if let Some(row) = state
            .jobs
            .get_mut(&job.asset.id)
            .filter(|row| row.leased_to(job))
        {
            row.lease = None;
            row.available_at = retry_at;
        }
        Ok(())
    }

    async fn renew_job(&self, job: &Job, until: OffsetDateTime) -> Result<bool, RepoError> {
        let mut state = self.state()?;
        let Some(lease) = state
            .jobs
            .get_mut(&job.asset.id)
            .and_then(|row| row.lease.as_mut())
            .filter(|lease| lease.token == job.lease)
        else {
            return Ok(false);
        };
        lease.until = until;
        Ok(true)
    }
}
