//! Reaping: pending uploads idle past their expiry, and tombstones past their keep time.

use super::Ingest;
use crate::error::IngestError;
use crate::ports::GoneReason;

impl Ingest {
    /// Deletes pending uploads idle past `Upload-Expires` (asset row and bytes), leaving
    /// tombstones, and forgets tombstones older than twice the upload TTL.
    /// Returns how many uploads were reaped.
    pub async fn reap_expired_uploads(&self) -> Result<usize, IngestError> {
        let now = self.ports.clock.now();
        let mut reaped = 0;
        loop {
            let expired = self.ports.uploads.expired_uploads(now, 100).await?;
            if expired.is_empty() {
                break;
            }
            let batch = expired.len();
            for id in expired {
                // Re-checked atomically: a PATCH may have refreshed the expiry meanwhile.
                let purge = self
                    .ports
                    .uploads
                    .discard_upload(&id, GoneReason::Expired, Some(now), now)
                    .await?;
                if let Some(purge) = purge {
                    self.purge(&purge).await;
                    reaped += 1;
                }
            }
            if batch < 100 {
                break;
            }
        }
        let keep = self.config.upload_ttl * 2;
        self.ports.uploads.prune_tombstones(now - keep).await?;
        // Stored bytes whose purge failed or was cut short by a crash.
        self.retry_purges().await?;
        if reaped > 0 {
            tracing::info!(reaped, "expired uploads reaped");
        }
        Ok(reaped)
    }
}
