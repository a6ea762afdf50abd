//! The in-memory repository: every repository port over one mutex-guarded state.
//!
//! Each port method locks the state once, so it is atomic. Methods that change several rows
//! run every fallible step (the domain transitions) on copies first and write only when all
//! of them succeeded: a refused call changes nothing, as a rolled-back transaction would.

mod accounts;
mod assets;
mod backlog;
mod idempotency;
mod jobs;
mod projects;
mod purges;
mod uploads;
mod webhooks;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use time::OffsetDateTime;

use crate::InProcessUploadLocks;

use roughy_app::ports::{GoneReason, Purge, RepoError, UploadFence};
use roughy_app::{Cursor, Page, PageRequest};
use roughy_domain::{
    Account, AccountId, ApiKey, ApiKeyId, Asset, AssetId, ClaimId, Credits, IdempotencyKey,
    KeyHash, KeyRecord, LedgerEntry, Project, ProjectId, Upload, UploadId, Webhook,
};

/// The in-memory adapter of `AccountRepo`, `ProjectRepo`, `AssetRepo`, `UploadRepo`,
/// `JobRepo`, `PurgeQueue`, `IdempotencyKeys` and `WebhookRepo`.
///
/// Clones share one state, so one value can be handed to every port of `IngestPorts`.
#[derive(Clone, Default)]
pub struct MemoryRepository {
    state: Arc<Mutex<State>>,
    /// The upload locks whose fences writes under a lock are checked against.
    locks: InProcessUploadLocks,
}

impl MemoryRepository {
    /// An empty repository, with its own upload locks.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty repository whose writes under an upload's lock are fenced by `locks`.
    pub fn with_locks(locks: InProcessUploadLocks) -> Self {
        Self {
            state: Arc::default(),
            locks,
        }
    }

    /// The upload locks this repository fences writes with (hand them to `IngestPorts`).
    pub fn locks(&self) -> InProcessUploadLocks {
        self.locks.clone()
    }

    /// `LeaseLost` unless `fence` is the current holding of the upload's lock.
    fn fenced(&self, id: &UploadId, fence: &UploadFence) -> Result<(), RepoError> {
        if self.locks.holds(id, fence) {
            Ok(())
        } else {
            Err(RepoError::LeaseLost)
        }
    }

    /// Locks the state for one atomic operation.
    ///
    /// A poisoned mutex means a panic happened mid-operation; since writes come after every
    /// fallible step that should not happen, but if it does the state is not trusted again.
    fn state(&self) -> Result<MutexGuard<'_, State>, RepoError> {
        self.state
            .lock()
            .map_err(|_| RepoError::Internal("the in-memory state is poisoned".into()))
    }
}

impl fmt::Debug for MemoryRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRepository").finish_non_exhaustive()
    }
}

/// Every row, as a database would hold them.
#[derive(Debug, Default)]
struct State {
    accounts: HashMap<AccountId, AccountRow>,
    keys: HashMap<ApiKeyId, KeyRow>,
    /// Index of `keys` by hash: authentication looks keys up by hash on every request.
    key_by_hash: HashMap<KeyHash, ApiKeyId>,
    projects: HashMap<ProjectId, Project>,
    assets: HashMap<AssetId, Asset>,
    /// Active and completed uploads.
    uploads: HashMap<UploadId, Upload>,
    /// Uploads that existed and are gone.
    tombstones: HashMap<UploadId, Tombstone>,
    /// At most one processing job per asset, so keyed by asset.
    jobs: HashMap<AssetId, JobRow>,
    /// Every asset ever charged, kept after the asset is deleted: a charge happens once, ever.
    charged: HashSet<AssetId>,
    /// The purge outbox: bytes of deleted rows still to be removed, oldest first.
    purges: Vec<Purge>,
    /// Enqueue order of jobs (timestamps can tie).
    next_job_seq: u64,
    /// When each `failed` asset failed, until its stored bytes are let go (the retention).
    failed_at: HashMap<AssetId, OffsetDateTime>,
    /// Idempotency keys, by account and key.
    idempotency: HashMap<(AccountId, IdempotencyKey), IdempotencyRow>,
    /// Webhook endpoints, in registration order.
    webhooks: Vec<Webhook>,
    /// The webhook delivery outbox.
    deliveries: Vec<webhooks::DeliveryRow>,
    /// Outbox order of deliveries.
    next_delivery_seq: u64,
}

