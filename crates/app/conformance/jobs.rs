//! The processing queue: leases, settlement exactly once, release.

use std::sync::Arc;

use roughy_app::ports::{AccountRepo, JobOutcome, JobRepo};
use roughy_domain::{AssetFailure, AssetState, LedgerKind, MediaFormat};
use time::Duration;

use crate::support::{at, minutes, World};

fn measured(n: u64) -> JobOutcome {
    JobOutcome::Measured {
        duration: minutes(n),
        format: None,
    }
}

#[tokio::test]
async fn jobs_are_claimed_oldest_first_and_leased() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let older = w.processing(&account, &project, at(1)).await;
    let newer = w.processing(&account, &project, at(2)).await;
    let lease = Duration::minutes(1);

    let first = w.repo.claim_job(at(10), lease).await.unwrap().unwrap();
    assert_eq!(first.asset.id, older.id);
    let second = w.repo.claim_job(at(10), lease).await.unwrap().unwrap();
    assert_eq!(second.asset.id, newer.id);
    assert_ne!(first.lease, second.lease);
    assert_eq!(
        w.repo.claim_job(at(69), lease).await.unwrap(),
        None,
        "both leased"
    );

    // A lease that ran out lets another worker take the job over, as a new attempt.
    let again = w.repo.claim_job(at(70), lease).await.unwrap().unwrap();
    assert_eq!(again.asset.id, older.id);
    assert_eq!(again.attempts, 1);
    assert_ne!(again.lease, first.lease);
}

