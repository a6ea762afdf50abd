//! TUS uploads: status (HEAD), append a chunk (PATCH), terminate (DELETE).

use bytes::{Bytes, BytesMut};
use futures::{stream, FutureExt, StreamExt};
use time::OffsetDateTime;

use roughy_domain::tus::{expiry_after, PatchRefusal, MIN_FIRST_CHUNK};
use roughy_domain::{AccountId, PatchStart, Upload, UploadId, UploadState};

use super::Ingest;
use crate::error::IngestError;
use crate::ports::{
    AppendStop, BodyError, ByteStream, GoneReason, UploadEvent, UploadLease, UploadLookup,
};

/// What HEAD and a successful PATCH report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadView {
    /// Bytes durably stored.
    pub offset: u64,
    /// The declared length.
    pub length: u64,
    /// While pending: when it expires.
    pub expires_at: Option<OffsetDateTime>,
}

impl UploadView {
    fn of(upload: &Upload) -> Self {
        match upload.state {
            UploadState::Active => Self {
                offset: upload.offset,
                length: upload.length.get(),
                expires_at: Some(upload.expires_at),
            },
            UploadState::Completed => Self {
                offset: upload.length.get(),
                length: upload.length.get(),
                expires_at: None,
            },
        }
    }
}

impl Ingest {
    /// The account a direct upload's verified token acts for: the upload's owner.
    ///
    /// # Errors
    /// `IngestError::NotFound` when no such upload was ever issued (or its tombstone is
    /// forgotten); `Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn upload_owner(&self, id: &UploadId) -> Result<AccountId, IngestError> {
        self.ports
            .uploads
            .upload_owner(id)
            .await?
            .ok_or(IngestError::NotFound)
    }

    async fn live_upload(&self, account: &AccountId, id: &UploadId) -> Result<Upload, IngestError> {
        match self.ports.uploads.find_upload(account, id).await? {
            UploadLookup::Live(upload) => Ok(upload),
            UploadLookup::Gone(reason) => Err(IngestError::UploadGone(reason)),
            UploadLookup::Unknown => Err(IngestError::NotFound),
        }
    }

    /// The canonical offset (HEAD). A completed upload reports offset = length.
    ///
    /// As in tusd, HEAD takes the upload's lock: a PATCH still running for a connection the
    /// client already gave up on is asked to stop and record what it stored, so the offset
    /// returned is the one the client must resume from (not a stale one that earns a 409).
    ///
    /// # Errors
    /// `IngestError::NotFound` for an unknown or another account's upload, `UploadGone` once it
    /// was terminated, reaped or rejected, `UploadLocked` when the running PATCH does not stop in
    /// time; `IngestError::Unavailable` when the repository does not answer (retryable),
    /// `Internal` otherwise.
    pub async fn upload_status(
        &self,
        account: &AccountId,
        id: &UploadId,
    ) -> Result<UploadView, IngestError> {
        let upload = self.live_upload(account, id).await?;
        if upload.state == UploadState::Completed {
            return Ok(UploadView::of(&upload));
        }
        let lease = self.ports.locks.acquire(id).await?;
        let view = self
            .live_upload(account, id)
            .await
            .map(|u| UploadView::of(&u));
        lease.release().await;
        view
    }

    /// Appends one chunk (PATCH).
    ///
    /// Takes the upload's lock (asking a holder to stop), checks the offset and length, sniffs
    /// the first chunk before anything is kept (rejecting and deleting a non-media upload),
    /// streams the body durably into the sink, records the new offset and expiry, and on the
    /// last byte finalises: object in place, asset `processing`, job queued, all before
    /// returning.
    ///
    /// # Errors
    /// The contract's refusals: `NotFound`, `UploadGone`, `Patch(..)`, `UnsupportedMedia`,
    /// `UploadLocked`, `UploadInterrupted`, `BodyStopped`; `Unavailable`/`Internal` on
    /// infrastructure failures. A refused or failed PATCH never moves the offset past the
    /// bytes durably stored.
    pub async fn append_chunk(
        &self,
        account: &AccountId,
        id: &UploadId,
        claimed_offset: u64,
        chunk_len: Option<u64>,
        body: ByteStream<'_>,
    ) -> Result<UploadView, IngestError> {
        // Cheap refusals first, without taking the lock.
        self.live_upload(account, id).await?;
        let lease = self.ports.locks.acquire(id).await?;
        self.ports.metrics.upload_lock_held(1);
        let result = self
            .append_locked(account, id, claimed_offset, chunk_len, body, lease.as_ref())
            .await;
        // Released before answering, so the client's next request finds the upload free.
        lease.release().await;
        self.ports.metrics.upload_lock_held(-1);
        result
    }

    /// The PATCH under the upload's lock.
    async fn append_locked(
        &self,
        account: &AccountId,
        id: &UploadId,
        claimed_offset: u64,
        chunk_len: Option<u64>,
        body: ByteStream<'_>,
        lease: &dyn UploadLease,
    ) -> Result<UploadView, IngestError> {
        // Read again under the lock: the previous holder may have moved the offset.
        let mut upload = self.live_upload(account, id).await?;
        let fence = lease.fence();
        if upload.check_patch(claimed_offset, chunk_len)? == PatchStart::AlreadyComplete {
            return Ok(UploadView::of(&upload));
        }

        let stop = lease.stop_requested().shared();
        let stopped = stop.clone();
        let mut body: ByteStream<'_> = Box::pin(body.take_until(stop));

        // The first chunk's format, when it is recorded with the chunk's bytes.
        let mut identified = None;
        if upload.expects_first_chunk() {
            let head = match read_head(&mut body).await {
                Err(IngestError::Patch(PatchRefusal::FirstChunkTooSmall))
                    if stopped.clone().now_or_never().is_some() =>
                {
                    return Err(IngestError::UploadInterrupted { offset: 0 });
                }
                other => other?,
            };
            let Some(format) = self.ports.media.sniff(&head) else {
                let at = self.ports.clock.now();
                if let Some(purge) = self
                    .ports
                    .uploads
                    .discard_upload(id, GoneReason::Rejected, None, at, &fence)
                    .await?
                {
                    self.purge(&purge).await;
                }
                self.ports.metrics.upload(UploadEvent::Rejected, 1);
                tracing::info!(upload = %id, "first chunk is not supported media; upload rejected");
                return Err(IngestError::UnsupportedMedia);
            };
            // A first chunk re-sent after a drop that stored nothing reuses the staging
            // already begun (the format is identified again, it may not change the object).
            if upload.staging.is_empty() {
                let staging = self.ports.sink.begin(&upload, format).await?;
                upload.stage(staging).map_err(internal)?;
            }
            if upload.staging.is_empty() {
                // Nothing to remember before the bytes: the format is recorded with them, in
                // the progress or finalising commit (one commit fewer per upload).
                identified = Some(format);
            } else {
                // The sink's staging (a multipart upload) must be on record before any byte
                // is, so a purge finds what to abort.
                self.ports
                    .uploads
                    .identify_upload(id, format, &upload.staging, &fence)
                    .await?;
            }
            body = Box::pin(stream::once(async move { Ok(head) }).chain(body));
        }

        let outcome = self.ports.sink.append(&upload, body).await;
        if let Some(AppendStop::TooLong) = outcome.stop {
            // Nothing of a refused chunk counts: the offset stays where it was.
            return Err(PatchRefusal::LengthExceeded {
                end: upload.length.get().saturating_add(1),
                length: upload.length.get(),
            }
            .into());
        }
        let now = self.ports.clock.now();
        let length = upload.length.get();
        let offset = outcome.offset.min(length);
        let expires_at = expiry_after(now, self.config.upload_ttl);
        // The last byte is recorded only by finalisation (below, atomically with the state
        // change): an offset equal to the length must always mean "finalised", or a client
        // that sees it in HEAD would stop while the asset never leaves pending_upload.
        if offset > upload.offset && offset < length {
            self.ports
                .uploads
                .record_progress(id, offset, &outcome.staging, expires_at, identified, &fence)
                .await?;
            self.ports.metrics.bytes_received(offset - upload.offset);
        }
        match outcome.stop {
            Some(AppendStop::Storage(e)) => return Err(e.into()),
            Some(AppendStop::Body(e)) => {
                return Err(IngestError::BodyStopped {
                    offset,
                    idle: e == BodyError::IdleTimeout,
                })
            }
            Some(AppendStop::TooLong) | None => {}
        }
        if stopped.now_or_never().is_some() && offset < length {
            return Err(IngestError::UploadInterrupted { offset });
        }
        if offset < length {
            return Ok(UploadView {
                offset,
                length,
                expires_at: Some(expires_at),
            });
        }
        // Every byte is staged. One commit completes the upload, moves the asset on and queues
        // its job; the job makes the object. Should the commit fail, the bytes stay staged and
        // the offset where it was: the client's resend from HEAD's offset completes.
        self.ports
            .uploads
            .finalize_upload(id, &outcome.staging, identified, now, &fence)
            .await?;
        self.ports
            .metrics
            .bytes_received(offset.saturating_sub(upload.offset));
        self.ports.metrics.upload(UploadEvent::Completed, 1);
        self.ports.job_signal.job_queued();
        tracing::info!(upload = %id, asset = %upload.asset_id, size = length, "upload finalised; processing queued");
        Ok(UploadView {
            offset,
            length,
            expires_at: None,
        })
    }

    /// Cancels a pending upload and deletes its asset and bytes (DELETE). Idempotent.
    ///
    /// # Errors
    /// `NotFound` for an id never issued (or another account's); `UploadComplete` when the
    /// upload already finished.
    pub async fn terminate_upload(
        &self,
        account: &AccountId,
        id: &UploadId,
    ) -> Result<(), IngestError> {
        let upload = match self.ports.uploads.find_upload(account, id).await? {
            UploadLookup::Live(upload) => upload,
            UploadLookup::Gone(_) => return Ok(()),
            UploadLookup::Unknown => return Err(IngestError::NotFound),
        };
        if upload.state == UploadState::Completed {
            return Err(IngestError::UploadComplete);
        }
        // Stop a writer first, so its bytes are not staged after the purge.
        let lease = self.ports.locks.acquire(id).await?;
        let at = self.ports.clock.now();
        let purge = self
            .ports
            .uploads
            .discard_upload(id, GoneReason::Terminated, None, at, &lease.fence())
            .await;
        lease.release().await;
        let purge = purge?;
        match purge {
            Some(purge) => {
                self.ports.metrics.upload(UploadEvent::Terminated, 1);
                self.purge(&purge).await;
            }
            None => {
                // Raced with finalisation or another DELETE: report what it is now.
                if let UploadLookup::Live(u) = self.ports.uploads.find_upload(account, id).await? {
                    if u.state == UploadState::Completed {
                        return Err(IngestError::UploadComplete);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Reads body chunks until at least [`MIN_FIRST_CHUNK`] bytes arrived (or the body ended).
async fn read_head(body: &mut ByteStream<'_>) -> Result<Bytes, IngestError> {
    let mut head = BytesMut::new();
    while (head.len() as u64) < MIN_FIRST_CHUNK {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => {
                return Err(IngestError::BodyStopped {
                    offset: 0,
                    idle: e == BodyError::IdleTimeout,
                })
            }
            None => return Err(PatchRefusal::FirstChunkTooSmall.into()),
        }
    }
    Ok(head.freeze())
}

/// A transition the domain refused although the use case checked for it: a bug, not input.
fn internal(e: roughy_domain::UploadTransitionError) -> IngestError {
    IngestError::Internal(e.to_string().into())
}