/// An idempotency key's record and the claim that holds it.
#[derive(Debug)]
struct IdempotencyRow {
    claim: ClaimId,
    record: KeyRecord,
}

/// An account, its balance and its ledger. The balance is only changed by [`AccountRow::post`],
/// which keeps it equal to the sum of the ledger amounts.
#[derive(Debug)]
struct AccountRow {
    account: Account,
    balance: Credits,
    ledger: Vec<LedgerEntry>,
}

impl AccountRow {
    fn new(account: Account) -> Self {
        Self {
            account,
            balance: 0,
            ledger: Vec::new(),
        }
    }

    /// Appends a ledger entry and moves the balance by its amount.
    fn post(&mut self, entry: LedgerEntry) {
        self.balance += entry.amount;
        // The domain computed `balance_after` from the same balance: a mismatch is a bug here.
        debug_assert_eq!(
            self.balance, entry.balance_after,
            "ledger and balance disagree"
        );
        self.ledger.push(entry);
    }
}

#[derive(Debug)]
struct KeyRow {
    key: ApiKey,
    revoked: bool,
}

/// What is left of an upload that is gone: enough to answer 410 to its owner.
#[derive(Debug)]
struct Tombstone {
    account_id: AccountId,
    reason: GoneReason,
    at: OffsetDateTime,
}

/// A queued processing job.
#[derive(Debug)]
struct JobRow {
    seq: u64,
    available_at: OffsetDateTime,
    lease: Option<JobLease>,
    /// Claims so far.
    attempts: u32,
}

#[derive(Debug)]
struct JobLease {
    token: String,
    until: OffsetDateTime,
}

impl State {
    /// Deletes an asset with everything derived from it (its job, its upload) and leaves a
    /// tombstone for the upload. `None` when the asset does not exist.
    fn remove_asset(
        &mut self,
        id: &AssetId,
        reason: GoneReason,
        at: OffsetDateTime,
    ) -> Option<Purge> {
        let asset = self.assets.remove(id)?;
        self.announce(reason.event(), &asset, at);
        self.jobs.remove(id);
        self.failed_at.remove(id);
        let staging = self
            .uploads
            .remove(&asset.upload_id)
            .map(|u| u.staging)
            .unwrap_or_default();
        self.tombstones.insert(
            asset.upload_id.clone(),
            Tombstone {
                account_id: asset.account_id,
                reason,
                at,
            },
        );
        let purge = Purge {
            asset_id: asset.id,
            upload_id: asset.upload_id,
            staging,
        };
        // The outbox entry is written with the deletion, as a database transaction would.
        self.purges.push(purge.clone());
        Some(purge)
    }

    /// The account of an asset or job, which foreign keys guarantee.
    fn account_mut(&mut self, id: &AccountId) -> Result<&mut AccountRow, RepoError> {
        self.accounts.get_mut(id).ok_or(RepoError::NotFound)
    }
}

/// A refused lifecycle transition (of an asset or an upload) is a state conflict at the
/// repository's seam.
fn conflict(e: impl std::fmt::Display) -> RepoError {
    RepoError::Conflict(e.to_string().into())
}

/// One page of `rows`, newest first by `(created_at desc, id desc)`, after the request's
/// cursor. `key` gives a row's `(created_at, id)`.
fn newest_first<'a, T: Clone + 'a>(
    rows: impl IntoIterator<Item = &'a T>,
    page: &PageRequest,
    key: impl Fn(&T) -> (OffsetDateTime, &str),
) -> Page<T> {
    let mut rows: Vec<&T> = rows
        .into_iter()
        .filter(|row| {
            let (created_at, id) = key(row);
            page.cursor
                .as_ref()
                .is_none_or(|cursor| cursor.admits(created_at, id))
        })
        .collect();
    rows.sort_unstable_by(|a, b| key(b).cmp(&key(a)));
    // One more than the page proves whether a next page exists.
    rows.truncate(page.limit.saturating_add(1));
    let rows = rows.into_iter().cloned().collect();
    Page::from_overfetch(rows, page.limit, |row| {
        let (created_at, id) = key(row);
        Cursor {
            created_at,
            id: id.to_owned(),
        }
    })
}
