//! The ports: what the use cases need from the outside world.
//!
//! Repository ports are shaped around use cases: every use case that must be atomic is one
//! method, so an adapter can run it in one transaction and call the pure `roughy_domain` rule
//! inside (the rule lives once; the atomicity lives in the adapter).

use std::fmt;
use std::io::{Read, Seek};
use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::Stream;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use roughy_domain::{
    Account, AccountId, ApiKey, ApiKeyId, Asset, AssetFailure, AssetId, AssetState, Credits,
    DurationMs, KeyHash, LedgerEntry, MediaFormat, Project, ProjectId, Staging, Upload, UploadId,
};

use crate::pagination::{Page, PageRequest};

#[cfg(test)]
use mockall::automock;

// ---------------------------------------------------------------------------------------------
// Errors at the seams
// ---------------------------------------------------------------------------------------------

/// What went wrong below a port: a message for the logs and, when there is one, the error it
/// came from (so the one place that logs a failure can show the whole chain).
#[derive(Debug)]
pub struct Cause {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Cause {
    /// A cause with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A cause that keeps the error it came from.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The message, without the sources.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message followed by each source's, as `message: source: its source`, for logs.
    pub fn chain(&self) -> String {
        let mut chain = self.message.clone();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            let text = e.to_string();
            // Adapters often put the source's text in the message already.
            if !chain.ends_with(&text) {
                chain.push_str(": ");
                chain.push_str(&text);
            }
            next = e.source();
        }
        chain
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// A repository failure, translated from the infrastructure at the adapter's seam.
#[derive(Debug, Error)]
pub enum RepoError {
    /// A row the operation depends on is not there (e.g. the project was deleted meanwhile).
    #[error("not found")]
    NotFound,
    /// A uniqueness or state conflict.
    #[error("conflict: {0}")]
    Conflict(#[source] Cause),
    /// The store is unreachable or exhausted (pool timeout): retryable, 503.
    #[error("repository unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A write under an upload's lock whose [`UploadFence`] no longer holds the lock (it was
    /// taken over as stale, or released): nothing was written.
    #[error("the upload's lock is no longer held by this writer")]
    LeaseLost,
    /// An account limit would be exceeded (too many pending uploads): nothing was stored.
    #[error("the account has too many pending uploads")]
    TooManyPending,
    /// Anything else.
    #[error("repository failure: {0}")]
    Internal(#[source] Cause),
}

/// A blob storage failure.
#[derive(Debug, Error)]
pub enum BlobError {
    /// The object or staged upload does not exist.
    #[error("blob not found")]
    NotFound,
    /// The store is unreachable: retryable.
    #[error("blob storage unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// The store has no room left (a full disk, a quota): retryable once space is freed.
    #[error("blob storage is full: {0}")]
    InsufficientStorage(#[source] Cause),
    /// Anything else (I/O errors included).
    #[error("blob storage failure: {0}")]
    Internal(#[source] Cause),
}

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

// ---------------------------------------------------------------------------------------------
// Repositories
// ---------------------------------------------------------------------------------------------

/// The result of a top-up: its ledger entry and the assets it activated, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopUpOutcome {
    /// The `top_up` entry.
    pub entry: LedgerEntry,
    /// `pending_payment` assets made `ready` by this top-up.
    pub activated: Vec<AssetId>,
}

/// Accounts, keys and the credit ledger.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait AccountRepo: Send + Sync {
    /// Stores a new account (balance 0).
    async fn create_account(&self, account: &Account) -> Result<(), RepoError>;
    /// The account, if it exists.
    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, RepoError>;
    /// Stores a key. MUST return `NotFound` if the account does not exist.
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), RepoError>;
    /// Revokes a key at once. Returns whether it existed (and was not already revoked).
    async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<bool, RepoError>;
    /// The account a live (unrevoked) key acts for.
    async fn account_for_key(&self, hash: &KeyHash) -> Result<Option<AccountId>, RepoError>;
    /// The balance: always the sum of the ledger amounts.
    async fn balance(&self, account: &AccountId) -> Result<Credits, RepoError>;
    /// Atomically: credits the balance, writes the `top_up` entry, and activates the account's
    /// `pending_payment` assets oldest first with `roughy_domain::billing::activation_plan`
    /// (each activation a charge entry). MUST return `NotFound` if the account does not exist.
    async fn top_up(
        &self,
        account: &AccountId,
        credits: Credits,
        at: OffsetDateTime,
    ) -> Result<TopUpOutcome, RepoError>;
    /// The ledger, newest first.
    async fn list_ledger(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<LedgerEntry>, RepoError>;
}

/// What must be purged from blob storage after rows were deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purge {
    /// The deleted asset (its finished object, if any).
    pub asset_id: AssetId,
    /// Its upload (staged bytes, if any).
    pub upload_id: UploadId,
    /// The sink's staging state of the upload when it was deleted (what to abort).
    pub staging: Staging,
}

/// The purge outbox: every repository method that deletes rows with stored bytes (asset and
/// project deletion, discarded uploads) MUST record the returned `Purge`s in the same atomic
/// step, so a crash between the commit and the blob deletion leaves neither orphaned bytes nor
/// rows pointing at missing bytes. The use case deletes the bytes, then marks the purge done;
/// the reaper retries whatever is left.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait PurgeQueue: Send + Sync {
    /// Purges recorded and not yet done, oldest first, at most `limit`.
    async fn pending_purges(&self, limit: usize) -> Result<Vec<Purge>, RepoError>;
    /// The purge's bytes are deleted: forget it. Idempotent.
    async fn purge_done(&self, purge: &Purge) -> Result<(), RepoError>;
}

/// Projects.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait ProjectRepo: Send + Sync {
    /// Stores a new project.
    async fn create_project(&self, project: &Project) -> Result<(), RepoError>;
    /// The caller's project, or `None` (another account's answers as missing).
    async fn get_project(
        &self,
        account: &AccountId,
        id: &ProjectId,
    ) -> Result<Option<Project>, RepoError>;
    /// The caller's projects, newest first.
    async fn list_projects(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Project>, RepoError>;
    /// Atomically deletes the project and its assets as `AssetRepo::delete_asset` would.
    /// `None` when it is not the caller's.
    async fn delete_project(
        &self,
        account: &AccountId,
        id: &ProjectId,
        at: OffsetDateTime,
    ) -> Result<Option<Vec<Purge>>, RepoError>;
}

/// Filters of the asset list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssetFilter {
    /// Only this project's.
    pub project_id: Option<ProjectId>,
    /// Only in this state.
    pub state: Option<AssetState>,
}

/// Assets.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait AssetRepo: Send + Sync {
    /// Atomically stores a new asset and its upload. MUST return `NotFound` if the project is
    /// not (or no longer) the asset's account's, and `TooManyPending` (storing nothing) when
    /// the account already has `max_pending` assets in `pending_upload` — checked in the same
    /// atomic step, so concurrent creates cannot overshoot.
    async fn create_asset(
        &self,
        asset: &Asset,
        upload: &Upload,
        max_pending: u32,
    ) -> Result<(), RepoError>;
    /// The caller's asset.
    async fn get_asset(
        &self,
        account: &AccountId,
        id: &AssetId,
    ) -> Result<Option<Asset>, RepoError>;
    /// The caller's assets, newest first.
    async fn list_assets(
        &self,
        account: &AccountId,
        filter: &AssetFilter,
        page: &PageRequest,
    ) -> Result<Page<Asset>, RepoError>;
    /// Atomically deletes the asset and everything derived from it: its upload (leaving a
    /// tombstone), its pending processing job. `None` when it is not the caller's.
    async fn delete_asset(
        &self,
        account: &AccountId,
        id: &AssetId,
        at: OffsetDateTime,
    ) -> Result<Option<Purge>, RepoError>;
    /// The retention of failed assets' bytes: atomically marks the stored bytes of up to
    /// `limit` assets that failed before `failed_before` (and whose bytes were not yet let go)
    /// as purged at `at`, recording their purges in the outbox in the same step, and returns
    /// them. The assets and their errors stay.
    async fn release_failed_bytes(
        &self,
        failed_before: OffsetDateTime,
        at: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Purge>, RepoError>;
}

/// Why an upload is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoneReason {
    /// Cancelled by `DELETE /v1/uploads/{id}`.
    Terminated,
    /// Idle past its expiry.
    Expired,
    /// The first chunk was not audio or video.
    Rejected,
    /// Its asset was deleted.
    AssetDeleted,
}

