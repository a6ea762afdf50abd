//! Processing: measure the stored media, then settle the charge (once).
//!
//! A claimed job holds a lease, renewed while it runs, so a long probe is never taken over by
//! another worker. A transient failure gives the job back with an exponentially growing delay;
//! after [`IngestConfig::job_max_attempts`](super::IngestConfig) attempts (a worker that died
//! mid-job counts as one) the asset ends `failed` with `processing_failed`, never charged.
//!
//! Settling and giving a job back are tried again, after short pauses, while the repository
//! answers "unavailable" (a connection terminated under the worker, a failover): a measurement
//! is not thrown away for one dropped connection, and one failed release does not leave the
//! job leased, untouched, until its lease runs out. Both are fenced by the claim, so a retry
//! after a lost answer changes nothing.

use std::future::Future;
use std::pin::pin;

use futures::future::{self, Either};
use time::{Duration, OffsetDateTime};

use roughy_domain::{AssetFailure, AssetId, AssetState, MediaFormat};

use super::Ingest;
use crate::error::IngestError;
use crate::ports::{
    BlobError, Job, JobOutcome, MediaInfo, ProbeError, ProcessingOutcome, RepoError,
};

/// The `error_code` of an asset whose processing kept failing for reasons not in its bytes.
pub const PROCESSING_FAILED: &str = "processing_failed";

/// The pauses before a job's settlement or release is tried again while the repository is
/// unavailable (see the module documentation): four tries within 2.6 s, far inside a lease.
pub const REPOSITORY_RETRY_PAUSES: [std::time::Duration; 3] = [
    std::time::Duration::from_millis(100),
    std::time::Duration::from_millis(500),
    std::time::Duration::from_secs(2),
];

/// Runs `op`, and again after each of [`REPOSITORY_RETRY_PAUSES`] while it answers
/// [`RepoError::Unavailable`]. Any other answer is returned at once.
async fn retry_unavailable<T, F>(
    what: &str,
    asset: &AssetId,
    mut op: impl FnMut() -> F,
) -> Result<T, RepoError>
where
    F: Future<Output = Result<T, RepoError>>,
{
    let mut pauses = REPOSITORY_RETRY_PAUSES.iter();
    loop {
        match op().await {
            Err(RepoError::Unavailable(cause)) => match pauses.next() {
                Some(pause) => {
                    tracing::warn!(%asset, error = %cause, retry_in_ms = pause.as_millis(), "{what}: repository unavailable; trying again");
                    tokio::time::sleep(*pause).await;
                }
                None => return Err(RepoError::Unavailable(cause)),
            },
            answer => return answer,
        }
    }
}

