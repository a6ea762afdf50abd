//! Use-case tests with mocked ports.
//!
//! Every port is a `mockall` mock (a call nobody expected fails the test); the few ports that
//! are plain traits without a mock (`UploadLease`, `DownloadLinks`, `JobSignal`, `Clock`) get
//! small fakes here. The clock is frozen, so every instant a use case passes on is exact.

mod accounts;
mod assets;
mod processing;
mod reaper;
mod uploads;
mod webhooks;

use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::{self, BoxFuture, FutureExt};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use roughy_domain::{
    AccountId, AssetId, MediaFormat, SizeBytes, Staging, Upload, UploadId, UploadState,
};

use super::{Ingest, IngestConfig, IngestPorts};
use crate::clock::Clock;
use crate::ports::{
    BlobError, BlobReader, DownloadLinks, JobSignal, MediaInspector, MockAccountRepo,
    MockAssetRepo, MockBlobStore, MockIdempotencyKeys, MockJobRepo, MockMediaInspector,
    MockProjectRepo, MockPurgeQueue, MockUploadLocks, MockUploadRepo, MockUploadSink,
    MockWebhookRepo, MockWebhookTransport, Purge, SignedDownload, UploadFence, UploadLease,
};

/// The frozen "now" of every test (whole microseconds, so repositories' precision is a no-op).
const NOW: OffsetDateTime = datetime!(2026-11-23 10:15:00.123456 UTC);
/// Deliberately not the defaults, so a test sees which setting a use case used.
const UPLOAD_TTL: Duration = Duration::hours(3);
const DOWNLOAD_TTL: Duration = Duration::seconds(90);
const JOB_LEASE: Duration = Duration::minutes(4);
const JOB_RETRY_DELAY: Duration = Duration::seconds(7);
const JOB_RETRY_MAX_DELAY: Duration = Duration::seconds(50);
const JOB_MAX_ATTEMPTS: u32 = 5;
const MAX_PENDING_UPLOADS: u32 = 17;
const FAILED_RETENTION: Duration = Duration::days(3);
const WEBHOOK_RETRY_DELAY: Duration = Duration::seconds(11);
const WEBHOOK_LEASE: Duration = Duration::seconds(45);
const DELIVERY_RETENTION: Duration = Duration::days(9);

fn config() -> IngestConfig {
    IngestConfig {
        upload_ttl: UPLOAD_TTL,
        download_ttl: DOWNLOAD_TTL,
        job_lease: JOB_LEASE,
        job_retry_delay: JOB_RETRY_DELAY,
        job_retry_max_delay: JOB_RETRY_MAX_DELAY,
        job_max_attempts: JOB_MAX_ATTEMPTS,
        max_pending_uploads: MAX_PENDING_UPLOADS,
        failed_retention: FAILED_RETENTION,
        webhook_retry_delay: WEBHOOK_RETRY_DELAY,
        webhook_lease: WEBHOOK_LEASE,
        delivery_retention: DELIVERY_RETENTION,
    }
}

/// A clock stopped at one instant.
#[derive(Debug)]
struct FixedClock(OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// What happened, in order, across ports: mock closures and fakes push to it.
#[derive(Clone, Debug, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, event: impl Into<String>) {
        self.0.lock().expect("journal lock").push(event.into());
    }

    fn entries(&self) -> Vec<String> {
        self.0.lock().expect("journal lock").clone()
    }

    fn count(&self, event: &str) -> usize {
        self.entries().iter().filter(|e| *e == event).count()
    }
}

/// The processing wake-up hint: records `job_queued` in the journal.
#[derive(Debug)]
struct RecordingSignal(Journal);

impl JobSignal for RecordingSignal {
    fn job_queued(&self) {
        self.0.push("job_queued");
    }
}

/// Download links that are easy to read back in assertions.
#[derive(Debug)]
struct FakeLinks {
    authentic: bool,
    /// When set, signing fails with this (e.g. the object store's credentials are missing).
    failure: Option<fn() -> BlobError>,
}

