//! Upload locks across processes: each `PgUploadLocks` below stands for one server process
//! (its own pool and holder name) on the same database.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures::FutureExt;
use roughy_app::ports::{LockError, UploadLocks};
use roughy_domain::UploadId;
use roughy_postgres::{PgRepository, PgUploadLocks, UploadLockSettings};
use tokio::time::Instant;

use crate::cluster::{fresh_url, test_config};

/// Quick timing, so hand-overs take a fraction of a second.
fn quick() -> UploadLockSettings {
    UploadLockSettings {
        wait: Duration::from_secs(3),
        poll_interval: Duration::from_millis(20),
        heartbeat_interval: Duration::from_millis(100),
        stale_after: Duration::from_secs(2),
    }
}

/// `n` processes on one new database.
async fn processes(n: usize, settings: &[UploadLockSettings]) -> (String, Vec<PgUploadLocks>) {
    let url = fresh_url().await;
    let mut locks = Vec::new();
    for i in 0..n {
        let repo = PgRepository::connect(&test_config(url.clone()))
            .await
            .expect("connects");
        locks.push(PgUploadLocks::with_settings(
            &repo,
            settings[i.min(settings.len() - 1)],
        ));
    }
    (url, locks)
}

/// Acquires in a task, as a second request would.
fn newcomer(
    locks: &PgUploadLocks,
    id: &UploadId,
) -> tokio::task::JoinHandle<Result<(), LockError>> {
    let (locks, id) = (locks.clone(), id.clone());
    tokio::spawn(async move { locks.acquire(&id).await.map(drop) })
}

#[tokio::test]
async fn a_newcomer_in_another_process_asks_the_holder_to_stop_and_takes_over() {
    let (_, p) = processes(2, &[quick()]).await;
    let id = UploadId::generate();
    let holder = p[0].acquire(&id).await.unwrap();
    let stop = holder.stop_requested();
    assert!(
        holder.stop_requested().now_or_never().is_none(),
        "nobody asked yet"
    );

    let next = newcomer(&p[1], &id);
    // The holder hears the request at its next heartbeat.
    tokio::time::timeout(Duration::from_secs(2), stop)
        .await
        .expect("the holder is asked to stop");
    assert!(holder.stop_requested().now_or_never().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!next.is_finished(), "waits while the holder keeps the lock");

    drop(holder);
    tokio::time::timeout(Duration::from_secs(2), next)
        .await
        .expect("takes over once the holder lets go")
        .unwrap()
        .unwrap();
    // The newcomer dropped its lease in turn: the lock is free for either process.
    let again = p[0].acquire(&id).await.unwrap();
    assert!(again.stop_requested().now_or_never().is_none());
}

#[tokio::test]
async fn a_newcomer_in_the_same_process_is_heard_without_waiting_for_a_heartbeat() {
    let slow_beat = UploadLockSettings {
        heartbeat_interval: Duration::from_secs(3600),
        ..quick()
    };
    let (_, p) = processes(1, &[slow_beat]).await;
    let id = UploadId::generate();
    let holder = p[0].acquire(&id).await.unwrap();
    let next = newcomer(&p[0], &id);
    tokio::time::timeout(Duration::from_secs(2), holder.stop_requested())
        .await
        .expect("heard at once");
    drop(holder);
    tokio::time::timeout(Duration::from_secs(2), next)
        .await
        .expect("takes over")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_holder_that_never_lets_go_leaves_the_newcomer_locked_out_after_the_wait() {
    let wait = Duration::from_millis(500);
    let (_, p) = processes(2, &[quick(), UploadLockSettings { wait, ..quick() }]).await;
    let id = UploadId::generate();
    let holder = p[0].acquire(&id).await.unwrap();

    let started = Instant::now();
    assert!(matches!(p[1].acquire(&id).await, Err(LockError::Locked)));
    assert!(started.elapsed() >= wait);
    assert!(started.elapsed() < wait + Duration::from_secs(2));
    // The holder was asked and still holds the lock.
    tokio::time::timeout(Duration::from_secs(1), holder.stop_requested())
        .await
        .expect("asked");
    drop(holder);
    tokio::time::timeout(Duration::from_secs(2), p[1].acquire(&id))
        .await
        .expect("free again")
        .unwrap();
}

#[tokio::test]
async fn the_default_timing_outwaits_a_dead_holder_and_beats_well_within_staleness() {
    let defaults = UploadLockSettings::default();
    // "A few seconds", and long enough to take over the row of a crashed process.
    assert_eq!(defaults.wait, Duration::from_secs(4));
    assert!(defaults.wait > defaults.stale_after);
    assert!(defaults.stale_after >= defaults.heartbeat_interval * 4);
}

#[tokio::test]
async fn a_holder_whose_heartbeat_stopped_is_taken_over_and_cannot_release_its_successor() {
    // The first process stalls: its lease never beats again (an hour between beats).
    let stalled = UploadLockSettings {
        heartbeat_interval: Duration::from_secs(3600),
        ..quick()
    };
    let stale_after = Duration::from_millis(800);
    let (_, p) = processes(
        3,
        &[
            stalled,
            UploadLockSettings {
                stale_after,
                ..quick()
            },
            UploadLockSettings {
                wait: Duration::from_millis(300),
                ..quick()
            },
        ],
    )
    .await;
    let id = UploadId::generate();
    // Timed from before the first row is written: its heartbeat is at least this old.
    let started = Instant::now();
    let dead = p[0].acquire(&id).await.unwrap();
    let successor = p[1]
        .acquire(&id)
        .await
        .expect("a stale lease is taken over");
    assert!(started.elapsed() >= stale_after);
    assert!(started.elapsed() < Duration::from_secs(3));

    // The stalled holder wakes up and drops its lease: the successor's row stays.
    drop(dead);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        matches!(p[2].acquire(&id).await, Err(LockError::Locked)),
        "the successor still holds the lock"
    );
    tokio::time::timeout(Duration::from_secs(1), successor.stop_requested())
        .await
        .expect("the successor was asked to stop");
    drop(successor);
    tokio::time::timeout(Duration::from_secs(2), p[2].acquire(&id))
        .await
        .expect("free again")
        .unwrap();
}

