//! Locks: one writer per upload across processes, with fencing.

use async_trait::async_trait;
use futures::future::BoxFuture;
use thiserror::Error;

use roughy_domain::UploadId;

#[cfg(test)]
use mockall::automock;

/// Why a lock was not granted.
#[derive(Debug, Error)]
pub enum LockError {
    /// The holder did not release within the wait.
    #[error("the upload is locked by another request")]
    Locked,
    /// The lock service failed.
    #[error("lock service unavailable: {0}")]
    Unavailable(String),
}

/// Names one holding of an upload's lock: which holder, which of its leases. Writes under the
/// lock carry it (see [`UploadRepo`](super::UploadRepo)), so a store can refuse a writer that lost the lock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UploadFence {
    /// The lock service's name for the holding process.
    pub holder: String,
    /// Numbers the holder's leases: with `holder`, names this one.
    pub generation: i64,
}

/// A held upload lock. Dropping it releases the lock.
pub trait UploadLease: Send + Sync {
    /// This holding's fence, to pass with every write made under it.
    fn fence(&self) -> UploadFence;

    /// Resolves when another request has asked for this upload: the holder should stop
    /// reading, keep what it stored, and drop the lease.
    fn stop_requested(&self) -> BoxFuture<'static, ()>;

    /// Releases the lock and resolves once another request can take it (dropping the lease
    /// releases too, but possibly later: a client's next request would wait for it).
    fn release(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// One writer per upload at a time, with release requests (as tusd does).
#[cfg_attr(test, automock)]
#[async_trait]
pub trait UploadLocks: Send + Sync {
    /// Takes the upload's lock. If it is held, asks the holder to stop and waits for it to
    /// release. MUST return `LockError::Locked` if the holder keeps it past the wait.
    async fn acquire(&self, id: &UploadId) -> Result<Box<dyn UploadLease>, LockError>;

    /// Takes the upload's lock only if nobody holds it (or its holder died), without asking a
    /// holder to stop: `None` while a request is writing to the upload (the reaper leaves such
    /// an upload alone).
    async fn try_acquire(&self, id: &UploadId) -> Result<Option<Box<dyn UploadLease>>, LockError>;
}
