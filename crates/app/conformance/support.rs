//! Fixtures: a fresh repository of the adapter under test (`crate::adapter`), and helpers that
//! drive rows into each lifecycle state.

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::adapter::{fresh_repository, locks_of, Repo};
use roughy_app::ports::{
    AccountRepo, AssetRepo, ClaimedDelivery, JobOutcome, JobRepo, ProjectRepo, UploadFence,
    UploadLease, UploadLocks, UploadLookup, UploadRepo, WebhookRepo,
};
use roughy_app::PageRequest;
use roughy_domain::{
    Account, AccountId, Asset, AssetState, Attempt, DurationMs, LedgerEntry, MediaFormat, Project,
    ProjectId, SizeBytes, Staging, Upload, UploadId,
};

/// `secs` seconds after a fixed instant.
pub fn at(secs: i64) -> OffsetDateTime {
    datetime!(2026-01-01 00:00 UTC) + Duration::seconds(secs)
}

/// The first page of `limit` items.
pub fn first(limit: usize) -> PageRequest {
    PageRequest {
        limit,
        cursor: None,
    }
}

/// A duration of whole minutes (the charge is the number of minutes).
pub fn minutes(n: u64) -> DurationMs {
    DurationMs::from_millis(n * 60_000)
}

/// The declared size of every test upload.
pub const SIZE: u64 = 1_000;

/// No limit on pending uploads (tests of the limit pass their own).
pub const NO_LIMIT: u32 = u32::MAX;