#[async_trait]
impl DownloadLinks for FakeLinks {
    async fn link(
        &self,
        base: &str,
        asset: &AssetId,
        format: MediaFormat,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<String, BlobError> {
        if let Some(failure) = self.failure {
            return Err(failure());
        }
        Ok(format!(
            "{base}/v1/downloads/{asset}.{}?signed={}&expires={}",
            format.extension(),
            now.unix_timestamp(),
            expires_at.unix_timestamp()
        ))
    }

    fn verify(&self, _link: &SignedDownload, _now: OffsetDateTime) -> bool {
        self.authentic
    }
}

/// A held upload lock whose holder is, or is not, asked to stop.
#[derive(Debug, Clone, Copy)]
enum FakeLease {
    /// Nobody else wants the upload.
    Undisturbed,
    /// A newer request for the upload asked this one to stop.
    StopRequested,
}

impl UploadLease for FakeLease {
    fn fence(&self) -> UploadFence {
        UploadFence {
            holder: "fake".into(),
            generation: *self as i64,
        }
    }

    fn stop_requested(&self) -> BoxFuture<'static, ()> {
        match self {
            Self::Undisturbed => future::pending().boxed(),
            Self::StopRequested => future::ready(()).boxed(),
        }
    }

    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        future::ready(()).boxed()
    }
}

/// A stored object read back for probing.
#[derive(Debug, Default)]
struct FakeReader(Cursor<Vec<u8>>);

impl Read for FakeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for FakeReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.0.seek(pos)
    }
}

impl BlobReader for FakeReader {
    fn byte_len(&self) -> Option<u64> {
        u64::try_from(self.0.get_ref().len()).ok()
    }
}

/// Encodes an event as its id: enough to check which body was signed and sent.
#[derive(Debug)]
struct IdEncoder;

impl crate::ports::EventEncoder for IdEncoder {
    fn encode(&self, event: &roughy_domain::WebhookEvent) -> Vec<u8> {
        event.id.as_str().as_bytes().to_vec()
    }
}

/// Every port of [`Ingest`]: mocks to set expectations on, then [`Harness::build`].
struct Harness {
    accounts: MockAccountRepo,
    projects: MockProjectRepo,
    assets: MockAssetRepo,
    uploads: MockUploadRepo,
    jobs: MockJobRepo,
    purges: MockPurgeQueue,
    idempotency: MockIdempotencyKeys,
    webhooks: MockWebhookRepo,
    webhook_transport: MockWebhookTransport,
    locks: MockUploadLocks,
    sink: MockUploadSink,
    blobs: MockBlobStore,
    media: MockMediaInspector,
    /// Replaces `media` when a test needs a probe that takes (virtual) time.
    slow_media: Option<Arc<dyn MediaInspector>>,
    links: FakeLinks,
    journal: Journal,
}

impl Harness {
    fn new() -> Self {
        Self {
            accounts: MockAccountRepo::new(),
            projects: MockProjectRepo::new(),
            assets: {
                // The reaper asks for failed assets' bytes past the retention; by default
                // there are none.
                let mut assets = MockAssetRepo::new();
                assets
                    .expect_release_failed_bytes()
                    .returning(|_, _, _| Ok(Vec::new()));
                assets
            },
            uploads: MockUploadRepo::new(),
            jobs: MockJobRepo::new(),
            purges: {
                // The reaper asks for leftover purges; by default there are none.
                let mut purges = MockPurgeQueue::new();
                purges.expect_pending_purges().returning(|_| Ok(Vec::new()));
                purges
            },
            idempotency: {
                // The reaper forgets expired idempotency keys; by default there are none.
                let mut keys = MockIdempotencyKeys::new();
                keys.expect_purge_expired_keys().returning(|_| Ok(0));
                keys
            },
            webhooks: {
                // The reaper forgets finished deliveries; by default there are none.
                let mut webhooks = MockWebhookRepo::new();
                webhooks.expect_prune_deliveries().returning(|_| Ok(0));
                webhooks
            },
            webhook_transport: MockWebhookTransport::new(),
            locks: MockUploadLocks::new(),
            sink: MockUploadSink::new(),
            blobs: MockBlobStore::new(),
            media: MockMediaInspector::new(),
            slow_media: None,
            links: FakeLinks {
                authentic: true,
                failure: None,
            },
            journal: Journal::default(),
        }
    }

