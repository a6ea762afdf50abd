//! Waking the processing workers when a job is queued.

use std::sync::Arc;

use tokio::sync::Notify;

use roughy_app::ports::JobSignal;

/// [`JobSignal`] over a [`tokio::sync::Notify`]: `job_queued` wakes one waiting worker, or
/// leaves a permit for the next one to wait, so a job queued between two polls is not missed.
///
/// Clones share the same `Notify`: hand one to the use cases and keep one in the worker.
#[derive(Clone, Debug, Default)]
pub struct NotifyJobSignal {
    notify: Arc<Notify>,
}

impl NotifyJobSignal {
    /// A signal with a fresh `Notify`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A signal over an existing `Notify`.
    pub fn from_notify(notify: Arc<Notify>) -> Self {
        Self { notify }
    }

    /// The `Notify` the workers wait on (`notify.notified().await`).
    pub fn notify(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// Resolves when a job was queued (at once if one was queued since the last wake-up).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl JobSignal for NotifyJobSignal {
    fn job_queued(&self) {
        // One job needs one worker; `notify_one` also stores a permit when nobody waits yet.
        self.notify.notify_one();
    }
}