impl Ingest {
    /// Claims and runs one processing job. Returns whether there was one.
    ///
    /// Measures `duration_seconds` from the stored bytes, then settles billing in one step
    /// with the state change. Broken media fails the asset (never charged); a transient
    /// failure gives the job back for a later retry, until the attempts run out; an asset
    /// deleted meanwhile, or a job taken over, is dropped without a charge.
    ///
    /// # Errors
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise (claiming or settling; a job whose settlement failed is released for a retry).
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
            return Err(IngestError::Internal(
                format!("job for unidentified asset {asset_id}").into(),
            ));
        };
        let started = std::time::Instant::now();
        let report = |format: MediaFormat, outcome: ProcessingOutcome| {
            self.ports
                .metrics
                .processed(format, outcome, started.elapsed().as_secs_f64());
        };
        let attempt = job.attempts.saturating_add(1);
        let outcome = if attempt > self.config.job_max_attempts {
            // Earlier claims ended without settling or giving the job back: their workers died
            // mid-job (a crash, an OOM kill). Trying again would likely kill this one too.
            tracing::error!(asset = %asset_id, attempts = job.attempts, "processing job abandoned: its workers kept dying");
            processing_failed(job.attempts)
        } else {
            let measured = pin!(self.measure(&job, sniffed));
            let renewing = pin!(self.keep_leased(&job));
            let probed = match future::select(measured, renewing).await {
                Either::Left((probed, _)) => probed,
                Either::Right(((), _)) => {
                    tracing::warn!(asset = %asset_id, "processing job taken over or its asset deleted; stopped without settling");
                    report(sniffed, ProcessingOutcome::Dropped);
                    return Ok(true);
                }
            };
            match probed {
                Ok(info) => JobOutcome::Measured {
                    duration: info.duration,
                    format: (info.format != sniffed).then_some(info.format),
                },
                Err(ProbeError::Media(failure)) => JobOutcome::Failed(failure),
                Err(ProbeError::Transient(reason)) if attempt >= self.config.job_max_attempts => {
                    tracing::error!(asset = %asset_id, attempts = attempt, %reason, "processing failed on every attempt; asset failed");
                    processing_failed(attempt)
                }
                Err(ProbeError::Transient(reason)) => {
                    let delay = self.retry_delay(attempt);
                    tracing::warn!(asset = %asset_id, attempt, retry_in_secs = delay.whole_seconds(), %reason, "probe could not run; job released for retry");
                    let retry_at = self.ports.clock.now() + delay;
                    self.give_back(&job, retry_at).await?;
                    report(sniffed, ProcessingOutcome::Retried);
                    return Ok(true);
                }
            }
        };
        let at = roughy_domain::time_format::to_micros(self.ports.clock.now());
        let settled = match retry_unavailable("settling the job", &asset_id, || {
            self.ports.jobs.complete_job(&job, &outcome, at)
        })
        .await
        {
            Ok(settled) => settled,
            Err(e) => {
                // Nothing was settled (one transaction). Give the job back now rather than
                // leaving it leased until its lease runs out; if even that keeps failing, the
                // lease's end frees it.
                let delay = self.retry_delay(attempt);
                tracing::warn!(asset = %asset_id, error = %e, retry_in_secs = delay.whole_seconds(), "settling the job failed; job released for retry");
                let retry_at = self.ports.clock.now() + delay;
                if let Err(release) = self.give_back(&job, retry_at).await {
                    tracing::warn!(asset = %asset_id, error = %release, "could not release the job; it is retried when its lease runs out");
                }
                return Err(e.into());
            }
        };
        let format = match &outcome {
            JobOutcome::Measured {
                format: Some(refined),
                ..
            } => *refined,
            _ => sniffed,
        };
        match settled {
            Some(state) => {
                tracing::info!(asset = %asset_id, state = state.as_str(), "asset processed");
                match (state, &outcome) {
                    (AssetState::Ready, JobOutcome::Measured { duration, .. }) => {
                        report(format, ProcessingOutcome::Ready);
                        let charged = roughy_domain::billing::charge_for(*duration);
                        self.ports
                            .metrics
                            .credits_charged(u64::try_from(charged).unwrap_or(0));
                    }
                    (AssetState::PendingPayment, _) => {
                        report(format, ProcessingOutcome::PendingPayment)
                    }
                    _ => report(format, ProcessingOutcome::Failed),
                }
                if state == AssetState::Failed {
                    if let JobOutcome::Failed(f) = &outcome {
                        tracing::info!(asset = %asset_id, code = %f.code, message = %f.message, "asset failed");
                    }
                }
            }
            None => {
                report(format, ProcessingOutcome::Dropped);
                tracing::info!(asset = %asset_id, "asset deleted or job taken over while processing; nothing settled")
            }
        }
        Ok(true)
    }

    /// Makes the object from the staged bytes and measures it.
    async fn measure(&self, job: &Job, sniffed: MediaFormat) -> Result<MediaInfo, ProbeError> {
        let asset_id = &job.asset.id;
        // The finalising commit queued this job; the staged bytes become the object here (a
        // repeat after a crash or by another worker answers the same).
        self.ports
            .blobs
            .complete_upload(&job.upload)
            .await
            .map_err(unreadable)?;
        let reader = self
            .ports
            .blobs
            .open_reader(asset_id)
            .await
            .map_err(unreadable)?;
        let info = self.ports.media.probe(reader, sniffed).await?;
        // A refined format is written onto the object before it is settled, so a download
        // link never serves the sniffed one.
        if info.format != sniffed {
            self.ports
                .blobs
                .retype(asset_id, info.format)
                .await
                .map_err(unreadable)?;
        }
        Ok(info)
    }

    /// Renews the job's lease every third of its length while the job runs. Resolves only
    /// when the claim is lost (taken over, or the asset deleted with its job); a failed
    /// renewal is retried at the next tick (if the lease runs out meanwhile, settling finds
    /// the claim stale and changes nothing).
    /// Gives the job back, to be claimed again at `retry_at` (tried again while the repository
    /// is unavailable).
    async fn give_back(&self, job: &Job, retry_at: OffsetDateTime) -> Result<(), RepoError> {
        retry_unavailable("giving the job back", &job.asset.id, || {
            self.ports.jobs.release_job(job, retry_at)
        })
        .await
    }

    async fn keep_leased(&self, job: &Job) {
        let lease = self.config.job_lease;
        let every = (lease / 3_i32).max(Duration::milliseconds(100));
        let every =
            std::time::Duration::try_from(every).unwrap_or(std::time::Duration::from_secs(1));
        loop {
            tokio::time::sleep(every).await;
            let until = self.ports.clock.now() + lease;
            match self.ports.jobs.renew_job(job, until).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(asset = %job.asset.id, error = %e, "could not renew the processing job's lease");
                }
            }
        }
    }

    /// How long to wait before the attempt after `attempt`: the retry delay doubled for each
    /// attempt made, at most the maximum delay.
    fn retry_delay(&self, attempt: u32) -> Duration {
        let factor = 2_i32.saturating_pow(attempt.saturating_sub(1));
        self.config
            .job_retry_delay
            .checked_mul(factor)
            .unwrap_or(self.config.job_retry_max_delay)
            .min(self.config.job_retry_max_delay)
    }

    /// Runs jobs until none is due. Returns how many ran.
    ///
    /// # Errors
    /// The first error of [`Ingest::process_next_job`].
    pub async fn drain_jobs(&self) -> Result<usize, IngestError> {
        let mut ran = 0;
        while self.process_next_job().await? {
            ran += 1;
        }
        Ok(ran)
    }
}

/// The outcome of a job that failed `attempts` times for reasons outside its bytes.
fn processing_failed(attempts: u32) -> JobOutcome {
    JobOutcome::Failed(AssetFailure {
        code: PROCESSING_FAILED.into(),
        message: format!("the media could not be processed after {attempts} attempts"),
    })
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