/// What an upload id resolves to for one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadLookup {
    /// A live upload (active or completed) of the caller's.
    Live(Upload),
    /// It existed and is gone (a tombstone of the caller's).
    Gone(GoneReason),
    /// Never issued, or another account's.
    Unknown,
}

/// TUS uploads.
///
/// Every write to an active upload (`identify_upload`, `record_progress`, `finalize_upload`,
/// `discard_upload`) happens under the upload's lock and carries the lease's [`UploadFence`]:
/// the adapter MUST check, in the same atomic step as the write, that the fence still holds
/// the upload's lock, and answer `RepoError::LeaseLost` (changing nothing) when it does not.
/// A writer that lost its lease (a stall long enough for another process to take it over)
/// can therefore never overwrite what the new holder recorded.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait UploadRepo: Send + Sync {
    /// Resolves an upload id for the caller.
    async fn find_upload(
        &self,
        account: &AccountId,
        id: &UploadId,
    ) -> Result<UploadLookup, RepoError>;
    /// Atomically records the format sniffed from the first chunk on the upload's asset and
    /// the sink's staging for it ([`Upload::stage`]).
    /// MUST return `NotFound` if the upload is no longer active.
    async fn identify_upload(
        &self,
        id: &UploadId,
        format: MediaFormat,
        staging: &Staging,
        fence: &UploadFence,
    ) -> Result<(), RepoError>;
    /// Records bytes durably stored ([`Upload::advance`]): the new offset, the sink's staging
    /// for it and the refreshed expiry, in one step. MUST return `NotFound` if the upload is
    /// no longer active, `Conflict` when the transition is refused.
    async fn record_progress(
        &self,
        id: &UploadId,
        offset: u64,
        staging: &Staging,
        expires_at: OffsetDateTime,
        fence: &UploadFence,
    ) -> Result<(), RepoError>;
    /// Atomically: the upload completes ([`Upload::complete`], offset = length), the asset
    /// moves to `processing` with `size_bytes` = the length, and a processing job is durably
    /// queued. The staged bytes are made the asset's object afterwards, by the job
    /// ([`BlobStore::complete_upload`]), so a failure of this step leaves them staged and the
    /// client's resend at the previous offset completes the upload.
    /// MUST return `NotFound` if the upload is no longer active.
    async fn finalize_upload(
        &self,
        id: &UploadId,
        staging: &Staging,
        at: OffsetDateTime,
        fence: &UploadFence,
    ) -> Result<(), RepoError>;
    /// Atomically deletes an active upload and its asset, leaving a tombstone. With
    /// `expired_before`, only if the upload's expiry is before that instant (a PATCH may have
    /// refreshed it). `None` when there was nothing (left) to discard.
    async fn discard_upload(
        &self,
        id: &UploadId,
        reason: GoneReason,
        expired_before: Option<OffsetDateTime>,
        at: OffsetDateTime,
        fence: &UploadFence,
    ) -> Result<Option<Purge>, RepoError>;
    /// Active uploads whose expiry is before `now`, at most `limit`.
    async fn expired_uploads(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<UploadId>, RepoError>;
    /// Forgets tombstones written before `before`. Returns how many.
    async fn prune_tombstones(&self, before: OffsetDateTime) -> Result<u64, RepoError>;
}

