//! Per-upload write locks shared by every server process: a lease row per held upload in
//! `upload_locks`, kept fresh by a heartbeat, with release requests (as tusd does).
//!
//! - **Acquire** inserts the row, or takes it over when its heartbeat is older than
//!   [`UploadLockSettings::stale_after`] (its holder died). If a live holder has it, the
//!   newcomer sets `stop_requested` and polls until the row is gone or stale, up to
//!   [`UploadLockSettings::wait`]; then it answers [`LockError::Locked`].
//! - **The lease** runs a heartbeat task. Each beat refreshes `heartbeat_at` (database time, so
//!   clocks of different hosts do not matter) and reads `stop_requested`; a request, or finding
//!   the row taken over, resolves [`UploadLease::stop_requested`]. A newcomer in the same
//!   process is heard at once, without waiting for a beat.
//! - **Dropping the lease** stops the heartbeat and deletes the row — only if it is still this
//!   lease's (holder and generation match), so a lease that was taken over never deletes its
//!   successor's row.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use roughy_app::ports::{LockError, UploadFence, UploadLease, UploadLocks};
use roughy_domain::ids::random_base62;
use roughy_domain::UploadId;

use crate::prepared::Prepared;
use crate::repository::PgRepository;
use crate::schema::upload_locks;

/// Timing of the upload locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadLockSettings {
    /// How long a newcomer waits for the holder to release ("a few seconds").
    pub wait: Duration,
    /// How often a waiting newcomer looks at the row again.
    pub poll_interval: Duration,
    /// How often a holder refreshes its row and looks for a stop request.
    pub heartbeat_interval: Duration,
    /// A row whose heartbeat is older than this belongs to a dead holder and may be taken
    /// over. Must be well above `heartbeat_interval`.
    pub stale_after: Duration,
}

impl Default for UploadLockSettings {
    fn default() -> Self {
        Self {
            // Longer than `stale_after`: a client resuming after its server process crashed
            // (its lease row left behind, heartbeat stopped) proceeds instead of getting 423.
            wait: Duration::from_secs(4),
            poll_interval: Duration::from_millis(50),
            heartbeat_interval: Duration::from_millis(750),
            stale_after: Duration::from_secs(3),
        }
    }
}

/// The stop signal of a lease held by this process, by upload.
type LocalLeases = Mutex<HashMap<UploadId, (i64, Arc<watch::Sender<bool>>)>>;

struct Shared {
    pool: Pool<AsyncPgConnection>,
    /// This process's (this value's) name in `upload_locks.holder`.
    holder: String,
    /// Numbers this value's leases; with `holder`, names one lease.
    generations: AtomicI64,
    settings: UploadLockSettings,
    local: LocalLeases,
}

/// [`UploadLocks`] over PostgreSQL: one writer per upload across every process sharing the
/// database. Clones share the same identity and local leases.
#[derive(Clone)]
pub struct PgUploadLocks {
    shared: Arc<Shared>,
}

