//! Webhooks: each state change writes its event to the outbox of the endpoints subscribed to
//! it, in the same step (a refused change writes none); claims are exclusive and leased;
//! attempts are recorded once per claim.

use time::Duration;

use roughy_app::ports::{
    AccountRepo, AssetRepo, GoneReason, JobOutcome, JobRepo, ProjectRepo, UploadRepo, WebhookRepo,
};
use roughy_domain::{
    AccountId, AssetFailure, AssetState, DeliveryState, EventKind, Webhook, WebhookUrl,
};

use crate::support::{at, first, minutes, World};

async fn endpoint(w: &World, account: &AccountId, events: &[EventKind]) -> Webhook {
    let hook = Webhook::new(
        account.clone(),
        WebhookUrl::parse("https://hooks.example.com/roughy").expect("a url"),
        events.to_vec(),
        at(0),
    );
    assert!(w
        .repo
        .create_webhook(&hook, 20)
        .await
        .expect("the repository answers"));
    hook
}

/// The events of an endpoint's deliveries, oldest first, with their assets' ids and states.
async fn announced(w: &World, hook: &Webhook) -> Vec<(EventKind, String, AssetState)> {
    let page = w
        .repo
        .list_deliveries(&hook.account_id, &hook.id, &first(100))
        .await
        .expect("the repository answers")
        .expect("the caller's endpoint");
    let mut events: Vec<_> = page
        .items
        .into_iter()
        .map(|r| {
            let e = r.delivery.event;
            (e.kind, e.asset.id.to_string(), e.asset.state)
        })
        .collect();
    events.reverse();
    events
}

