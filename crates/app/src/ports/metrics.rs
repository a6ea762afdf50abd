//! Metrics: what the use cases report as it happens, and what a scrape samples from the store.

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;

use roughy_domain::MediaFormat;

use super::RepoError;

/// An upload's step, counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UploadEvent {
    /// Created with its asset (`POST /v1/assets`).
    Created,
    /// Every byte stored; processing queued.
    Completed,
    /// The first chunk was not supported media.
    Rejected,
    /// Cancelled by the client (TUS `DELETE`).
    Terminated,
    /// Idle past its expiry and reaped.
    Reaped,
}

impl UploadEvent {
    /// Every event, for exporters that list them up front.
    pub const ALL: [Self; 5] = [
        Self::Created,
        Self::Completed,
        Self::Rejected,
        Self::Terminated,
        Self::Reaped,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Completed => "completed",
            Self::Rejected => "rejected",
            Self::Terminated => "terminated",
            Self::Reaped => "reaped",
        }
    }
}

/// How a processing job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcessingOutcome {
    /// Measured and charged: `ready`.
    Ready,
    /// Measured, waiting for credits: `pending_payment`.
    PendingPayment,
    /// Broken media or out of attempts: `failed`.
    Failed,
    /// A transient failure: released for a retry.
    Retried,
    /// The asset was deleted or the job taken over meanwhile: nothing settled.
    Dropped,
}

impl ProcessingOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::PendingPayment => "pending_payment",
            Self::Failed => "failed",
            Self::Retried => "retried",
            Self::Dropped => "dropped",
        }
    }
}

/// Where the use cases report events. Every method is cheap and never fails.
pub trait Metrics: Send + Sync + fmt::Debug {
    /// An upload took a step.
    fn upload(&self, event: UploadEvent, count: u64);
    /// Bytes of PATCH bodies stored durably.
    fn bytes_received(&self, bytes: u64);
    /// A PATCH took (`+1`) or let go of (`-1`) its upload's lock in this process.
    fn upload_lock_held(&self, delta: i64);
    /// A processing job ended after `seconds`.
    fn processed(&self, format: MediaFormat, outcome: ProcessingOutcome, seconds: f64);
    /// Credits charged for assets.
    fn credits_charged(&self, credits: u64);
}

/// Metrics switched off.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn upload(&self, _: UploadEvent, _: u64) {}
    fn bytes_received(&self, _: u64) {}
    fn upload_lock_held(&self, _: i64) {}
    fn processed(&self, _: MediaFormat, _: ProcessingOutcome, _: f64) {}
    fn credits_charged(&self, _: u64) {}
}

/// What waits in the store, as a scrape sees it (shared by every process).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Uploads created and not yet complete.
    pub active_uploads: u64,
    /// Processing jobs queued or running.
    pub queued_jobs: u64,
    /// When the oldest of them became available.
    pub oldest_job_at: Option<OffsetDateTime>,
    /// Purges of stored bytes still to do.
    pub pending_purges: u64,
    /// Webhook deliveries waiting for an attempt or a retry.
    pub pending_deliveries: u64,
}

/// The connection pool of this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// The most connections it opens.
    pub max_size: u64,
    /// Connections open.
    pub size: u64,
    /// Connections handed out.
    pub in_use: u64,
    /// Callers waiting for one.
    pub waiting: u64,
}

/// What a scrape asks the repository.
#[async_trait]
pub trait BacklogProbe: Send + Sync {
    /// The backlog.
    async fn backlog(&self) -> Result<Backlog, RepoError>;
    /// The pool's state; `None` without a pool.
    fn pool(&self) -> Option<PoolStats>;
}