impl fmt::Debug for PgUploadLocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgUploadLocks")
            .field("holder", &self.shared.holder)
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl PgUploadLocks {
    /// Locks over the repository's pool, with the default timing.
    pub fn new(repo: &PgRepository) -> Self {
        Self::with_settings(repo, UploadLockSettings::default())
    }

    /// Locks over the repository's pool, with this timing.
    pub fn with_settings(repo: &PgRepository, settings: UploadLockSettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                pool: repo.pool().clone(),
                holder: format!("{}:{}", std::process::id(), random_base62(12)),
                generations: AtomicI64::new(1),
                settings,
                local: Mutex::default(),
            }),
        }
    }

    /// The timing in force.
    pub fn settings(&self) -> UploadLockSettings {
        self.shared.settings
    }

    /// Inserts the lease row, or takes over a stale one. Whether the lease is ours now.
    async fn try_take(&self, id: &UploadId, generation: i64) -> Result<bool, LockError> {
        let mut conn = self.shared.pool.get().await.map_err(unavailable)?;
        let taken = Prepared(diesel::sql_query(
            "INSERT INTO upload_locks (upload_id, holder, generation, heartbeat_at, stop_requested) \
             VALUES ($1, $2, $3, clock_timestamp(), false) \
             ON CONFLICT (upload_id) DO UPDATE SET holder = EXCLUDED.holder, \
                 generation = EXCLUDED.generation, heartbeat_at = EXCLUDED.heartbeat_at, \
                 stop_requested = false \
             WHERE upload_locks.heartbeat_at < clock_timestamp() - make_interval(secs => $4)",
        )
        .bind::<Text, _>(id.as_str())
        .bind::<Text, _>(&self.shared.holder)
        .bind::<BigInt, _>(generation)
        .bind::<Double, _>(self.shared.settings.stale_after.as_secs_f64()))
        .execute(&mut conn)
        .await
        .map_err(unavailable)?;
        Ok(taken > 0)
    }

    /// Asks whoever holds the upload to stop: through the row, and directly when the holder is
    /// in this process.
    async fn request_stop(&self, id: &UploadId) -> Result<(), LockError> {
        if let Some((_, stop)) = lock(&self.shared.local).get(id) {
            stop.send_replace(true);
        }
        let mut conn = self.shared.pool.get().await.map_err(unavailable)?;
        diesel::update(
            upload_locks::table
                .find(id.as_str())
                .filter(upload_locks::stop_requested.eq(false)),
        )
        .set(upload_locks::stop_requested.eq(true))
        .execute(&mut conn)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// Wraps a row that is ours into a lease with its heartbeat.
    fn lease(&self, id: &UploadId, generation: i64) -> PgUploadLease {
        let (stop, stop_rx) = watch::channel(false);
        let stop = Arc::new(stop);
        lock(&self.shared.local).insert(id.clone(), (generation, Arc::clone(&stop)));
        let heartbeat = tokio::spawn(heartbeat(
            Arc::clone(&self.shared),
            id.clone(),
            generation,
            stop,
        ));
        PgUploadLease {
            shared: Arc::clone(&self.shared),
            id: id.clone(),
            generation,
            stop: stop_rx,
            heartbeat,
            released: false,
        }
    }
}

#[async_trait]
impl UploadLocks for PgUploadLocks {
    #[tracing::instrument(skip(self), fields(upload = %id))]
    async fn acquire(&self, id: &UploadId) -> Result<Box<dyn UploadLease>, LockError> {
        let settings = self.shared.settings;
        let deadline = Instant::now() + settings.wait;
        let generation = self.shared.generations.fetch_add(1, Ordering::Relaxed);
        loop {
            if self.try_take(id, generation).await? {
                return Ok(Box::new(self.lease(id, generation)));
            }
            self.request_stop(id).await?;
            let now = Instant::now();
            if now >= deadline {
                tracing::info!("the upload's holder did not release in time");
                return Err(LockError::Locked);
            }
            // The holder hears the request at its next beat, then drops its lease, which
            // deletes the row; or it died, and the row goes stale.
            tokio::time::sleep(settings.poll_interval.min(deadline - now)).await;
        }
    }

    #[tracing::instrument(skip(self), fields(upload = %id))]
    async fn try_acquire(&self, id: &UploadId) -> Result<Option<Box<dyn UploadLease>>, LockError> {
        let generation = self.shared.generations.fetch_add(1, Ordering::Relaxed);
        if self.try_take(id, generation).await? {
            Ok(Some(Box::new(self.lease(id, generation))))
        } else {
            Ok(None)
        }
    }
}

/// Keeps a held row fresh and relays stop requests until the lease is dropped (which aborts
/// this task).
async fn heartbeat(
    shared: Arc<Shared>,
    id: UploadId,
    generation: i64,
    stop: Arc<watch::Sender<bool>>,
) {
    let settings = shared.settings;
    let mut last_beat = Instant::now();
    loop {
        tokio::time::sleep(settings.heartbeat_interval).await;
        match beat(&shared, &id, generation).await {
            Ok(Some(requested)) => {
                last_beat = Instant::now();
                if requested {
                    stop.send_replace(true);
                }
            }
            Ok(None) => {
                // Taken over as stale (this process stalled): writing on would race the new
                // holder, so stop now. Nothing is left to keep fresh.
                tracing::warn!(upload = %id, "upload lease lost to another holder");
                stop.send_replace(true);
                return;
            }
            Err(e) => {
                tracing::warn!(upload = %id, error = %e, "upload lease heartbeat failed");
                // Without beats the row goes stale and may be taken over: stop before that.
                if last_beat.elapsed() >= settings.stale_after / 2 {
                    stop.send_replace(true);
                }
            }
        }
    }
}

