//! Assets: creation against the project's owner, tenancy, filters, the delete cascade.

use roughy_app::ports::{
    AccountRepo, AssetFilter, AssetRepo, GoneReason, JobOutcome, JobRepo, Purge, PurgeQueue,
    RepoError, UploadLookup, UploadRepo,
};
use roughy_domain::{AssetFailure, AssetState, MediaFormat, ProjectId, Staging};
use time::Duration;

use crate::support::{at, first, minutes, World, NO_LIMIT};

#[tokio::test]
async fn an_asset_needs_a_project_of_its_own_account() {
    let w = World::new().await;
    let account = w.account().await;
    let stranger = w.account().await;
    let strangers_project = w.project(&stranger, at(0)).await;

    let (asset, upload) = w.draft(&account, &strangers_project, at(1));
    assert!(matches!(
        w.repo.create_asset(&asset, &upload, NO_LIMIT).await,
        Err(RepoError::NotFound)
    ));
    let (asset, upload) = w.draft(&account, &ProjectId::generate(), at(1));
    assert!(matches!(
        w.repo.create_asset(&asset, &upload, NO_LIMIT).await,
        Err(RepoError::NotFound)
    ));
    // Nothing was stored by the refusals.
    assert_eq!(w.repo.get_asset(&account, &asset.id).await.unwrap(), None);
    assert_eq!(
        w.repo.find_upload(&account, &upload.id).await.unwrap(),
        UploadLookup::Unknown
    );

    let project = w.project(&account, at(0)).await;
    let (asset, upload) = w.draft(&account, &project, at(1));
    w.repo
        .create_asset(&asset, &upload, NO_LIMIT)
        .await
        .unwrap();
    assert_eq!(w.get(&asset).await, asset);
    assert_eq!(w.upload(&asset).await, upload);
    assert!(matches!(
        w.repo.create_asset(&asset, &upload, NO_LIMIT).await,
        Err(RepoError::Conflict(_))
    ));
}

