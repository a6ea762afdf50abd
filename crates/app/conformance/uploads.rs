//! Uploads: lookup with tombstones, progress, finalisation, discarding, expiry.

use roughy_app::ports::{
    AssetRepo, GoneReason, JobRepo, Purge, RepoError, UploadLookup, UploadRepo,
};
use roughy_domain::{AssetState, MediaFormat, UploadId, UploadState};
use time::Duration;

use crate::support::{at, World, SIZE};

#[tokio::test]
async fn an_upload_is_live_for_its_owner_and_unknown_to_anyone_else() {
    let w = World::new().await;
    let owner = w.account().await;
    let stranger = w.account().await;
    let project = w.project(&owner, at(0)).await;
    let asset = w.asset(&owner, &project, at(1)).await;

    let upload = w.upload(&asset).await;
    assert_eq!(upload.state, UploadState::Active);
    assert_eq!(upload.offset, 0);
    assert_eq!(
        w.repo
            .find_upload(&stranger, &asset.upload_id)
            .await
            .unwrap(),
        UploadLookup::Unknown
    );
    assert_eq!(
        w.repo
            .find_upload(&owner, &UploadId::generate())
            .await
            .unwrap(),
        UploadLookup::Unknown
    );
}

#[tokio::test]
async fn progress_moves_the_offset_and_expiry_of_an_active_upload_only() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(1)).await;

    w.repo
        .record_progress(&asset.upload_id, 100, at(500))
        .await
        .unwrap();
    let upload = w.upload(&asset).await;
    assert_eq!((upload.offset, upload.expires_at), (100, at(500)));
    assert!(matches!(
        w.repo
            .record_progress(&asset.upload_id, SIZE + 1, at(501))
            .await,
        Err(RepoError::Conflict(_))
    ));
    assert_eq!(
        w.upload(&asset).await,
        upload,
        "a refused call changes nothing"
    );
    assert!(matches!(
        w.repo
            .record_progress(&UploadId::generate(), 1, at(501))
            .await,
        Err(RepoError::NotFound)
    ));
}

#[tokio::test]
async fn identify_records_the_format_while_the_upload_is_active() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(1)).await;

    w.repo
        .identify_upload(&asset.upload_id, MediaFormat::Mkv)
        .await
        .unwrap();
    assert_eq!(w.get(&asset).await.format, Some(MediaFormat::Mkv));
    assert!(matches!(
        w.repo
            .identify_upload(&UploadId::generate(), MediaFormat::Wav)
            .await,
        Err(RepoError::NotFound)
    ));
}

#[tokio::test]
async fn finalising_completes_the_upload_moves_the_asset_and_queues_a_job() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(1)).await;

    // The domain refuses to finish an unidentified upload; nothing changes.
    assert!(matches!(
        w.repo.finalize_upload(&asset.upload_id, SIZE, at(2)).await,
        Err(RepoError::Conflict(_))
    ));
    assert_eq!(w.upload(&asset).await.state, UploadState::Active);
    assert_eq!(w.get(&asset).await.state, AssetState::PendingUpload);
    assert_eq!(
        w.repo
            .claim_job(at(100), Duration::minutes(1))
            .await
            .unwrap(),
        None
    );

    w.repo
        .identify_upload(&asset.upload_id, MediaFormat::Wav)
        .await
        .unwrap();
    w.repo
        .record_progress(&asset.upload_id, 600, at(3))
        .await
        .unwrap();
    w.repo
        .finalize_upload(&asset.upload_id, SIZE, at(4))
        .await
        .unwrap();
    let upload = w.upload(&asset).await;
    assert_eq!(upload.state, UploadState::Completed);
    assert_eq!(upload.offset, SIZE);
    let stored = w.get(&asset).await;
    assert_eq!(stored.state, AssetState::Processing);
    assert_eq!(stored.size_bytes, Some(SIZE));

    // No longer active: every upload write refuses.
    assert!(matches!(
        w.repo.finalize_upload(&asset.upload_id, SIZE, at(5)).await,
        Err(RepoError::NotFound)
    ));
    assert!(matches!(
        w.repo.record_progress(&asset.upload_id, SIZE, at(5)).await,
        Err(RepoError::NotFound)
    ));
    assert!(matches!(
        w.repo
            .identify_upload(&asset.upload_id, MediaFormat::Mp3)
            .await,
        Err(RepoError::NotFound)
    ));

    // The job is due from the finalisation on.
    assert_eq!(
        w.repo.claim_job(at(3), Duration::minutes(1)).await.unwrap(),
        None
    );
    let job = w
        .repo
        .claim_job(at(4), Duration::minutes(1))
        .await
        .unwrap()
        .expect("queued");
    assert_eq!(job.asset, stored);
    assert_eq!(job.attempts, 0);
}

