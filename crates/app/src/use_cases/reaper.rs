//! Reaping: pending uploads idle past their expiry, and tombstones past their keep time.

use time::OffsetDateTime;

use super::Ingest;
use crate::error::IngestError;
use crate::ports::{GoneReason, UploadEvent};

impl Ingest {
    /// Deletes pending uploads idle past `Upload-Expires` (asset row and bytes), leaving
    /// tombstones; forgets tombstones older than twice the upload TTL; purges the stored bytes
    /// of assets that failed longer ago than the failed-bytes retention; forgets expired
    /// idempotency keys and finished webhook deliveries past their retention.
    /// Returns how many uploads were reaped.
    ///
    /// # Errors
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise; an upload being written to is left for the next sweep.
    pub async fn reap_expired_uploads(&self) -> Result<usize, IngestError> {
        let now = self.ports.clock.now();
        let mut reaped = 0;
        loop {
            let expired = self.ports.uploads.expired_uploads(now, 100).await?;
            if expired.is_empty() {
                break;
            }
            let batch = expired.len();
            let reaped_before = reaped;
            for id in expired {
                // An upload whose PATCH is still streaming is not idle, whatever its expiry
                // says (the PATCH refreshes it when it ends): only a free lock is taken, and
                // the holder is never asked to stop.
                let Some(lease) = self.ports.locks.try_acquire(&id).await? else {
                    tracing::debug!(upload = %id, "expired upload is being written to; left alone");
                    continue;
                };
                // Re-checked atomically: a PATCH may have refreshed the expiry meanwhile.
                let purge = self
                    .ports
                    .uploads
                    .discard_upload(&id, GoneReason::Expired, Some(now), now, &lease.fence())
                    .await;
                lease.release().await;
                let purge = purge?;
                if let Some(purge) = purge {
                    self.purge(&purge).await;
                    reaped += 1;
                }
            }
            // A full batch of uploads left alone (being written, or refreshed) would be listed
            // again: stop, the next round looks again.
            if batch < 100 || reaped == reaped_before {
                break;
            }
        }
        let keep = self.config.upload_ttl.saturating_mul(2);
        self.ports
            .uploads
            .prune_tombstones(now.checked_sub(keep).unwrap_or(OffsetDateTime::UNIX_EPOCH))
            .await?;
        // Bytes of assets that failed longer ago than the retention (the assets stay).
        let failed_before = now
            .checked_sub(self.config.failed_retention)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        loop {
            let released = self
                .ports
                .assets
                .release_failed_bytes(failed_before, now, 100)
                .await?;
            for purge in &released {
                self.purge(purge).await;
            }
            if !released.is_empty() {
                tracing::info!(
                    count = released.len(),
                    "stored bytes of failed assets past their retention purged"
                );
            }
            if released.len() < 100 {
                break;
            }
        }
        // Stored bytes whose purge failed or was cut short by a crash.
        self.retry_purges().await?;
        // Idempotency keys past their 24 hours.
        let forgotten = self.ports.idempotency.purge_expired_keys(now).await?;
        if forgotten > 0 {
            tracing::debug!(forgotten, "expired idempotency keys forgotten");
        }
        // Finished webhook deliveries past their listing retention.
        self.prune_deliveries(
            now.checked_sub(self.config.delivery_retention)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
        .await?;
        if reaped > 0 {
            self.ports.metrics.upload(
                UploadEvent::Reaped,
                u64::try_from(reaped).unwrap_or(u64::MAX),
            );
            tracing::info!(reaped, "expired uploads reaped");
        }
        Ok(reaped)
    }
}