/// A fresh repository of the adapter under test, its upload locks, and helpers over them.
#[derive(Clone)]
pub struct World {
    pub repo: Repo,
    /// The adapter's upload locks, whose fences its writes are checked against.
    pub locks: Arc<dyn UploadLocks>,
    /// Leases taken by [`World::fence`], held until the test ends.
    held: Arc<Mutex<HashMap<UploadId, Box<dyn UploadLease>>>>,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World")
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl World {
    pub async fn new() -> Self {
        Self::over(fresh_repository().await)
    }

    /// A world over a repository made elsewhere (e.g. with its own pool settings).
    pub fn over(repo: Repo) -> Self {
        Self {
            locks: locks_of(&repo),
            repo,
            held: Arc::default(),
        }
    }

    /// The fence of a lease on the upload, taken (and then kept for the rest of the test) the
    /// first time: what a request writing to the upload would hold.
    pub async fn fence(&self, id: &UploadId) -> UploadFence {
        if let Some(lease) = self.held.lock().await.get(id) {
            return lease.fence();
        }
        let lease = self.locks.acquire(id).await.expect("the lock is free");
        let fence = lease.fence();
        self.held.lock().await.insert(id.clone(), lease);
        fence
    }

    /// Lets go of the lease [`World::fence`] took (as a finished request would).
    pub async fn release(&self, id: &UploadId) {
        if let Some(lease) = self.held.lock().await.remove(id) {
            lease.release().await;
        }
    }

    pub async fn account(&self) -> AccountId {
        let account = Account {
            id: AccountId::generate(),
            name: None,
            created_at: at(0),
        };
        self.repo
            .create_account(&account)
            .await
            .expect("the repository answers");
        account.id
    }

    pub async fn project(&self, account: &AccountId, created: OffsetDateTime) -> ProjectId {
        let project = Project {
            id: ProjectId::generate(),
            account_id: account.clone(),
            name: None,
            created_at: created,
        };
        self.repo
            .create_project(&project)
            .await
            .expect("the repository answers");
        project.id
    }

    /// An asset and its upload, not stored.
    pub fn draft(
        &self,
        account: &AccountId,
        project: &ProjectId,
        created: OffsetDateTime,
    ) -> (Asset, Upload) {
        let asset = Asset::new(
            account.clone(),
            project.clone(),
            SizeBytes::new(SIZE).expect("a valid size"),
            None,
            created,
        );
        let upload = Upload::open(&asset, created, Duration::hours(48));
        (asset, upload)
    }

    /// A stored asset in `pending_upload`.
    pub async fn asset(
        &self,
        account: &AccountId,
        project: &ProjectId,
        created: OffsetDateTime,
    ) -> Asset {
        let (asset, upload) = self.draft(account, project, created);
        self.repo
            .create_asset(&asset, &upload, NO_LIMIT)
            .await
            .expect("the repository answers");
        asset
    }

    /// The staging [`World::processing`] finalises its uploads with.
    pub fn final_staging() -> Staging {
        Staging::new("mpu-1;parts=1:etag-a,2:etag-b")
    }

    /// A stored asset in `processing`, its job queued at `created`, its upload completed with
    /// [`World::final_staging`].
    pub async fn processing(
        &self,
        account: &AccountId,
        project: &ProjectId,
        created: OffsetDateTime,
    ) -> Asset {
        let asset = self.asset(account, project, created).await;
        self.repo
            .identify_upload(
                &asset.upload_id,
                MediaFormat::Wav,
                &Staging::new("mpu-1"),
                &self.fence(&asset.upload_id).await,
            )
            .await
            .expect("the repository answers");
        self.repo
            .finalize_upload(
                &asset.upload_id,
                &Self::final_staging(),
                None,
                created,
                &self.fence(&asset.upload_id).await,
            )
            .await
            .expect("the repository answers");
        self.release(&asset.upload_id).await;
        self.get(&asset).await
    }

    /// Claims the next due job and completes it as measured at `duration`.
    pub async fn measure_next(&self, now: OffsetDateTime, duration: DurationMs) -> AssetState {
        let job = self
            .repo
            .claim_job(now, Duration::minutes(10))
            .await
            .expect("the repository answers")
            .expect("a job is due");
        let outcome = JobOutcome::Measured {
            duration,
            format: None,
        };
        self.repo
            .complete_job(&job, &outcome, now)
            .await
            .expect("the repository answers")
            .expect("the claim is current")
    }

    /// A stored asset in `pending_payment` (the account's balance must be below `charge`).
    pub async fn pending_payment(
        &self,
        account: &AccountId,
        project: &ProjectId,
        created: OffsetDateTime,
        charge: u64,
    ) -> Asset {
        let asset = self.processing(account, project, created).await;
        let state = self.measure_next(created, minutes(charge)).await;
        assert_eq!(state, AssetState::PendingPayment);
        asset
    }

    /// Records an attempt of `claim` made at `at`: answered `Ok(status)`, or not answered
    /// `Err(why)`, with the state the domain's retry rule gives it (first retry after 30 s).
    /// Returns the attempt and whether the store recorded it (the claim was current).
    pub async fn answer(
        &self,
        claim: &ClaimedDelivery,
        at: OffsetDateTime,
        answer: Result<u16, &str>,
    ) -> (Attempt, bool) {
        let attempt = Attempt {
            at,
            status: answer.ok(),
            error: answer.err().map(str::to_owned),
            duration_ms: 3,
        };
        let mut after = claim.delivery.clone();
        after.after_attempt(&attempt, Duration::seconds(30));
        let recorded = self
            .repo
            .record_attempt(claim, &attempt, &after)
            .await
            .expect("the repository answers");
        (attempt, recorded)
    }

    /// The asset as stored now.
    pub async fn get(&self, asset: &Asset) -> Asset {
        self.repo
            .get_asset(&asset.account_id, &asset.id)
            .await
            .expect("the repository answers")
            .expect("the asset exists")
    }

    /// The upload as stored now (live ones only).
    pub async fn upload(&self, asset: &Asset) -> Upload {
        match self
            .repo
            .find_upload(&asset.account_id, &asset.upload_id)
            .await
            .expect("the repository answers")
        {
            UploadLookup::Live(upload) => upload,
            other => panic!("expected a live upload, got {other:?}"),
        }
    }

    /// The whole ledger, newest first, read page by page.
    pub async fn ledger(&self, account: &AccountId) -> Vec<LedgerEntry> {
        let mut all = Vec::new();
        let mut page = first(2);
        loop {
            let got = self
                .repo
                .list_ledger(account, &page)
                .await
                .expect("the repository answers");
            all.extend(got.items);
            match got.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => return all,
            }
        }
    }

    /// Asserts the rule: the balance is the sum of the ledger amounts, never negative.
    pub async fn assert_balance_matches_ledger(&self, account: &AccountId) {
        let balance = self
            .repo
            .balance(account)
            .await
            .expect("the repository answers");
        let ledger = self.ledger(account).await;
        let sum: i64 = ledger.iter().map(|e| e.amount).sum();
        assert_eq!(balance, sum, "balance = sum of the ledger");
        assert!(ledger.iter().all(|e| e.balance_after >= 0));
        assert!(balance >= 0);
    }
}
