//! The job signal wakes a waiting worker, and is not lost when nobody waits yet.

use std::time::Duration;

use roughy_app::ports::JobSignal;
use roughy_memory::NotifyJobSignal;

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