/// A claimed processing job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The asset to process (a snapshot taken at claim time).
    pub asset: Asset,
    /// Its completed upload: the staged bytes the job makes the asset's object first.
    pub upload: Upload,
    /// How many times it was claimed before (0 the first time).
    pub attempts: u32,
    /// The claim's token: completing with a stale token does nothing.
    pub lease: String,
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// Measured: settle the charge (`roughy_domain::billing::settle`) with the state change.
    Measured {
        /// The duration.
        duration: DurationMs,
        /// A refined format (e.g. MKV without video → MKA).
        format: Option<MediaFormat>,
    },
    /// Permanently failed: `failed`, never charged.
    Failed(AssetFailure),
}

/// The durable processing queue.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait JobRepo: Send + Sync {
    /// Claims the oldest job that is not leased (or whose lease ran out) for `lease`.
    async fn claim_job(
        &self,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Option<Job>, RepoError>;
    /// Atomically applies the outcome to the asset (settling the charge at most once, ever)
    /// and removes the job. Returns the asset's new state; `None` when the asset or the
    /// claim is gone (deleted meanwhile, or another worker took over): nothing changes and
    /// nothing is charged.
    async fn complete_job(
        &self,
        job: &Job,
        outcome: &JobOutcome,
        at: OffsetDateTime,
    ) -> Result<Option<AssetState>, RepoError>;
    /// Gives the job back after a transient failure, to be claimed again at `retry_at`.
    async fn release_job(&self, job: &Job, retry_at: OffsetDateTime) -> Result<(), RepoError>;
    /// Extends a running job's lease to `until`, so no other worker takes it over while it
    /// runs. Returns `false` when the claim is no longer this one's (taken over after the
    /// lease ran out, or the asset was deleted): the job must stop without settling.
    async fn renew_job(&self, job: &Job, until: OffsetDateTime) -> Result<bool, RepoError>;
}