    /// Every upload's lock is free: taking it (either way) succeeds, undisturbed.
    fn uploads_unlocked(&mut self) {
        self.locks.expect_try_acquire().returning(|_| {
            Ok(Some(
                Box::new(FakeLease::Undisturbed) as Box<dyn UploadLease>
            ))
        });
        self.locks
            .expect_acquire()
            .returning(|_| Ok(Box::new(FakeLease::Undisturbed) as Box<dyn UploadLease>));
    }

    /// The use cases over these ports. The mocks verify their call counts when it is dropped.
    fn build(self) -> Ingest {
        let ports = IngestPorts {
            accounts: Arc::new(self.accounts),
            projects: Arc::new(self.projects),
            assets: Arc::new(self.assets),
            uploads: Arc::new(self.uploads),
            jobs: Arc::new(self.jobs),
            purges: Arc::new(self.purges),
            idempotency: Arc::new(self.idempotency),
            webhooks: Arc::new(self.webhooks),
            webhook_transport: Arc::new(self.webhook_transport),
            event_encoder: Arc::new(IdEncoder),
            locks: Arc::new(self.locks),
            sink: Arc::new(self.sink),
            blobs: Arc::new(self.blobs),
            media: self.slow_media.unwrap_or_else(|| Arc::new(self.media)),
            links: Arc::new(self.links),
            job_signal: Arc::new(RecordingSignal(self.journal)),
            clock: Arc::new(FixedClock(NOW)),
            metrics: Arc::new(crate::ports::NoMetrics),
        };
        Ingest::new(ports, config())
    }

    /// Expects the purge of one deleted asset: its staged bytes (aborted with the staging the
    /// purge carries) and its object, once each, then the outbox entry marked done.
    fn expect_purge(&mut self, purge: &Purge) {
        let (upload, staging) = (purge.upload_id.clone(), purge.staging.clone());
        self.blobs
            .expect_abort_upload()
            .withf(move |id, s| *id == upload && *s == staging)
            .times(1)
            .returning(|_, _| Ok(()));
        let purged = purge.asset_id.clone();
        self.blobs
            .expect_delete_object()
            .withf(move |id| *id == purged)
            .times(1)
            .returning(|_| Ok(()));
        let done = purge.clone();
        self.purges
            .expect_purge_done()
            .withf(move |p| *p == done)
            .times(1)
            .returning(|_| Ok(()));
    }

    /// Expects that no stored bytes are purged.
    fn expect_no_purge(&mut self) {
        self.blobs.expect_abort_upload().never();
        self.blobs.expect_delete_object().never();
    }
}

/// The staging a (fake) sink reports for bytes stored up to `offset`: distinct per offset, so a
/// test sees which one was passed on. Nothing stored, nothing staged.
fn staged_to(offset: u64) -> Staging {
    if offset == 0 {
        Staging::default()
    } else {
        Staging::new(format!("parts-to-{offset}"))
    }
}

/// An upload of `account`'s with `length` bytes declared and `offset` stored (as
/// [`staged_to`] that offset).
fn active_upload(account: &AccountId, length: u64, offset: u64) -> Upload {
    Upload {
        id: UploadId::generate(),
        asset_id: AssetId::generate(),
        account_id: account.clone(),
        length: SizeBytes::new(length).expect("a valid declared size"),
        offset,
        expires_at: NOW + Duration::hours(1),
        state: UploadState::Active,
        staging: staged_to(offset),
    }
}

/// A finalised upload of `account`'s.
fn completed_upload(account: &AccountId, length: u64) -> Upload {
    Upload {
        state: UploadState::Completed,
        ..active_upload(account, length, length)
    }
}