#[tokio::test]
async fn discarding_an_active_upload_deletes_its_asset_and_leaves_a_tombstone() {
    for reason in [
        GoneReason::Terminated,
        GoneReason::Rejected,
        GoneReason::Expired,
    ] {
        let w = World::new().await;
        let account = w.account().await;
        let stranger = w.account().await;
        let project = w.project(&account, at(0)).await;
        let asset = w.asset(&account, &project, at(1)).await;

        let purge = w
            .repo
            .discard_upload(&asset.upload_id, reason, None, at(2))
            .await
            .unwrap();
        assert_eq!(
            purge,
            Some(Purge {
                asset_id: asset.id.clone(),
                upload_id: asset.upload_id.clone(),
            })
        );
        assert_eq!(w.repo.get_asset(&account, &asset.id).await.unwrap(), None);
        assert_eq!(
            w.repo
                .find_upload(&account, &asset.upload_id)
                .await
                .unwrap(),
            UploadLookup::Gone(reason)
        );
        assert_eq!(
            w.repo
                .find_upload(&stranger, &asset.upload_id)
                .await
                .unwrap(),
            UploadLookup::Unknown
        );
        assert_eq!(
            w.repo
                .discard_upload(&asset.upload_id, reason, None, at(3))
                .await
                .unwrap(),
            None,
            "nothing left to discard"
        );
    }
}

#[tokio::test]
async fn a_completed_upload_is_never_discarded() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.processing(&account, &project, at(1)).await;

    assert_eq!(
        w.repo
            .discard_upload(&asset.upload_id, GoneReason::Terminated, None, at(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(w.upload(&asset).await.state, UploadState::Completed);
    assert_eq!(w.get(&asset).await.state, AssetState::Processing);
}

#[tokio::test]
async fn an_expiry_discard_rechecks_the_expiry_atomically() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(0)).await;
    w.repo
        .record_progress(&asset.upload_id, 64, at(10))
        .await
        .unwrap();

    // Expiring at 10 is not "before 10".
    let discard = |before| {
        let w = w.clone();
        let id = asset.upload_id.clone();
        async move {
            w.repo
                .discard_upload(&id, GoneReason::Expired, Some(before), before)
                .await
                .unwrap()
        }
    };
    assert_eq!(discard(at(10)).await, None);
    assert_eq!(
        w.repo.expired_uploads(at(11), 10).await.unwrap(),
        vec![asset.upload_id.clone()]
    );
    // A PATCH refreshed it after the reaper listed it.
    w.repo
        .record_progress(&asset.upload_id, 128, at(100))
        .await
        .unwrap();
    assert_eq!(discard(at(11)).await, None);
    assert_eq!(w.upload(&asset).await.offset, 128);
    assert!(discard(at(101)).await.is_some());
    assert_eq!(
        w.repo
            .find_upload(&account, &asset.upload_id)
            .await
            .unwrap(),
        UploadLookup::Gone(GoneReason::Expired)
    );
}

#[tokio::test]
async fn expired_uploads_lists_only_active_ones_past_their_expiry() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let mut expiring = Vec::new();
    for secs in [30, 10, 20] {
        let asset = w.asset(&account, &project, at(0)).await;
        w.repo
            .record_progress(&asset.upload_id, 64, at(secs))
            .await
            .unwrap();
        expiring.push((secs, asset.upload_id));
    }
    let fresh = w.asset(&account, &project, at(0)).await;
    w.repo
        .record_progress(&fresh.upload_id, 64, at(1_000))
        .await
        .unwrap();
    // Completed uploads never expire, however old their expiry.
    let done = w.asset(&account, &project, at(0)).await;
    w.repo
        .record_progress(&done.upload_id, 64, at(5))
        .await
        .unwrap();
    w.repo
        .identify_upload(&done.upload_id, MediaFormat::Wav)
        .await
        .unwrap();
    w.repo
        .finalize_upload(&done.upload_id, SIZE, at(6))
        .await
        .unwrap();

    expiring.sort();
    let oldest_first: Vec<_> = expiring.into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        w.repo.expired_uploads(at(40), 10).await.unwrap(),
        oldest_first
    );
    assert_eq!(
        w.repo.expired_uploads(at(40), 2).await.unwrap(),
        oldest_first[..2]
    );
    assert_eq!(
        w.repo.expired_uploads(at(20), 10).await.unwrap(),
        oldest_first[..1],
        "strictly before now"
    );
    assert!(w.repo.expired_uploads(at(10), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn pruning_forgets_old_tombstones_only() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let old = w.asset(&account, &project, at(0)).await;
    let recent = w.asset(&account, &project, at(0)).await;
    w.repo
        .discard_upload(&old.upload_id, GoneReason::Terminated, None, at(10))
        .await
        .unwrap();
    w.repo
        .delete_asset(&account, &recent.id, at(20))
        .await
        .unwrap();

    assert_eq!(w.repo.prune_tombstones(at(10)).await.unwrap(), 0);
    assert_eq!(w.repo.prune_tombstones(at(15)).await.unwrap(), 1);
    assert_eq!(
        w.repo.find_upload(&account, &old.upload_id).await.unwrap(),
        UploadLookup::Unknown
    );
    assert_eq!(
        w.repo
            .find_upload(&account, &recent.upload_id)
            .await
            .unwrap(),
        UploadLookup::Gone(GoneReason::AssetDeleted)
    );
    assert_eq!(w.repo.prune_tombstones(at(15)).await.unwrap(), 0);
}
