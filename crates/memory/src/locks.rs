//! Per-upload write locks inside one process, with release requests (as tusd does).
//!
//! A held lock is a slot in a map, owning a `watch` channel. The channel carries the stop
//! request (`false` → `true`), and its sender being dropped, when the lease drops and the slot
//! goes, is what waiters wait for. A `watch` keeps its value, so a holder's stop future
//! resolves whether it was created before or after the request.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use roughy_app::ports::{LockError, UploadFence, UploadLease, UploadLocks};
use roughy_domain::UploadId;

/// The name of this adapter's holder in its fences: one process, one holder.
const HOLDER: &str = "in-process";

/// The slots of held locks, by upload.
type Slots = Arc<Mutex<HashMap<UploadId, Slot>>>;

/// One held lock. It lives exactly as long as its lease: only the lease's drop removes it, and
/// no other slot can be made for the upload meanwhile.
#[derive(Debug)]
struct Slot {
    /// `true` once another request asked for the upload. Dropped with the slot.
    stop: watch::Sender<bool>,
    /// Numbers this holding (the fence's generation).
    generation: i64,
}

/// In-process [`UploadLocks`]: one holder per upload; a newcomer asks the holder to stop and
/// takes over once it lets go, or gives up with [`LockError::Locked`] after the wait.
///
/// Clones share the same locks. Only correct within one process.
#[derive(Clone)]
pub struct InProcessUploadLocks {
    slots: Slots,
    generations: Arc<AtomicI64>,
    wait: Duration,
}

impl InProcessUploadLocks {
    /// How long a newcomer waits for the holder by default ("a few seconds").
    pub const DEFAULT_WAIT: Duration = Duration::from_secs(3);

    /// Locks that wait [`Self::DEFAULT_WAIT`] for a holder to release.
    pub fn new() -> Self {
        Self::with_wait(Self::DEFAULT_WAIT)
    }

    /// Locks that wait `wait` for a holder to release before answering `Locked`.
    pub fn with_wait(wait: Duration) -> Self {
        Self {
            slots: Arc::default(),
            generations: Arc::new(AtomicI64::new(1)),
            wait,
        }
    }

    /// Whether `fence` names the current holding of the upload's lock: what the in-memory
    /// repository checks before each write under the lock.
    pub fn holds(&self, id: &UploadId, fence: &UploadFence) -> bool {
        fence.holder == HOLDER
            && lock(&self.slots)
                .get(id)
                .is_some_and(|slot| slot.generation == fence.generation)
    }

    /// How long a newcomer waits for the holder.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// What happened when trying to take the lock once.
    fn try_take(&self, id: &UploadId) -> Attempt {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(id) {
            // Subscribe before asking, under the map lock: the release cannot slip between.
            let released = slot.stop.subscribe();
            slot.stop.send_replace(true);
            return Attempt::Held(released);
        }
        Attempt::Taken(self.take_free(&mut slots, id))
    }

    /// Makes the slot of a free upload: the new holding.
    fn take_free(
        &self,
        slots: &mut HashMap<UploadId, Slot>,
        id: &UploadId,
    ) -> InProcessUploadLease {
        let (stop, stop_rx) = watch::channel(false);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        slots.insert(id.clone(), Slot { stop, generation });
        InProcessUploadLease {
            slots: Arc::clone(&self.slots),
            id: id.clone(),
            generation,
            stop: stop_rx,
        }
    }
}

impl Default for InProcessUploadLocks {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InProcessUploadLocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessUploadLocks")
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// One try at the lock.
enum Attempt {
    Taken(InProcessUploadLease),
    /// Held by another lease, which was asked to stop; the receiver closes when it lets go.
    Held(watch::Receiver<bool>),
}

#[async_trait]
impl UploadLocks for InProcessUploadLocks {
    async fn acquire(&self, id: &UploadId) -> Result<Box<dyn UploadLease>, LockError> {
        let deadline = Instant::now() + self.wait;
        loop {
            match self.try_take(id) {
                Attempt::Taken(lease) => return Ok(Box::new(lease)),
                Attempt::Held(mut released) => {
                    // `changed` fails only once the slot's sender is dropped: the holder let go.
                    let let_go = async { while released.changed().await.is_ok() {} };
                    if tokio::time::timeout_at(deadline, let_go).await.is_err() {
                        return Err(LockError::Locked);
                    }
                    // Several waiters may wake at once: whoever runs first takes the slot; the
                    // others find it held again and ask the new holder in turn.
                }
            }
        }
    }

    async fn try_acquire(&self, id: &UploadId) -> Result<Option<Box<dyn UploadLease>>, LockError> {
        let mut slots = lock(&self.slots);
        if slots.contains_key(id) {
            return Ok(None);
        }
        Ok(Some(Box::new(self.take_free(&mut slots, id))))
    }
}

/// A held upload lock from [`InProcessUploadLocks`]. Dropping it releases the lock and wakes
/// the waiters.
pub struct InProcessUploadLease {
    slots: Slots,
    id: UploadId,
    generation: i64,
    stop: watch::Receiver<bool>,
}

impl fmt::Debug for InProcessUploadLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessUploadLease")
            .field("id", &self.id)
            .field("stop_requested", &*self.stop.borrow())
            .finish_non_exhaustive()
    }
}

impl UploadLease for InProcessUploadLease {
    fn fence(&self) -> UploadFence {
        UploadFence {
            holder: HOLDER.to_owned(),
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

    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        // Dropping frees the slot at once and wakes the waiters.
        drop(self);
        Box::pin(std::future::ready(()))
    }
}

impl Drop for InProcessUploadLease {
    fn drop(&mut self) {
        // The slot under this id is this lease's (see `Slot`). Dropping it drops its sender,
        // which wakes every waiter.
        lock(&self.slots).remove(&self.id);
    }
}

/// Locks the slots. Each critical section is one map update that cannot be left half done,
/// so a poisoned mutex still holds consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