/// Wakes the processing workers when a job was queued (a hint; they also poll).
pub trait JobSignal: Send + Sync {
    /// A job was queued.
    fn job_queued(&self);
}

// ---------------------------------------------------------------------------------------------
// Locks
// ---------------------------------------------------------------------------------------------

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
/// lock carry it (see [`UploadRepo`]), so a store can refuse a writer that lost the lock.
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

// ---------------------------------------------------------------------------------------------
// Bytes
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Media
// ---------------------------------------------------------------------------------------------

/// What probing measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaInfo {
    /// The true playing time.
    pub duration: DurationMs,
    /// The format, when probing refined the sniffed one (MKV without video → MKA).
    pub format: MediaFormat,
}

/// Why probing did not produce a duration.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// The media is broken for good: the asset fails with this code and message.
    #[error("{}: {}", .0.code, .0.message)]
    Media(AssetFailure),
    /// Could not read the bytes right now: try again later.
    #[error("probe could not run: {0}")]
    Transient(String),
}

/// Identifies and measures media.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait MediaInspector: Send + Sync {
    /// The supported format of a first chunk's head (≥ 64 bytes), or `None`.
    fn sniff(&self, head: &[u8]) -> Option<MediaFormat>;
    /// Measures the stored object. Runs the blocking work off the async workers.
    async fn probe(
        &self,
        reader: Box<dyn BlobReader>,
        sniffed: MediaFormat,
    ) -> Result<MediaInfo, ProbeError>;
}

// ---------------------------------------------------------------------------------------------
// Download links
// ---------------------------------------------------------------------------------------------

/// A download link's signed parameters, as they arrive back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedDownload {
    /// The asset.
    pub asset_id: AssetId,
    /// Its format (gives the `Content-Type`).
    pub format: MediaFormat,
    /// Unix seconds after which the link is refused.
    pub expires: i64,
    /// The signature.
    pub signature: String,
}

/// Short-lived signed download links.
#[async_trait]
pub trait DownloadLinks: Send + Sync + fmt::Debug {
    /// A URL to download the asset, valid until `expires_at` (`now` + the download TTL).
    /// `base` is the service's public URL, for links served by this service.
    async fn link(
        &self,
        base: &str,
        asset: &AssetId,
        format: MediaFormat,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<String, BlobError>;
    /// Whether a link served by this service is authentic and unexpired at `now`.
    fn verify(&self, link: &SignedDownload, now: OffsetDateTime) -> bool;
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

/// A dependency that `GET /readyz` asks (the database, blob storage).
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// The dependency's name, for logs.
    fn name(&self) -> &'static str;
    /// Whether it answers now.
    async fn check(&self) -> Result<(), String>;
}
