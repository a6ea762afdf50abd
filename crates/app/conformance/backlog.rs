//! The backlog a metrics scrape reads: active uploads, queued jobs and the oldest one's time,
//! the purge outbox; each moves with the rows behind it.

use roughy_app::ports::{AssetRepo, Backlog, BacklogProbe, PurgeQueue};

use crate::support::{at, minutes, World};

#[tokio::test]
async fn the_backlog_follows_uploads_jobs_and_purges() {
    let w = World::new().await;
    assert_eq!(w.repo.backlog().await.unwrap(), Backlog::default());
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let pending = w.asset(&account, &project, at(1)).await;
    w.asset(&account, &project, at(2)).await;
    assert_eq!(
        w.repo.backlog().await.unwrap(),
        Backlog {
            active_uploads: 2,
            ..Backlog::default()
        }
    );
    // A finished upload queues a job, available from when it finished.
    w.processing(&account, &project, at(10)).await;
    w.processing(&account, &project, at(20)).await;
    let backlog = w.repo.backlog().await.unwrap();
    assert_eq!(backlog.active_uploads, 2);
    assert_eq!(backlog.queued_jobs, 2);
    assert_eq!(backlog.oldest_job_at, Some(at(10)));
    // Measured: the oldest job is gone.
    w.measure_next(at(30), minutes(1)).await;
    let backlog = w.repo.backlog().await.unwrap();
    assert_eq!(backlog.queued_jobs, 1);
    assert_eq!(backlog.oldest_job_at, Some(at(20)));
    // A deletion leaves a purge until it is done.
    let purge = w
        .repo
        .delete_asset(&account, &pending.id, at(40))
        .await
        .unwrap()
        .unwrap();
    let backlog = w.repo.backlog().await.unwrap();
    assert_eq!((backlog.active_uploads, backlog.pending_purges), (1, 1));
    w.repo.purge_done(&purge).await.unwrap();
    assert_eq!(w.repo.backlog().await.unwrap().pending_purges, 0);
}

#[tokio::test]
async fn the_backlog_counts_webhook_deliveries_until_they_are_delivered() {
    use roughy_app::ports::WebhookRepo;
    use roughy_domain::{EventKind, Webhook, WebhookUrl};
    use time::Duration;

    let w = World::new().await;
    let account = w.account().await;
    let hook = Webhook::new(
        account.clone(),
        WebhookUrl::parse("https://hooks.example.com/").unwrap(),
        vec![EventKind::AssetDeleted],
        at(0),
    );
    assert!(w.repo.create_webhook(&hook, 20).await.unwrap());
    let project = w.project(&account, at(0)).await;
    for secs in [1, 2] {
        let asset = w.asset(&account, &project, at(secs)).await;
        w.repo
            .delete_asset(&account, &asset.id, at(secs))
            .await
            .unwrap();
    }
    assert_eq!(w.repo.backlog().await.unwrap().pending_deliveries, 2);
    let claim = w
        .repo
        .claim_deliveries(at(3), Duration::seconds(60), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        w.repo.backlog().await.unwrap().pending_deliveries,
        2,
        "claimed is still pending"
    );
    assert!(w.answer(&claim, at(3), Ok(204)).await.1);
    assert_eq!(w.repo.backlog().await.unwrap().pending_deliveries, 1);
}
