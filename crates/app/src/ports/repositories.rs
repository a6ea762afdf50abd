//! Repositories: persistence shaped around use cases (each atomic use case is one method).

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use roughy_domain::{
    Account, AccountId, ApiKey, ApiKeyId, Asset, AssetFailure, AssetId, AssetState, Credits,
    DurationMs, EventKind, KeyHash, LedgerEntry, MediaFormat, Project, ProjectId, Staging, Upload,
    UploadId,
};

use super::{RepoError, UploadFence};
use crate::pagination::{Page, PageRequest};

#[cfg(test)]
use mockall::automock;

/// The result of a top-up: its ledger entry and the assets it activated, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopUpOutcome {
    /// The `top_up` entry.
    pub entry: LedgerEntry,
    /// `pending_payment` assets made `ready` by this top-up.
    pub activated: Vec<AssetId>,
    /// The credits charged for them, together.
    pub charged: Credits,
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

impl GoneReason {
    /// The stable code a client is told (the `Upload-Gone-Reason` header of a 410):
    /// `unsupported_media_type` for a rejected first chunk (the code its PATCH got),
    /// `upload_expired`, `upload_terminated`, `asset_deleted`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Rejected => "unsupported_media_type",
            Self::Expired => "upload_expired",
            Self::Terminated => "upload_terminated",
            Self::AssetDeleted => "asset_deleted",
        }
    }

    /// Why, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Rejected => "its first chunk was not audio or video (unsupported_media_type)",
            Self::Expired => "it stayed idle past Upload-Expires (upload_expired)",
            Self::Terminated => "it was terminated (upload_terminated)",
            Self::AssetDeleted => "its asset was deleted (asset_deleted)",
        }
    }

    /// The webhook event its asset's deletion announces.
    pub fn event(self) -> EventKind {
        match self {
            Self::Terminated | Self::AssetDeleted => EventKind::AssetDeleted,
            Self::Expired => EventKind::UploadExpired,
            Self::Rejected => EventKind::UploadRejected,
        }
    }
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
    /// The account an upload (live, or gone and tombstoned) belongs to, whoever asks: how a
    /// direct upload's token, which names no account, finds its owner.
    async fn upload_owner(&self, id: &UploadId) -> Result<Option<AccountId>, RepoError>;
    /// Resolves an upload id for the caller.
    async fn find_upload(
        &self,
        account: &AccountId,
        id: &UploadId,
    ) -> Result<UploadLookup, RepoError>;
    /// Atomically records the format sniffed from the first chunk on the upload's asset and
    /// the sink's staging for it ([`Upload::stage`]), before any byte is written: for a sink
    /// whose staging must be remembered first (a multipart upload to abort on a purge). When
    /// the sink has no staging, the format goes with the first chunk's bytes instead (the
    /// `identified` argument of `record_progress` and `finalize_upload`), one commit fewer.
    /// MUST return `NotFound` if the upload is no longer active.
    async fn identify_upload(
        &self,
        id: &UploadId,
        format: MediaFormat,
        staging: &Staging,
        fence: &UploadFence,
    ) -> Result<(), RepoError>;
    /// Records bytes durably stored ([`Upload::advance`]): the new offset, the sink's staging
    /// for it and the refreshed expiry, and with `identified` (the first chunk's format, not
    /// recorded by `identify_upload`) the asset's format ([`Asset::identify`]), in one step.
    /// MUST return `NotFound` if the upload is no longer active, `Conflict` when a transition
    /// is refused (and then change nothing).
    async fn record_progress(
        &self,
        id: &UploadId,
        offset: u64,
        staging: &Staging,
        expires_at: OffsetDateTime,
        identified: Option<MediaFormat>,
        fence: &UploadFence,
    ) -> Result<(), RepoError>;
    /// Atomically: the upload completes ([`Upload::complete`], offset = length), the asset
    /// moves to `processing` with `size_bytes` = the length, and a processing job is durably
    /// queued. The staged bytes are made the asset's object afterwards, by the job
    /// ([`BlobStore::complete_upload`](super::BlobStore::complete_upload)), so a failure of this step leaves them staged and the
    /// client's resend at the previous offset completes the upload. With `identified` (an
    /// upload whose first chunk is its last, on a sink without staging), the asset takes that
    /// format first ([`Asset::identify`]), in the same step.
    /// MUST return `NotFound` if the upload is no longer active.
    async fn finalize_upload(
        &self,
        id: &UploadId,
        staging: &Staging,
        identified: Option<MediaFormat>,
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