#[tokio::test]
async fn every_state_change_announces_its_event_to_the_endpoints_subscribed_to_it() {
    let w = World::new().await;
    let account = w.account().await;
    let other = w.account().await;
    let all = endpoint(&w, &account, &EventKind::ALL).await;
    let failures = endpoint(&w, &account, &[EventKind::AssetFailed]).await;
    let elsewhere = endpoint(&w, &other, &EventKind::ALL).await;
    let project = w.project(&account, at(0)).await;

    // Measured with no credits: pending_payment; a top-up makes it ready.
    let paid_later = w.pending_payment(&account, &project, at(1), 2).await;
    w.repo.top_up(&account, 10, at(2)).await.unwrap();
    // Measured and paid at once: ready.
    let ready = w.processing(&account, &project, at(3)).await;
    assert_eq!(w.measure_next(at(4), minutes(1)).await, AssetState::Ready);
    // Failed.
    let failed = w.processing(&account, &project, at(5)).await;
    let job = w
        .repo
        .claim_job(at(6), Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    let failure = AssetFailure {
        code: "media_corrupt".into(),
        message: "no frames".into(),
    };
    w.repo
        .complete_job(&job, &JobOutcome::Failed(failure), at(6))
        .await
        .unwrap();
    // Gone: rejected, expired, terminated uploads, a deleted asset, a deleted project's asset.
    let mut gone = Vec::new();
    for (n, reason) in [
        GoneReason::Rejected,
        GoneReason::Expired,
        GoneReason::Terminated,
    ]
    .into_iter()
    .enumerate()
    {
        let secs = 7 + i64::try_from(n).unwrap();
        let asset = w.asset(&account, &project, at(secs)).await;
        let fence = w.fence(&asset.upload_id).await;
        w.repo
            .discard_upload(&asset.upload_id, reason, None, at(secs), &fence)
            .await
            .unwrap()
            .expect("discarded");
        gone.push((reason.event(), asset));
    }
    let deleted = w.asset(&account, &project, at(10)).await;
    w.repo
        .delete_asset(&account, &deleted.id, at(11))
        .await
        .unwrap();
    let doomed = w.project(&account, at(12)).await;
    let in_project = w.asset(&account, &doomed, at(12)).await;
    w.repo
        .delete_project(&account, &doomed, at(13))
        .await
        .unwrap();

    let mut expected = vec![
        (
            EventKind::AssetPendingPayment,
            paid_later.id.to_string(),
            AssetState::PendingPayment,
        ),
        (
            EventKind::AssetReady,
            paid_later.id.to_string(),
            AssetState::Ready,
        ),
        (
            EventKind::AssetReady,
            ready.id.to_string(),
            AssetState::Ready,
        ),
        (
            EventKind::AssetFailed,
            failed.id.to_string(),
            AssetState::Failed,
        ),
    ];
    for (kind, asset) in &gone {
        expected.push((*kind, asset.id.to_string(), AssetState::PendingUpload));
    }
    expected.push((
        EventKind::AssetDeleted,
        deleted.id.to_string(),
        AssetState::PendingUpload,
    ));
    expected.push((
        EventKind::AssetDeleted,
        in_project.id.to_string(),
        AssetState::PendingUpload,
    ));
    assert_eq!(announced(&w, &all).await, expected);
    assert_eq!(
        gone.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [
            EventKind::UploadRejected,
            EventKind::UploadExpired,
            EventKind::AssetDeleted
        ]
    );
    assert_eq!(
        announced(&w, &failures).await,
        vec![(
            EventKind::AssetFailed,
            failed.id.to_string(),
            AssetState::Failed
        )]
    );
    assert!(announced(&w, &elsewhere).await.is_empty());

    // The snapshot is the asset as stored right after the change, every field of it.
    let page = w
        .repo
        .list_deliveries(&account, &all.id, &first(100))
        .await
        .unwrap()
        .unwrap();
    let ready_event = page
        .items
        .iter()
        .find(|r| r.delivery.event.asset.id == ready.id)
        .unwrap();
    assert_eq!(ready_event.delivery.event.asset, w.get(&ready).await);
    assert_eq!(ready_event.delivery.event.created_at, at(4));
    assert_eq!(ready_event.delivery.state, DeliveryState::Pending);
    assert_eq!(ready_event.delivery.attempts, 0);
    assert!(ready_event.attempts.is_empty());
    // One event, one id, whichever endpoints hear it.
    let failed_for_all = page
        .items
        .iter()
        .find(|r| r.delivery.event.asset.id == failed.id)
        .unwrap();
    let failed_for_failures = w
        .repo
        .list_deliveries(&account, &failures.id, &first(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failed_for_all.delivery.event.id,
        failed_for_failures.items[0].delivery.event.id
    );
    assert_ne!(
        failed_for_all.delivery.id,
        failed_for_failures.items[0].delivery.id
    );
}

#[tokio::test]
async fn a_refused_or_stale_change_announces_nothing() {
    let w = World::new().await;
    let account = w.account().await;
    let other = w.account().await;
    let hook = endpoint(&w, &account, &EventKind::ALL).await;
    let project = w.project(&account, at(0)).await;

    // A stale claim settles nothing, so announces nothing.
    w.processing(&account, &project, at(1)).await;
    let lease = Duration::minutes(1);
    let slow = w.repo.claim_job(at(2), lease).await.unwrap().unwrap();
    let fast = w.repo.claim_job(at(200), lease).await.unwrap().unwrap();
    let outcome = JobOutcome::Measured {
        duration: minutes(1),
        format: None,
    };
    assert_eq!(
        w.repo.complete_job(&slow, &outcome, at(201)).await.unwrap(),
        None
    );
    // Not the caller's: nothing deleted, nothing announced.
    let asset = w.asset(&account, &project, at(3)).await;
    assert!(w
        .repo
        .delete_asset(&other, &asset.id, at(4))
        .await
        .unwrap()
        .is_none());
    assert!(w
        .repo
        .delete_project(&other, &project, at(4))
        .await
        .unwrap()
        .is_none());
    // Refreshed since it was listed as expired: not discarded, not announced.
    let fence = w.fence(&asset.upload_id).await;
    assert!(w
        .repo
        .discard_upload(
            &asset.upload_id,
            GoneReason::Expired,
            Some(at(5)),
            at(5),
            &fence
        )
        .await
        .unwrap()
        .is_none());
    // A top-up that activates nothing announces nothing.
    w.repo.top_up(&account, 5, at(6)).await.unwrap();
    assert!(announced(&w, &hook).await.is_empty());

    // The current claim's change is announced, once.
    assert_eq!(
        w.repo.complete_job(&fast, &outcome, at(202)).await.unwrap(),
        Some(AssetState::Ready)
    );
    assert_eq!(announced(&w, &hook).await.len(), 1);
}

#[tokio::test]
async fn claims_are_exclusive_and_leased_and_an_attempt_is_recorded_once_per_claim() {
    let w = World::new().await;
    let account = w.account().await;
    let hook = endpoint(&w, &account, &[EventKind::AssetDeleted]).await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(1)).await;
    w.repo
        .delete_asset(&account, &asset.id, at(10))
        .await
        .unwrap();

    let lease = Duration::seconds(60);
    assert!(
        w.repo
            .claim_deliveries(at(9), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let claimed = w.repo.claim_deliveries(at(10), lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let claim = claimed.into_iter().next().unwrap();
    assert_eq!(claim.url, hook.url);
    assert_eq!(claim.secret, hook.secret);
    assert_eq!(claim.delivery.event.kind, EventKind::AssetDeleted);
    assert_eq!(claim.delivery.event.asset, asset);
    assert!(
        w.repo
            .claim_deliveries(at(69), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );

    // The receiver answered 500: the retry is due 30 s later.
    let (failed, recorded) = w.answer(&claim, at(10), Ok(500)).await;
    assert!(recorded);
    assert!(
        !w.answer(&claim, at(10), Ok(500)).await.1,
        "a claim records one attempt"
    );
    assert!(w
        .repo
        .claim_deliveries(at(39), lease, 10)
        .await
        .unwrap()
        .is_empty());

    // The next claim's worker dies; after its lease another takes the delivery over, and the
    // dead one's late record is refused.
    let dead = w
        .repo
        .claim_deliveries(at(40), lease, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(dead.delivery.attempts, 1);
    let taken = w
        .repo
        .claim_deliveries(at(100), lease, 10)
        .await
        .unwrap()
        .remove(0);
    assert_ne!(taken.lease, dead.lease);
    assert!(!w.answer(&dead, at(100), Err("connection refused")).await.1);
    let (ok, recorded) = w.answer(&taken, at(101), Ok(204)).await;
    assert!(recorded);
    assert!(
        w.repo
            .claim_deliveries(at(10_000), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "delivered"
    );

    let records = w
        .repo
        .list_deliveries(&account, &hook.id, &first(10))
        .await
        .unwrap()
        .unwrap()
        .items;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].delivery.state, DeliveryState::Delivered);
    assert_eq!(records[0].delivery.attempts, 2);
    assert_eq!(records[0].attempts, vec![failed, ok]);
}

#[tokio::test]
async fn concurrent_claims_never_hand_out_one_delivery_twice() {
    let w = World::new().await;
    let account = w.account().await;
    endpoint(&w, &account, &[EventKind::AssetDeleted]).await;
    let project = w.project(&account, at(0)).await;
    for n in 0..12 {
        let asset = w.asset(&account, &project, at(n)).await;
        w.repo
            .delete_asset(&account, &asset.id, at(20))
            .await
            .unwrap();
    }
    let claims = futures::future::join_all(
        (0..4).map(|_| w.repo.claim_deliveries(at(30), Duration::seconds(60), 5)),
    )
    .await;
    let mut ids: Vec<String> = claims
        .into_iter()
        .flat_map(|c| c.unwrap())
        .map(|c| c.delivery.id.to_string())
        .collect();
    let claimed = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), claimed, "no delivery claimed twice");
    assert_eq!(claimed, 12, "every due delivery claimed by someone");
}

#[tokio::test]
async fn endpoints_are_the_callers_and_limited_per_account() {
    let w = World::new().await;
    let account = w.account().await;
    let other = w.account().await;
    let one = endpoint(&w, &account, &[EventKind::AssetReady]).await;
    let two = endpoint(&w, &account, &[EventKind::AssetFailed]).await;
    let third = Webhook::new(
        account.clone(),
        WebhookUrl::parse("https://third.example.com/").unwrap(),
        vec![EventKind::AssetReady],
        at(1),
    );
    assert!(
        !w.repo.create_webhook(&third, 2).await.unwrap(),
        "at the maximum"
    );
    // Oldest first; the two were registered at the same instant, so by id.
    let mut both = vec![one.clone(), two.clone()];
    both.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(w.repo.list_webhooks(&account).await.unwrap(), both);
    assert!(w.repo.list_webhooks(&other).await.unwrap().is_empty());
    assert_eq!(
        w.repo.get_webhook(&account, &one.id).await.unwrap(),
        Some(one.clone())
    );
    assert_eq!(w.repo.get_webhook(&other, &one.id).await.unwrap(), None);
    assert!(w
        .repo
        .list_deliveries(&other, &one.id, &first(10))
        .await
        .unwrap()
        .is_none());
    assert!(!w.repo.delete_webhook(&other, &one.id).await.unwrap());

    // Deleting an endpoint drops its pending deliveries.
    let project = w.project(&account, at(0)).await;
    w.processing(&account, &project, at(1)).await;
    w.repo.top_up(&account, 5, at(1)).await.unwrap();
    assert_eq!(w.measure_next(at(2), minutes(1)).await, AssetState::Ready);
    assert!(w.repo.delete_webhook(&account, &one.id).await.unwrap());
    assert!(w
        .repo
        .claim_deliveries(at(3), Duration::seconds(60), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(w.repo.list_webhooks(&account).await.unwrap(), vec![two]);
}

#[tokio::test]
async fn pruning_forgets_finished_deliveries_older_than_the_cutoff_only() {
    let w = World::new().await;
    let account = w.account().await;
    let hook = endpoint(&w, &account, &[EventKind::AssetDeleted]).await;
    let project = w.project(&account, at(0)).await;
    for secs in [10, 20] {
        let asset = w.asset(&account, &project, at(secs)).await;
        w.repo
            .delete_asset(&account, &asset.id, at(secs))
            .await
            .unwrap();
    }
    // The older one is delivered; the newer stays pending.
    let claim = w
        .repo
        .claim_deliveries(at(10), Duration::seconds(60), 1)
        .await
        .unwrap()
        .remove(0);
    assert!(w.answer(&claim, at(10), Ok(200)).await.1);

    assert_eq!(
        w.repo.prune_deliveries(at(10)).await.unwrap(),
        0,
        "not older than the cutoff"
    );
    assert_eq!(w.repo.prune_deliveries(at(1_000)).await.unwrap(), 1);
    let left = w
        .repo
        .list_deliveries(&account, &hook.id, &first(10))
        .await
        .unwrap()
        .unwrap()
        .items;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].delivery.state,
        DeliveryState::Pending,
        "pending is never pruned"
    );
}
