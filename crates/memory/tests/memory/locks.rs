//! Upload locks: release requests, hand-over, the wait limit, several waiters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use roughy_app::ports::{LockError, UploadLocks};
use roughy_domain::UploadId;
use roughy_memory::InProcessUploadLocks;
use tokio::time::Instant;

/// Acquires in a task, as a second request would.
fn newcomer(
    locks: &InProcessUploadLocks,
    id: &UploadId,
) -> tokio::task::JoinHandle<Result<(), LockError>> {
    let (locks, id) = (locks.clone(), id.clone());
    tokio::spawn(async move { locks.acquire(&id).await.map(drop) })
}

#[tokio::test(start_paused = true)]
async fn a_newcomer_asks_the_holder_to_stop_and_takes_over_when_it_lets_go() {
    let locks = InProcessUploadLocks::with_wait(Duration::from_secs(3));
    let id = UploadId::generate();
    let holder = locks.acquire(&id).await.unwrap();
    let stop = holder.stop_requested();
    assert!(
        holder.stop_requested().now_or_never().is_none(),
        "nobody asked yet"
    );

    let next = newcomer(&locks, &id);
    // Created before the request, it resolves once the newcomer asks.
    stop.await;
    // Created after the request, it resolves at once.
    assert!(holder.stop_requested().now_or_never().is_some());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!next.is_finished(), "waits while the holder keeps the lock");

    drop(holder);
    next.await.unwrap().unwrap();
    // The newcomer dropped its lease in turn: the lock is free.
    let again = locks.acquire(&id).await.unwrap();
    assert!(again.stop_requested().now_or_never().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_never_lets_go_leaves_the_newcomer_locked_out_after_the_wait() {
    let wait = Duration::from_millis(500);
    let locks = InProcessUploadLocks::with_wait(wait);
    let id = UploadId::generate();
    let holder = locks.acquire(&id).await.unwrap();

    let started = Instant::now();
    assert!(matches!(locks.acquire(&id).await, Err(LockError::Locked)));
    assert!(started.elapsed() >= wait);
    assert!(started.elapsed() < wait * 2);
    // The holder was asked and still holds the lock.
    assert!(holder.stop_requested().now_or_never().is_some());
    drop(holder);
    locks.acquire(&id).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_default_wait_is_three_seconds() {
    let locks = InProcessUploadLocks::default();
    assert_eq!(locks.wait(), Duration::from_secs(3));
    let id = UploadId::generate();
    let _holder = locks.acquire(&id).await.unwrap();
    let started = Instant::now();
    assert!(matches!(locks.acquire(&id).await, Err(LockError::Locked)));
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn different_uploads_do_not_share_a_lock() {
    let locks = InProcessUploadLocks::with_wait(Duration::from_millis(10));
    let a = locks.acquire(&UploadId::generate()).await.unwrap();
    let b = locks.acquire(&UploadId::generate()).await.unwrap();
    assert!(a.stop_requested().now_or_never().is_none());
    assert!(b.stop_requested().now_or_never().is_none());
}

#[tokio::test]
async fn a_stop_future_outliving_its_lease_resolves() {
    let locks = InProcessUploadLocks::new();
    let lease = locks.acquire(&UploadId::generate()).await.unwrap();
    let stop = lease.stop_requested();
    drop(lease);
    tokio::time::timeout(Duration::from_secs(1), stop)
        .await
        .expect("resolves once the lease is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_requests_for_one_upload_never_hold_it_together() {
    let locks = InProcessUploadLocks::with_wait(Duration::from_secs(5));
    let id = UploadId::generate();
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));

    let requests: Vec<_> = (0..8)
        .map(|_| {
            let (locks, id) = (locks.clone(), id.clone());
            let (inside, most) = (Arc::clone(&inside), Arc::clone(&most));
            tokio::spawn(async move {
                let lease = locks.acquire(&id).await?;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Write until asked to stop (or a while), as a PATCH would.
                let _ =
                    tokio::time::timeout(Duration::from_millis(20), lease.stop_requested()).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(lease);
                Ok::<_, LockError>(())
            })
        })
        .collect();
    for request in requests {
        request.await.unwrap().unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "one holder at a time");
    assert_eq!(inside.load(Ordering::SeqCst), 0);
    // All done: the lock is free again.
    locks.acquire(&id).await.unwrap();
}
