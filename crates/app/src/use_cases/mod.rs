//! The use cases, one file per concern, all methods of [`Ingest`].

mod accounts;
mod assets;
mod idempotency;
mod processing;
mod projects;
mod reaper;
mod uploads;
mod webhooks;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use time::Duration;

use crate::clock::Clock;
use crate::error::IngestError;
use crate::ports::{
    AccountRepo, AssetRepo, BlobStore, DownloadLinks, EventEncoder, IdempotencyKeys, JobRepo,
    JobSignal, MediaInspector, Metrics, ProjectRepo, PurgeQueue, UploadLocks, UploadRepo,
    UploadSink, WebhookRepo, WebhookTransport,
};

pub use crate::ports::AssetFilter;
pub use accounts::MintedKey;
pub use assets::CreateAsset;
pub use idempotency::KeyedRequest;
pub use uploads::UploadView;

/// Tunables of the use cases.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// How long an idle upload lives (each successful PATCH refreshes it).
    pub upload_ttl: Duration,
    /// How long a download link is valid.
    pub download_ttl: Duration,
    /// How long a processing job is leased to a worker before another may take it.
    pub job_lease: Duration,
    /// How long to wait before the first retry of a job after a transient failure; each
    /// further retry waits twice as long, up to `job_retry_max_delay`.
    pub job_retry_delay: Duration,
    /// The longest wait between two attempts of a job.
    pub job_retry_max_delay: Duration,
    /// How many times a job is attempted (claims, including ones whose worker died) before
    /// its asset ends `failed` with `processing_failed`.
    pub job_max_attempts: u32,
    /// How many uploads an account may have pending (created, not yet complete) at once.
    pub max_pending_uploads: u32,
    /// How long the stored bytes of a `failed` asset are kept before they are purged (the
    /// asset and its error stay).
    pub failed_retention: Duration,
    /// How long a webhook delivery waits before its first retry; each further retry waits
    /// twice as long, up to an hour, for 24 hours after the event.
    pub webhook_retry_delay: Duration,
    /// How long a claimed webhook delivery is left to its worker before another may send it
    /// (longer than the transport's timeout).
    pub webhook_lease: Duration,
    /// How long finished webhook deliveries stay listable.
    pub delivery_retention: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            upload_ttl: roughy_domain::tus::DEFAULT_UPLOAD_TTL,
            download_ttl: Duration::seconds(300),
            job_lease: Duration::minutes(10),
            job_retry_delay: Duration::seconds(5),
            job_retry_max_delay: Duration::hours(1),
            job_max_attempts: 8,
            max_pending_uploads: 100,
            failed_retention: Duration::days(7),
            webhook_retry_delay: Duration::seconds(30),
            webhook_lease: Duration::seconds(60),
            delivery_retention: Duration::days(30),
        }
    }
}

/// Every adapter the use cases need.
#[derive(Clone)]
pub struct IngestPorts {
    /// Accounts, keys, ledger.
    pub accounts: Arc<dyn AccountRepo>,
    /// Projects.
    pub projects: Arc<dyn ProjectRepo>,
    /// Assets.
    pub assets: Arc<dyn AssetRepo>,
    /// Uploads.
    pub uploads: Arc<dyn UploadRepo>,
    /// Processing jobs.
    pub jobs: Arc<dyn JobRepo>,
    /// The purge outbox.
    pub purges: Arc<dyn PurgeQueue>,
    /// Idempotency keys of creates.
    pub idempotency: Arc<dyn IdempotencyKeys>,
    /// Webhook endpoints and their delivery outbox.
    pub webhooks: Arc<dyn WebhookRepo>,
    /// POSTs webhook deliveries.
    pub webhook_transport: Arc<dyn WebhookTransport>,
    /// The body of a webhook event.
    pub event_encoder: Arc<dyn EventEncoder>,
    /// Per-upload write locks.
    pub locks: Arc<dyn UploadLocks>,
    /// Upload bytes.
    pub sink: Arc<dyn UploadSink>,
    /// Finished objects.
    pub blobs: Arc<dyn BlobStore>,
    /// Sniffing and probing.
    pub media: Arc<dyn MediaInspector>,
    /// Signed download links.
    pub links: Arc<dyn DownloadLinks>,
    /// Wakes processing workers.
    pub job_signal: Arc<dyn JobSignal>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Where events are counted (`NoMetrics` when metrics are off).
    pub metrics: Arc<dyn Metrics>,
}

impl std::fmt::Debug for IngestPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestPorts").finish_non_exhaustive()
    }
}

/// The application: every use case, over its ports.
#[derive(Clone)]
pub struct Ingest {
    ports: IngestPorts,
    config: IngestConfig,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Ingest {
    /// Wires the use cases.
    pub fn new(ports: IngestPorts, config: IngestConfig) -> Self {
        Self { ports, config }
    }

    /// Deletes the stored bytes of deleted rows, then marks the outbox entry done. A failure
    /// is logged and left in the outbox, for the reaper to retry.
    async fn purge(&self, purge: &crate::ports::Purge) {
        let staged = self
            .ports
            .blobs
            .abort_upload(&purge.upload_id, &purge.staging)
            .await;
        let object = self.ports.blobs.delete_object(&purge.asset_id).await;
        match (staged, object) {
            (Ok(()), Ok(())) => {
                if let Err(e) = self.ports.purges.purge_done(purge).await {
                    tracing::warn!(asset = %purge.asset_id, error = %e, "bytes purged but the outbox entry stays; it will be retried");
                }
            }
            (staged, object) => {
                tracing::warn!(asset = %purge.asset_id, staged = ?staged.err(), object = ?object.err(), "failed to purge stored bytes; the reaper retries");
            }
        }
    }

    /// Purges the bytes of a deleted asset once no request writes to its upload any more: a
    /// PATCH still streaming would stage bytes after the purge, so it is asked to stop (it then
    /// finds the upload gone) through the upload's lock first. If it does not let go within
    /// the lock's wait, the purge stays in the outbox for the reaper.
    async fn purge_after_writer(&self, purge: &crate::ports::Purge) {
        match self.ports.locks.acquire(&purge.upload_id).await {
            Ok(lease) => {
                self.purge(purge).await;
                lease.release().await;
            }
            Err(e) => {
                tracing::warn!(asset = %purge.asset_id, error = %e, "deleted asset's upload still held; its bytes are purged later");
            }
        }
    }

    /// Retries purges left in the outbox (after a crash or a storage failure). Returns how
    /// many were completed.
    ///
    /// # Errors
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise (listing the outbox); a purge that fails again stays in the outbox.
    pub async fn retry_purges(&self) -> Result<usize, IngestError> {
        let pending = self.ports.purges.pending_purges(100).await?;
        let mut done = 0;
        for purge in &pending {
            if self
                .ports
                .blobs
                .abort_upload(&purge.upload_id, &purge.staging)
                .await
                .is_ok()
                && self
                    .ports
                    .blobs
                    .delete_object(&purge.asset_id)
                    .await
                    .is_ok()
            {
                self.ports.purges.purge_done(purge).await?;
                done += 1;
            }
        }
        Ok(done)
    }
}