#[tokio::test]
async fn a_covered_charge_is_debited_with_its_ledger_entry() {
    let w = World::new().await;
    let account = w.account().await;
    w.repo.top_up(&account, 10, at(0)).await.unwrap();
    let project = w.project(&account, at(0)).await;
    let asset = w.processing(&account, &project, at(1)).await;

    let job = w
        .repo
        .claim_job(at(2), Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    let outcome = JobOutcome::Measured {
        duration: minutes(4),
        format: Some(MediaFormat::Mka),
    };
    assert_eq!(
        w.repo.complete_job(&job, &outcome, at(3)).await.unwrap(),
        Some(AssetState::Ready)
    );
    let stored = w.get(&asset).await;
    assert_eq!(stored.state, AssetState::Ready);
    assert_eq!(stored.duration, Some(minutes(4)));
    assert_eq!(stored.format, Some(MediaFormat::Mka), "refined by probing");
    assert_eq!(w.repo.balance(&account).await.unwrap(), 6);
    let charge = &w.ledger(&account).await[0];
    assert_eq!(charge.kind, LedgerKind::AssetCharge);
    assert_eq!(charge.amount, -4);
    assert_eq!(charge.balance_after, 6);
    assert_eq!(charge.asset_id, Some(asset.id.clone()));
    assert_eq!(charge.created_at, at(3));
    w.assert_balance_matches_ledger(&account).await;

    // The job is gone: completing it again settles nothing.
    assert_eq!(
        w.repo.complete_job(&job, &outcome, at(4)).await.unwrap(),
        None
    );
    assert_eq!(
        w.repo
            .claim_job(at(100), Duration::minutes(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(w.repo.balance(&account).await.unwrap(), 6);
}

#[tokio::test]
async fn a_short_balance_waits_in_pending_payment_without_an_entry() {
    let w = World::new().await;
    let account = w.account().await;
    w.repo.top_up(&account, 2, at(0)).await.unwrap();
    let project = w.project(&account, at(0)).await;
    let asset = w.processing(&account, &project, at(1)).await;

    assert_eq!(
        w.measure_next(at(2), minutes(3)).await,
        AssetState::PendingPayment
    );
    assert_eq!(w.get(&asset).await.duration, Some(minutes(3)));
    assert_eq!(w.repo.balance(&account).await.unwrap(), 2);
    assert_eq!(w.ledger(&account).await.len(), 1);

    let outcome = w.repo.top_up(&account, 1, at(3)).await.unwrap();
    assert_eq!(outcome.activated, vec![asset.id.clone()]);
    assert_eq!(w.repo.balance(&account).await.unwrap(), 0);
    w.assert_balance_matches_ledger(&account).await;
}

#[tokio::test]
async fn a_failed_asset_is_never_charged() {
    let w = World::new().await;
    let account = w.account().await;
    w.repo.top_up(&account, 10, at(0)).await.unwrap();
    let project = w.project(&account, at(0)).await;
    let asset = w.processing(&account, &project, at(1)).await;

    let job = w
        .repo
        .claim_job(at(2), Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    let failure = AssetFailure {
        code: "media_corrupt".into(),
        message: "no frames".into(),
    };
    assert_eq!(
        w.repo
            .complete_job(&job, &JobOutcome::Failed(failure.clone()), at(3))
            .await
            .unwrap(),
        Some(AssetState::Failed)
    );
    let stored = w.get(&asset).await;
    assert_eq!(stored.failure, Some(failure));
    assert_eq!(stored.duration, None);
    assert_eq!(w.repo.balance(&account).await.unwrap(), 10);
    assert_eq!(
        w.repo
            .claim_job(at(100), Duration::minutes(1))
            .await
            .unwrap(),
        None
    );
    w.assert_balance_matches_ledger(&account).await;
}

#[tokio::test]
async fn a_stale_claim_settles_nothing_and_the_charge_happens_once() {
    let w = World::new().await;
    let account = w.account().await;
    w.repo.top_up(&account, 10, at(0)).await.unwrap();
    let project = w.project(&account, at(0)).await;
    let asset = w.processing(&account, &project, at(1)).await;

    let lease = Duration::minutes(1);
    let slow = w.repo.claim_job(at(2), lease).await.unwrap().unwrap();
    let fast = w.repo.claim_job(at(200), lease).await.unwrap().unwrap();
    assert_eq!(fast.asset.id, asset.id);

    // The worker whose lease ran out finishes late: its claim is stale.
    assert_eq!(
        w.repo
            .complete_job(&slow, &measured(3), at(201))
            .await
            .unwrap(),
        None
    );
    w.repo.release_job(&slow, at(202)).await.unwrap();
    assert_eq!(w.get(&asset).await.state, AssetState::Processing);
    assert_eq!(w.repo.balance(&account).await.unwrap(), 10);

    assert_eq!(
        w.repo
            .complete_job(&fast, &measured(3), at(203))
            .await
            .unwrap(),
        Some(AssetState::Ready)
    );
    assert_eq!(w.repo.balance(&account).await.unwrap(), 7);
    let charges = w
        .ledger(&account)
        .await
        .into_iter()
        .filter(|e| e.kind == LedgerKind::AssetCharge)
        .count();
    assert_eq!(charges, 1);
    w.assert_balance_matches_ledger(&account).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_workers_settle_a_job_exactly_once() {
    let w = World::new().await;
    for _ in 0..20 {
        let account = w.account().await;
        w.repo.top_up(&account, 100, at(0)).await.unwrap();
        let project = w.project(&account, at(0)).await;
        let asset = w.processing(&account, &project, at(1)).await;

        // Two workers claim at the same instant: one gets the job.
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let claims: Vec<_> = (0..2)
            .map(|_| {
                let (w, barrier) = (w.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    w.repo.claim_job(at(2), Duration::minutes(1)).await.unwrap()
                })
            })
            .collect();
        let mut claimed = Vec::new();
        for claim in claims {
            claimed.extend(claim.await.unwrap());
        }
        assert_eq!(claimed.len(), 1, "exactly one claim");
        let first = claimed.remove(0);

        // Its lease runs out; a second worker takes over; both complete at once.
        let second = w
            .repo
            .claim_job(at(120), Duration::minutes(1))
            .await
            .unwrap()
            .unwrap();
        let completions: Vec<_> = [first, second]
            .into_iter()
            .map(|job| {
                let (w, barrier) = (w.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    w.repo
                        .complete_job(&job, &measured(5), at(121))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut settled = Vec::new();
        for completion in completions {
            settled.extend(completion.await.unwrap());
        }
        assert_eq!(settled, vec![AssetState::Ready], "exactly one settlement");
        assert_eq!(w.get(&asset).await.state, AssetState::Ready);
        assert_eq!(w.repo.balance(&account).await.unwrap(), 95);
        w.assert_balance_matches_ledger(&account).await;
    }
}

#[tokio::test]
async fn a_released_job_comes_back_at_its_retry_time() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.processing(&account, &project, at(1)).await;
    let lease = Duration::minutes(10);

    let job = w.repo.claim_job(at(2), lease).await.unwrap().unwrap();
    w.repo.release_job(&job, at(30)).await.unwrap();
    assert_eq!(w.repo.claim_job(at(29), lease).await.unwrap(), None);
    let retry = w.repo.claim_job(at(30), lease).await.unwrap().unwrap();
    assert_eq!(retry.asset.id, asset.id);
    assert_eq!(retry.attempts, 1);

    // The released claim is stale now: it can neither complete nor release the retry.
    assert_eq!(
        w.repo
            .complete_job(&job, &measured(1), at(31))
            .await
            .unwrap(),
        None
    );
    w.repo.release_job(&job, at(32)).await.unwrap();
    assert_eq!(
        w.repo.claim_job(at(33), lease).await.unwrap(),
        None,
        "still leased"
    );
    assert_eq!(
        w.repo
            .complete_job(&retry, &measured(1), at(34))
            .await
            .unwrap(),
        Some(AssetState::PendingPayment)
    );
}

#[tokio::test]
async fn a_renewed_lease_is_not_taken_over_and_a_lost_one_cannot_be_renewed() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    w.processing(&account, &project, at(1)).await;
    let lease = Duration::minutes(1);
    let job = w.repo.claim_job(at(10), lease).await.unwrap().unwrap();
    assert!(w.repo.renew_job(&job, at(200)).await.unwrap());
    assert_eq!(w.repo.claim_job(at(199), lease).await.unwrap(), None);

    let taken = w.repo.claim_job(at(200), lease).await.unwrap().unwrap();
    assert_eq!(taken.attempts, 1);
    assert!(
        !w.repo.renew_job(&job, at(400)).await.unwrap(),
        "the old claim is lost"
    );
    assert!(w.repo.renew_job(&taken, at(400)).await.unwrap());
}