#[tokio::test]
async fn another_accounts_asset_answers_as_missing() {
    let w = World::new().await;
    let owner = w.account().await;
    let stranger = w.account().await;
    let project = w.project(&owner, at(0)).await;
    let asset = w.asset(&owner, &project, at(1)).await;

    assert_eq!(w.repo.get_asset(&stranger, &asset.id).await.unwrap(), None);
    let listed = w
        .repo
        .list_assets(&stranger, &AssetFilter::default(), &first(10))
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    assert_eq!(
        w.repo
            .delete_asset(&stranger, &asset.id, at(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(w.get(&asset).await, asset, "untouched");
}

#[tokio::test]
async fn the_asset_list_filters_by_project_and_state_and_pages() {
    let w = World::new().await;
    let account = w.account().await;
    let a = w.project(&account, at(0)).await;
    let b = w.project(&account, at(0)).await;
    let a1 = w.asset(&account, &a, at(1)).await;
    let a2 = w.processing(&account, &a, at(2)).await;
    let b3 = w.asset(&account, &b, at(3)).await;
    let a4 = w.asset(&account, &a, at(4)).await;

    let ids = |filter: AssetFilter, limit: usize| {
        let w = w.clone();
        let account = account.clone();
        async move {
            let mut all = Vec::new();
            let mut request = first(limit);
            loop {
                let page = w
                    .repo
                    .list_assets(&account, &filter, &request)
                    .await
                    .unwrap();
                assert!(page.items.len() <= limit);
                all.extend(page.items.into_iter().map(|asset| asset.id));
                match page.next_cursor {
                    Some(cursor) => request.cursor = Some(cursor),
                    None => return all,
                }
            }
        }
    };
    assert_eq!(
        ids(AssetFilter::default(), 2).await,
        vec![a4.id.clone(), b3.id.clone(), a2.id.clone(), a1.id.clone()]
    );
    let in_a = AssetFilter {
        project_id: Some(a.clone()),
        state: None,
    };
    assert_eq!(
        ids(in_a, 1).await,
        vec![a4.id.clone(), a2.id.clone(), a1.id.clone()]
    );
    let pending_in_a = AssetFilter {
        project_id: Some(a),
        state: Some(AssetState::PendingUpload),
    };
    assert_eq!(
        ids(pending_in_a, 2).await,
        vec![a4.id.clone(), a1.id.clone()]
    );
    let processing = AssetFilter {
        project_id: None,
        state: Some(AssetState::Processing),
    };
    assert_eq!(ids(processing, 10).await, vec![a2.id.clone()]);
    let ready = AssetFilter {
        project_id: Some(b),
        state: Some(AssetState::Ready),
    };
    assert!(ids(ready, 10).await.is_empty());
}

#[tokio::test]
async fn deleting_an_asset_takes_its_job_and_leaves_an_upload_tombstone() {
    let w = World::new().await;
    let account = w.account().await;
    let stranger = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.processing(&account, &project, at(1)).await;

    let purge = w
        .repo
        .delete_asset(&account, &asset.id, at(2))
        .await
        .unwrap();
    assert_eq!(
        purge,
        Some(Purge {
            asset_id: asset.id.clone(),
            upload_id: asset.upload_id.clone(),
            staging: World::final_staging(),
        })
    );
    assert_eq!(w.repo.get_asset(&account, &asset.id).await.unwrap(), None);
    assert_eq!(
        w.repo
            .find_upload(&account, &asset.upload_id)
            .await
            .unwrap(),
        UploadLookup::Gone(GoneReason::AssetDeleted)
    );
    assert_eq!(
        w.repo
            .find_upload(&stranger, &asset.upload_id)
            .await
            .unwrap(),
        UploadLookup::Unknown,
        "another account's tombstone is unknown"
    );
    assert_eq!(
        w.repo.claim_job(at(3), Duration::minutes(1)).await.unwrap(),
        None
    );
    assert_eq!(
        w.repo
            .delete_asset(&account, &asset.id, at(4))
            .await
            .unwrap(),
        None,
        "a second delete finds nothing"
    );
}

#[tokio::test]
async fn an_asset_deleted_mid_job_is_never_charged() {
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
    w.repo
        .delete_asset(&account, &asset.id, at(3))
        .await
        .unwrap();
    let outcome = JobOutcome::Measured {
        duration: minutes(3),
        format: None,
    };
    assert_eq!(
        w.repo.complete_job(&job, &outcome, at(4)).await.unwrap(),
        None
    );
    assert_eq!(w.repo.balance(&account).await.unwrap(), 10);
    assert_eq!(w.ledger(&account).await.len(), 1, "only the top-up");
    w.assert_balance_matches_ledger(&account).await;
}

#[tokio::test]
async fn creating_past_the_pending_upload_limit_stores_nothing() {
    let w = World::new().await;
    let account = w.account().await;
    let other = w.account().await;
    let project = w.project(&account, at(0)).await;
    let others_project = w.project(&other, at(0)).await;
    let limit = 2;
    let mut pending = Vec::new();
    for n in 1..=limit {
        let (asset, upload) = w.draft(&account, &project, at(n.into()));
        w.repo.create_asset(&asset, &upload, limit).await.unwrap();
        pending.push(asset);
    }
    let (refused, upload) = w.draft(&account, &project, at(5));
    assert!(matches!(
        w.repo.create_asset(&refused, &upload, limit).await,
        Err(RepoError::TooManyPending)
    ));
    assert_eq!(w.repo.get_asset(&account, &refused.id).await.unwrap(), None);
    // Another account has its own count.
    let (theirs, upload) = w.draft(&other, &others_project, at(5));
    w.repo.create_asset(&theirs, &upload, limit).await.unwrap();
    // An upload that completes is no longer pending: room for one more.
    let done = &pending[0].upload_id;
    let fence = w.fence(done).await;
    w.repo
        .identify_upload(done, MediaFormat::Wav, &Staging::new("s"), &fence)
        .await
        .unwrap();
    w.repo
        .finalize_upload(done, &Staging::new("s;1"), None, at(6), &fence)
        .await
        .unwrap();
    let (admitted, upload) = w.draft(&account, &project, at(7));
    w.repo
        .create_asset(&admitted, &upload, limit)
        .await
        .unwrap();
    let (refused, upload) = w.draft(&account, &project, at(8));
    assert!(matches!(
        w.repo.create_asset(&refused, &upload, limit).await,
        Err(RepoError::TooManyPending)
    ));
}

#[tokio::test]
async fn bytes_of_failed_assets_are_released_once_after_the_retention() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let failed = w.processing(&account, &project, at(1)).await;
    let ready = w.processing(&account, &project, at(2)).await;
    w.repo.top_up(&account, 100, at(0)).await.unwrap();
    let job = w
        .repo
        .claim_job(at(10), Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.asset.id, failed.id);
    let failure = AssetFailure {
        code: "media_corrupt".into(),
        message: "broken".into(),
    };
    w.repo
        .complete_job(&job, &JobOutcome::Failed(failure.clone()), at(10))
        .await
        .unwrap();
    assert_eq!(w.measure_next(at(11), minutes(1)).await, AssetState::Ready);

    // Not yet past the retention.
    assert!(w
        .repo
        .release_failed_bytes(at(10), at(20), 10)
        .await
        .unwrap()
        .is_empty());
    let released = w
        .repo
        .release_failed_bytes(at(11), at(20), 10)
        .await
        .unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].asset_id, failed.id);
    assert_eq!(released[0].upload_id, failed.upload_id);
    assert_eq!(released[0].staging, World::final_staging());
    // Recorded in the outbox with the release; released once.
    assert_eq!(w.repo.pending_purges(10).await.unwrap(), released);
    assert!(w
        .repo
        .release_failed_bytes(at(1_000), at(1_000), 10)
        .await
        .unwrap()
        .is_empty());
    // The asset and its error stay; the ready one is untouched.
    let kept = w.get(&failed).await;
    assert_eq!(kept.state, AssetState::Failed);
    assert_eq!(kept.failure, Some(failure));
    assert_eq!(w.get(&ready).await.state, AssetState::Ready);
}