#[tokio::test]
async fn a_lease_row_left_by_a_crashed_process_is_taken_over() {
    use diesel_async::RunQueryDsl;
    let (url, p) = processes(1, &[quick()]).await;
    let id = UploadId::generate();
    // What a process killed with -9 leaves behind: a row whose heartbeat stopped long ago.
    let mut raw = AsyncPgConnection::establish(&url).await.unwrap();
    diesel::sql_query(
        "INSERT INTO upload_locks (upload_id, holder, generation, heartbeat_at) \
         VALUES ($1, 'crashed', 1, now() - interval '1 hour')",
    )
    .bind::<Text, _>(id.as_str())
    .execute(&mut raw)
    .await
    .unwrap();

    let started = Instant::now();
    let lease = p[0].acquire(&id).await.expect("taken over");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no need to wait for it"
    );
    assert!(lease.stop_requested().now_or_never().is_none());
}

#[tokio::test]
async fn a_lost_lease_tells_its_holder_to_stop() {
    use diesel_async::RunQueryDsl;
    let (url, p) = processes(1, &[quick()]).await;
    let id = UploadId::generate();
    let lease = p[0].acquire(&id).await.unwrap();
    // Someone took the row over (as a newcomer would after a long stall of this process).
    let mut raw = AsyncPgConnection::establish(&url).await.unwrap();
    diesel::sql_query("UPDATE upload_locks SET holder = 'other' WHERE upload_id = $1")
        .bind::<Text, _>(id.as_str())
        .execute(&mut raw)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), lease.stop_requested())
        .await
        .expect("the holder stops writing");
}

#[tokio::test]
async fn different_uploads_do_not_share_a_lock() {
    let (_, p) = processes(
        1,
        &[UploadLockSettings {
            wait: Duration::from_millis(10),
            ..quick()
        }],
    )
    .await;
    let a = p[0].acquire(&UploadId::generate()).await.unwrap();
    let b = p[0].acquire(&UploadId::generate()).await.unwrap();
    assert!(a.stop_requested().now_or_never().is_none());
    assert!(b.stop_requested().now_or_never().is_none());
}

#[tokio::test]
async fn a_stop_future_outliving_its_lease_resolves() {
    let (_, p) = processes(1, &[quick()]).await;
    let lease = p[0].acquire(&UploadId::generate()).await.unwrap();
    let stop = lease.stop_requested();
    drop(lease);
    tokio::time::timeout(Duration::from_secs(1), stop)
        .await
        .expect("resolves once the lease is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_through_two_processes_never_hold_one_upload_together() {
    let (_, p) = processes(
        2,
        &[UploadLockSettings {
            wait: Duration::from_secs(10),
            ..quick()
        }],
    )
    .await;
    let id = UploadId::generate();
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));

    let requests: Vec<_> = (0..8)
        .map(|i| {
            let (locks, id) = (p[i % 2].clone(), id.clone());
            let (inside, most) = (Arc::clone(&inside), Arc::clone(&most));
            tokio::spawn(async move {
                let lease = locks.acquire(&id).await?;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Write until asked to stop (or a while), as a PATCH would.
                let _ =
                    tokio::time::timeout(Duration::from_millis(50), lease.stop_requested()).await;
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
    tokio::time::timeout(Duration::from_secs(2), p[0].acquire(&id))
        .await
        .expect("free again")
        .unwrap();
}
