//! The one error type of the use cases. Each variant is one outcome of the contract; the HTTP
//! adapter maps each to its status and code in one place.

use thiserror::Error;

use roughy_domain::tus::PatchRefusal;
use roughy_domain::ValueError;

use crate::ports::{BlobError, Cause, GoneReason, LockError, RepoError};

/// A use case's refusal or failure.
#[derive(Debug, Error)]
pub enum IngestError {
    /// Missing, malformed, unknown or revoked credentials.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// The resource does not exist for the caller.
    #[error("not found")]
    NotFound,
    /// The project does not exist for the caller.
    #[error("project not found")]
    ProjectNotFound,
    /// The balance is zero or below.
    #[error("a positive credit balance is required to start an upload")]
    InsufficientCredits,
    /// A parsed value was refused.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// A field failed validation.
    #[error("{field}: {message}")]
    Validation {
        /// The field's name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The upload existed and was terminated, expired or rejected (why: the reason).
    #[error("the upload is gone: {}", .0.describe())]
    UploadGone(GoneReason),
    /// A PATCH was refused before its body was read.
    #[error(transparent)]
    Patch(#[from] PatchRefusal),
    /// The first chunk is not supported audio or video; the asset was deleted.
    #[error("the uploaded bytes are not a supported audio or video format")]
    UnsupportedMedia,
    /// Another request holds the upload and did not release it.
    #[error("another request is writing to this upload")]
    UploadLocked,
    /// This request was stopped so another one for the same upload could proceed.
    #[error("interrupted by a newer request for this upload; {offset} bytes are stored")]
    UploadInterrupted {
        /// The offset stored when it stopped.
        offset: u64,
    },
    /// The body stopped (dropped or idle) before its end; what arrived is stored.
    #[error("the request body stopped early; {offset} bytes are stored")]
    BodyStopped {
        /// The offset stored when it stopped.
        offset: u64,
        /// Whether it was the idle timeout.
        idle: bool,
    },
    /// The upload already finished.
    #[error("the upload is complete; delete the asset instead")]
    UploadComplete,
    /// A download link was tampered with or has expired.
    #[error("the download link is invalid or has expired")]
    InvalidSignature,
    /// Storage is full: nothing more could be stored (what was acknowledged stays).
    #[error("insufficient storage: {0}")]
    InsufficientStorage(#[source] Cause),
    /// The account has as many pending uploads as it may.
    #[error("the account already has {limit} pending uploads; finish or delete some first")]
    TooManyPendingUploads {
        /// The limit in force.
        limit: u32,
    },
    /// The account has as many webhook endpoints as it may.
    #[error("an account has at most {limit} webhooks; delete one first")]
    TooManyWebhooks {
        /// The limit in force.
        limit: usize,
    },
    /// The `Idempotency-Key` was used for another request (another route or body).
    #[error("this Idempotency-Key was used for another request; use a new key for a new request")]
    IdempotencyKeyReused,
    /// A request with this `Idempotency-Key` is still running.
    #[error("a request with this Idempotency-Key is still running; retry later")]
    IdempotencyKeyInUse,
    /// A dependency is unavailable; retry.
    #[error("service unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A state conflict between requests (e.g. a race the store refused): retry after
    /// reading the resource again.
    #[error("conflict: {0}")]
    Conflict(#[source] Cause),
    /// Anything else (logged; the client sees an opaque message).
    #[error("internal error: {0}")]
    Internal(#[source] Cause),
}

impl From<RepoError> for IngestError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => Self::NotFound,
            // Another process took the upload over while this request stalled: it is theirs.
            RepoError::LeaseLost => Self::UploadLocked,
            // The use case that sets the limit answers it with the limit; this is the fallback.
            RepoError::TooManyPending => Self::TooManyPendingUploads { limit: 0 },
            RepoError::Unavailable(cause) => Self::Unavailable(cause),
            // A state the store refused to change (a race between requests): the client can
            // read again and retry, so it is theirs to hear (409), not a server fault.
            RepoError::Conflict(cause) => Self::Conflict(cause),
            RepoError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<BlobError> for IngestError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound => Self::NotFound,
            BlobError::Unavailable(cause) => Self::Unavailable(cause),
            BlobError::InsufficientStorage(cause) => Self::InsufficientStorage(cause),
            BlobError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<LockError> for IngestError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Locked => Self::UploadLocked,
            LockError::Unavailable(m) => Self::Unavailable(m.into()),
        }
    }
}
