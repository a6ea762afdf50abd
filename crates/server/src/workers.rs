//! Background workers: the processing worker, the expiry reaper and the webhook sender. They
//! poll the repository
//! (a wake-up signal only shortens the wait), so they are safe with several processes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use roughy_app::{Ingest, NotifyJobSignal};

/// How often the webhook sender looks for due deliveries.
const WEBHOOK_POLL: Duration = Duration::from_millis(500);

/// How often the processing worker looks for due jobs without a wake-up.
const PROCESSING_POLL: Duration = Duration::from_millis(500);

/// Runs processing jobs until stopped.
pub async fn processing(
    ingest: Ingest,
    signal: Arc<NotifyJobSignal>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        loop {
            match ingest.process_next_job().await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "processing worker: job failed; retrying later");
                    break;
                }
            }
            if *stop.borrow() {
                return;
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = signal.notified() => {}
            () = tokio::time::sleep(PROCESSING_POLL) => {}
        }
    }
}

/// Reaps expired uploads every `interval` until stopped.
pub async fn reaper(ingest: Ingest, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = ingest.reap_expired_uploads().await {
            tracing::warn!(error = %e, "reaper: sweep failed; retrying next round");
        }
    }
}

/// Sends due webhook deliveries until stopped: rounds back to back while there are due ones,
/// then a poll.
pub async fn webhooks(ingest: Ingest, mut stop: watch::Receiver<bool>) {
    loop {
        loop {
            match ingest.deliver_webhooks().await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "webhook sender: round failed; retrying later");
                    break;
                }
            }
            if *stop.borrow() {
                return;
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(WEBHOOK_POLL) => {}
        }
    }
}
