//! `PurgeQueue`: the outbox of stored bytes to remove after deletions.

use async_trait::async_trait;

use roughy_app::ports::{Purge, PurgeQueue, RepoError};

use super::MemoryRepository;

#[async_trait]
impl PurgeQueue for MemoryRepository {
    async fn pending_purges(&self, limit: usize) -> Result<Vec<Purge>, RepoError> {
        Ok(self.state()?.purges.iter().take(limit).cloned().collect())
    }

    async fn purge_done(&self, purge: &Purge) -> Result<(), RepoError> {
        self.state()?.purges.retain(|p| p != purge);
        Ok(())
    }
}