/// One beat: refreshes the row if it is still this lease's. Returns whether a stop was
/// requested, or `None` when the row is no longer this lease's.
async fn beat(shared: &Shared, id: &UploadId, generation: i64) -> Result<Option<bool>, String> {
    let mut conn = shared.pool.get().await.map_err(|e| e.to_string())?;
    diesel::update(
        upload_locks::table
            .find(id.as_str())
            .filter(upload_locks::holder.eq(&shared.holder))
            .filter(upload_locks::generation.eq(generation)),
    )
    .set(upload_locks::heartbeat_at.eq(diesel::dsl::now))
    .returning(upload_locks::stop_requested)
    .get_result(&mut conn)
    .await
    .optional()
    .map_err(|e| e.to_string())
}

/// A held upload lock from [`PgUploadLocks`]. `release` deletes its row before it resolves,
/// so the next request of the same client finds the upload free; dropping it releases too,
/// from a spawned task.
pub struct PgUploadLease {
    shared: Arc<Shared>,
    id: UploadId,
    generation: i64,
    stop: watch::Receiver<bool>,
    heartbeat: JoinHandle<()>,
    /// Set once the row's deletion is under way (release or drop).
    released: bool,
}

impl fmt::Debug for PgUploadLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgUploadLease")
            .field("id", &self.id)
            .field("generation", &self.generation)
            .field("stop_requested", &*self.stop.borrow())
            .finish_non_exhaustive()
    }
}

impl UploadLease for PgUploadLease {
    fn fence(&self) -> UploadFence {
        UploadFence {
            holder: self.shared.holder.clone(),
            generation: self.generation,
        }
    }

    fn stop_requested(&self) -> BoxFuture<'static, ()> {
        let mut stop = self.stop.clone();
        Box::pin(async move {
            // `wait_for` looks at the current value first, so a request made before this
            // future existed counts. An error means the lease is gone: nothing left to stop.
            let _ = stop.wait_for(|requested| *requested).await;
        })
    }

    fn release(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        let row = self.disarm();
        Box::pin(async move {
            if let Some(row) = row {
                row.delete().await;
            }
        })
    }
}

/// The lease row to delete on release: only if it is still this holder's generation.
struct LeaseRow {
    shared: Arc<Shared>,
    id: UploadId,
    generation: i64,
}

impl LeaseRow {
    async fn delete(self) {
        let deleted = async {
            let mut conn = self.shared.pool.get().await.map_err(|e| e.to_string())?;
            diesel::delete(
                upload_locks::table
                    .find(self.id.as_str())
                    .filter(upload_locks::holder.eq(&self.shared.holder))
                    .filter(upload_locks::generation.eq(self.generation)),
            )
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())
        };
        if let Err(e) = deleted.await {
            tracing::warn!(upload = %self.id, error = %e, "could not release the upload lease; it will go stale");
        }
    }
}

impl PgUploadLease {
    /// Stops the heartbeat and forgets the lease in this process; returns its row to delete,
    /// the first time only.
    fn disarm(&mut self) -> Option<LeaseRow> {
        if self.released {
            return None;
        }
        self.released = true;
        self.heartbeat.abort();
        {
            let mut local = lock(&self.shared.local);
            if local
                .get(&self.id)
                .is_some_and(|(generation, _)| *generation == self.generation)
            {
                local.remove(&self.id);
            }
        }
        Some(LeaseRow {
            shared: Arc::clone(&self.shared),
            id: self.id.clone(),
            generation: self.generation,
        })
    }
}

impl Drop for PgUploadLease {
    /// A lease dropped without `release` (a cancelled request) deletes its row from a spawned
    /// task, so `drop` never blocks.
    fn drop(&mut self) {
        let Some(row) = self.disarm() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to delete the row with: it goes stale and is taken over.
            tracing::warn!(upload = %row.id, "upload lease dropped outside a runtime");
            return;
        };
        runtime.spawn(row.delete());
    }
}

/// A lock service failure.
fn unavailable(e: impl fmt::Display) -> LockError {
    LockError::Unavailable(e.to_string())
}

/// Locks the local leases. Each critical section is one map update that cannot be left half
/// done, so a poisoned mutex still holds consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
