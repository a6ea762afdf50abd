//! Waking the processing workers when a job is queued: the one [`JobSignal`] adapter, used by
//! every wiring (it needs nothing but the process's own runtime).

use std::sync::Arc;

use tokio::sync::Notify;

use crate::ports::JobSignal;

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_signal_sent_before_the_worker_waits_is_kept() {
        let signal = NotifyJobSignal::new();
        signal.job_queued();
        tokio::time::timeout(Duration::from_secs(1), signal.notified())
            .await
            .expect("a permit was stored");
    }

    #[tokio::test]
    async fn a_waiting_worker_is_woken() {
        let signal = NotifyJobSignal::new();
        let notify = signal.notify();
        let worker = tokio::spawn(async move { notify.notified().await });
        tokio::task::yield_now().await;
        let as_port: &dyn JobSignal = &signal;
        as_port.job_queued();
        tokio::time::timeout(Duration::from_secs(1), worker)
            .await
            .expect("woken")
            .unwrap();
    }
}
