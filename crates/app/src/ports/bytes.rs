//! Bytes: where uploaded media is written and read back.

use std::io::{Read, Seek};
use std::ops::Range;
use std::pin::Pin;

use ::bytes::Bytes;
use async_trait::async_trait;
use futures::Stream;
use thiserror::Error;

use roughy_domain::{AssetId, MediaFormat, Staging, Upload, UploadId};

use super::BlobError;

#[cfg(test)]
use mockall::automock;

/// Why a request body stopped before its end.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BodyError {
    /// The client sent nothing for the idle timeout.
    #[error("the request body was idle for too long")]
    IdleTimeout,
    /// The connection dropped or the body was malformed.
    #[error("the request body was interrupted: {0}")]
    Interrupted(String),
}

/// A request body: chunks of bytes as they arrive. Not `Send`: HTTP servers hand out
/// per-connection payloads that stay on their worker thread.
pub type ByteStream<'a> = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + 'a>>;

/// Stored bytes read back: a `Send` stream for responses.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, BlobError>> + Send>>;

/// Why an append stopped before the end of the body.
#[derive(Debug)]
pub enum AppendStop {
    /// The body failed (dropped connection, idle timeout).
    Body(BodyError),
    /// The body carried more than the allowed bytes; the extra bytes were not kept.
    TooLong,
    /// The store failed.
    Storage(BlobError),
}

/// The result of streaming one body into an upload.
#[derive(Debug)]
pub struct AppendOutcome {
    /// The offset durably reached. Every byte below it is stored, also when the body stopped
    /// midway. (An adapter may round down to its own write boundary.)
    pub offset: u64,
    /// The sink's staging state for `offset`, to record with it.
    pub staging: Staging,
    /// Why it stopped early, if it did.
    pub stop: Option<AppendStop>,
}

/// Where upload bytes go, durably, as they arrive.
///
/// The contract every adapter keeps (the sink conformance suite in `roughy-blobstore` checks
/// it on each):
/// - **Nothing unacknowledged counts.** The offset an append returns counts only bytes that
///   are durable (fsync'd, or acknowledged by the object store), also when the body fails
///   midway; the repository records that offset and the returned [`Staging`] in one step, so
///   the recorded offset never exceeds the bytes stored.
/// - **The recorded offset is the truth.** An append starts from the upload's recorded offset
///   and staging: bytes stored past them (a crash after the write, before the commit) are
///   overwritten by the client's resend, never duplicated, and never break a later append.
/// - **Completing is a separate, repeatable step.** The final append stores the last byte
///   staged; [`BlobStore::complete_upload`] makes the object afterwards and may be repeated
///   (after a crash, by another process) with the same answer. If the finalising commit fails,
///   the client's resend at the previous offset stages the tail again and completes.
/// - **Aborting removes everything staged** ([`BlobStore::abort_upload`]), idempotently.
///
/// Only `begin` and `append` live here, and they alone are not `Send`: request bodies of the
/// HTTP server stay on their worker thread. Completing and aborting are `BlobStore` methods, so
/// background workers can call them from any thread.
#[cfg_attr(test, automock)]
#[async_trait(?Send)]
pub trait UploadSink: Send + Sync {
    /// Prepares staging for an upload whose first chunk was identified as `format`, before
    /// its first byte is appended (e.g. creates the multipart upload, with the format's
    /// `Content-Type`). The returned staging is recorded with the format.
    async fn begin(&self, upload: &Upload, format: MediaFormat) -> Result<Staging, BlobError>;

    /// Streams `body` into the upload from its recorded offset and staging, at most
    /// [`Upload::remaining`] bytes. Every byte counted in the returned offset MUST be durable
    /// before this returns, including when the body fails midway. MUST report
    /// `AppendStop::TooLong` when the body holds more than the remaining bytes.
    async fn append<'a>(&self, upload: &Upload, body: ByteStream<'a>) -> AppendOutcome;
}

/// A blocking, seekable reader over a stored object, for probing.
pub trait BlobReader: Read + Seek + Send + Sync {
    /// The object's size, when known.
    fn byte_len(&self) -> Option<u64>;
}

/// A local file is a blob reader (the local blob store hands out its files as they are).
impl BlobReader for std::fs::File {
    fn byte_len(&self) -> Option<u64> {
        self.metadata().ok().map(|m| m.len())
    }
}

/// Finished objects, and the staged uploads they are made from.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Makes a completed upload's staged bytes the asset's object (zero copy where the store
    /// allows: a rename, a multipart completion). Returns its size. Repeating it after success
    /// answers the object's size; `NotFound` when neither staged bytes nor the object exist.
    async fn complete_upload(&self, upload: &Upload) -> Result<u64, BlobError>;
    /// Removes an upload's staged bytes (aborting a multipart upload). Idempotent.
    async fn abort_upload(&self, id: &UploadId, staging: &Staging) -> Result<(), BlobError>;
    /// The object's size; `NotFound` when absent.
    async fn object_size(&self, asset: &AssetId) -> Result<u64, BlobError>;
    /// A byte range of the object.
    async fn read_range(&self, asset: &AssetId, range: Range<u64>)
        -> Result<BlobStream, BlobError>;
    /// A blocking reader over the object (use it off the async workers).
    async fn open_reader(&self, asset: &AssetId) -> Result<Box<dyn BlobReader>, BlobError>;
    /// Makes the object carry `format`'s `Content-Type` after probing refined the sniffed
    /// format (MKV without video → MKA), for stores whose downloads serve the object's own
    /// metadata. Idempotent; `NotFound` when the object is absent.
    async fn retype(&self, asset: &AssetId, format: MediaFormat) -> Result<(), BlobError>;
    /// Deletes the object. Idempotent.
    async fn delete_object(&self, asset: &AssetId) -> Result<(), BlobError>;
    /// Whether the store answers.
    async fn check(&self) -> Result<(), BlobError>;
}
