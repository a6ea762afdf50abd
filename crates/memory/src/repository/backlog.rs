//! `BacklogProbe`: what waits in the in-memory state.

use async_trait::async_trait;

use roughy_app::ports::{Backlog, BacklogProbe, PoolStats, RepoError};
use roughy_domain::UploadState;

use super::MemoryRepository;

#[async_trait]
impl BacklogProbe for MemoryRepository {
    async fn backlog(&self) -> Result<Backlog, RepoError> {
        let state = self.state()?;
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Ok(Backlog {
            active_uploads: count(
                state
                    .uploads
                    .values()
                    .filter(|u| u.state == UploadState::Active)
                    .count(),
            ),
            queued_jobs: count(state.jobs.len()),
            oldest_job_at: state.jobs.values().map(|j| j.available_at).min(),
            pending_purges: count(state.purges.len()),
            pending_deliveries: count(state.pending_deliveries()),
        })
    }

    fn pool(&self) -> Option<PoolStats> {
        None
    }
}
