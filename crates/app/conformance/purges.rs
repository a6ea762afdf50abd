//! The purge outbox: every deletion records its purge in the same step.

use roughy_app::ports::{AssetRepo, GoneReason, ProjectRepo, PurgeQueue, UploadRepo};

use crate::support::{at, World};

#[tokio::test]
async fn deletions_record_their_purges_until_marked_done() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let deleted = w.asset(&account, &project, at(1)).await;
    let discarded = w.asset(&account, &project, at(2)).await;
    let in_project = w.asset(&account, &project, at(3)).await;
    assert!(w.repo.pending_purges(10).await.unwrap().is_empty());

    let first = w
        .repo
        .delete_asset(&account, &deleted.id, at(4))
        .await
        .unwrap()
        .unwrap();
    let second = w
        .repo
        .discard_upload(
            &discarded.upload_id,
            GoneReason::Terminated,
            None,
            at(5),
            &w.fence(&discarded.upload_id).await,
        )
        .await
        .unwrap()
        .unwrap();
    let third = w
        .repo
        .delete_project(&account, &project, at(6))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].asset_id, in_project.id);

    // Oldest first, at most `limit`.
    assert_eq!(
        w.repo.pending_purges(10).await.unwrap(),
        vec![first.clone(), second.clone(), third[0].clone()]
    );
    assert_eq!(w.repo.pending_purges(1).await.unwrap(), vec![first.clone()]);

    // Done is forgotten, and saying so twice is harmless.
    w.repo.purge_done(&first).await.unwrap();
    w.repo.purge_done(&first).await.unwrap();
    assert_eq!(
        w.repo.pending_purges(10).await.unwrap(),
        vec![second, third[0].clone()]
    );
    // A refused deletion records nothing.
    assert_eq!(
        w.repo
            .delete_asset(&account, &deleted.id, at(7))
            .await
            .unwrap(),
        None
    );
    assert_eq!(w.repo.pending_purges(10).await.unwrap().len(), 2);
}
