//! Processing: measure the stored media, then settle the charge (once).

use roughy_domain::{AssetFailure, AssetState};

use super::Ingest;
use crate::error::IngestError;
use crate::ports::{BlobError, JobOutcome, ProbeError};

impl Ingest {
    /// Claims and runs one processing job. Returns whether there was one.
    ///
    /// Measures `duration_seconds` from the stored bytes, then settles billing in one step
    /// with the state change. Broken media fails the asset (never charged); a transient
    /// failure gives the job back for a later retry; an asset deleted meanwhile is dropped
    /// without a charge.
    pub async fn process_next_job(&self) -> Result<bool, IngestError> {
        let now = self.ports.clock.now();
        let Some(job) = self
            .ports
            .jobs
            .claim_job(now, self.config.job_lease)
            .await?
        else {
            return Ok(false);
        };
        let asset_id = job.asset.id.clone();
        let Some(sniffed) = job.asset.format else {
            // finish_upload refuses an unidentified asset, so this cannot be queued.
            return Err(IngestError::Internal(format!(
                "job for unidentified asset {asset_id}"
            )));
        };
        // The finalising commit queued this job; the staged bytes become the object here (a
        // repeat after a crash or by another worker answers the same).
        let stored = match self.ports.blobs.complete_upload(&job.upload).await {
            Ok(_) => self.ports.blobs.open_reader(&asset_id).await,
            Err(e) => Err(e),
        };
        let probed = match stored {
            Ok(reader) => self.ports.media.probe(reader, sniffed).await,
            Err(e) => Err(unreadable(e)),
        };
        // A refined format is written onto the object before it is settled, so a download
        // link never serves the sniffed one.
        let probed = match probed {
            Ok(info) if info.format != sniffed => {
                match self.ports.blobs.retype(&asset_id, info.format).await {
                    Ok(()) => Ok(info),
                    Err(e) => Err(unreadable(e)),
                }
            }
            other => other,
        };
        let outcome = match probed {
            Ok(info) => JobOutcome::Measured {
                duration: info.duration,
                format: (info.format != sniffed).then_some(info.format),
            },
            Err(ProbeError::Media(failure)) => JobOutcome::Failed(failure),
            Err(ProbeError::Transient(reason)) => {
                tracing::warn!(asset = %asset_id, %reason, "probe could not run; job released for retry");
                let retry_at = self.ports.clock.now() + self.config.job_retry_delay;
                self.ports.jobs.release_job(&job, retry_at).await?;
                return Ok(true);
            }
        };
        let at = roughy_domain::time_format::to_micros(self.ports.clock.now());
        match self.ports.jobs.complete_job(&job, &outcome, at).await? {
            Some(state) => {
                tracing::info!(asset = %asset_id, state = state.as_str(), "asset processed");
                if state == AssetState::Failed {
                    if let JobOutcome::Failed(f) = &outcome {
                        tracing::info!(asset = %asset_id, code = %f.code, message = %f.message, "asset failed");
                    }
                }
            }
            None => {
                tracing::info!(asset = %asset_id, "asset deleted or job taken over while processing; nothing settled")
            }
        }
        Ok(true)
    }

    /// Runs jobs until none is due. Returns how many ran.
    pub async fn drain_jobs(&self) -> Result<usize, IngestError> {
        let mut ran = 0;
        while self.process_next_job().await? {
            ran += 1;
        }
        Ok(ran)
    }
}

/// What a storage failure means for a job: missing bytes fail the asset for good
/// (`media_unreadable`); anything else is retried later.
fn unreadable(e: BlobError) -> ProbeError {
    match e {
        BlobError::NotFound => ProbeError::Media(AssetFailure {
            code: "media_unreadable".into(),
            message: "the stored bytes are missing".into(),
        }),
        e => ProbeError::Transient(e.to_string()),
    }
}
