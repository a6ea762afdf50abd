//! Uploads: lookup with tombstones, progress, finalisation, discarding, expiry.

use roughy_app::ports::{
    AssetRepo, GoneReason, JobRepo, ProjectRepo, Purge, PurgeQueue, RepoError, UploadLookup,
    UploadRepo,
};
use roughy_domain::{AssetState, MediaFormat, Staging, UploadId, UploadState};
use time::Duration;

use crate::support::{at, World, SIZE};

/// A sink's staging state, by label.
fn staging(label: &str) -> Staging {
    Staging::new(label)
}

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
    let unknown = UploadId::generate();
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(1)).await;

    w.repo
        .record_progress(
            &asset.upload_id,
            100,
            &staging("parts=1"),
            at(500),
            None,
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    let upload = w.upload(&asset).await;
    assert_eq!((upload.offset, upload.expires_at), (100, at(500)));
    assert_eq!(upload.staging, staging("parts=1"));
    assert!(matches!(
        w.repo
            .record_progress(
                &asset.upload_id,
                SIZE + 1,
                &staging("parts=9"),
                at(501),
                None,
                &w.fence(&asset.upload_id).await
            )
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
            .record_progress(
                &unknown,
                1,
                &staging("x"),
                at(501),
                None,
                &w.fence(&unknown).await
            )
            .await,
        Err(RepoError::NotFound)
    ));
}

#[tokio::test]
async fn identify_records_the_format_while_the_upload_is_active() {
    let w = World::new().await;
    let unknown = UploadId::generate();
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(1)).await;

    w.repo
        .identify_upload(
            &asset.upload_id,
            MediaFormat::Mkv,
            &staging("mpu-1"),
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    assert_eq!(w.get(&asset).await.format, Some(MediaFormat::Mkv));
    assert!(matches!(
        w.repo
            .identify_upload(
                &unknown,
                MediaFormat::Wav,
                &staging("mpu-2"),
                &w.fence(&unknown).await
            )
            .await,
        Err(RepoError::NotFound)
    ));
}

/// A sink without staging: the first chunk's format is recorded with its progress, or with
/// the finalisation of a single-chunk upload, atomically with the upload's change.
#[tokio::test]
async fn the_first_progress_or_finalisation_can_carry_the_format() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;

    let chunked = w.asset(&account, &project, at(1)).await;
    let fence = w.fence(&chunked.upload_id).await;
    w.repo
        .record_progress(
            &chunked.upload_id,
            100,
            &Staging::default(),
            at(500),
            Some(MediaFormat::Flac),
            &fence,
        )
        .await
        .unwrap();
    assert_eq!(w.get(&chunked).await.format, Some(MediaFormat::Flac));
    assert_eq!(w.upload(&chunked).await.offset, 100);
    // A progress the upload refuses (not forward) identifies nothing either.
    assert!(matches!(
        w.repo
            .record_progress(
                &chunked.upload_id,
                50,
                &Staging::default(),
                at(501),
                Some(MediaFormat::Mp3),
                &fence,
            )
            .await,
        Err(RepoError::Conflict(_))
    ));
    assert_eq!(w.get(&chunked).await.format, Some(MediaFormat::Flac));
    assert_eq!(w.upload(&chunked).await.offset, 100);

    let single = w.asset(&account, &project, at(2)).await;
    w.repo
        .finalize_upload(
            &single.upload_id,
            &Staging::default(),
            Some(MediaFormat::Wav),
            at(3),
            &w.fence(&single.upload_id).await,
        )
        .await
        .unwrap();
    let stored = w.get(&single).await;
    assert_eq!(stored.state, AssetState::Processing);
    assert_eq!(stored.format, Some(MediaFormat::Wav));
    assert_eq!(w.upload(&single).await.state, UploadState::Completed);
    let job = w
        .repo
        .claim_job(at(10), Duration::minutes(1))
        .await
        .unwrap()
        .expect("the finalisation queued its job");
    assert_eq!(job.asset.id, single.id);
    assert_eq!(job.asset.format, Some(MediaFormat::Wav));
}

#[tokio::test]
async fn finalising_completes_the_upload_moves_the_asset_and_queues_a_job() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(1)).await;

    // The domain refuses to finish an unidentified upload; nothing changes.
    assert!(matches!(
        w.repo
            .finalize_upload(
                &asset.upload_id,
                &staging("final"),
                None,
                at(2),
                &w.fence(&asset.upload_id).await
            )
            .await,
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
        .identify_upload(
            &asset.upload_id,
            MediaFormat::Wav,
            &staging("mpu-1"),
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    w.repo
        .record_progress(
            &asset.upload_id,
            600,
            &staging("mpu-1;1"),
            at(3),
            None,
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    w.repo
        .finalize_upload(
            &asset.upload_id,
            &staging("mpu-1;1;2"),
            None,
            at(4),
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    let upload = w.upload(&asset).await;
    assert_eq!(upload.state, UploadState::Completed);
    assert_eq!(upload.offset, SIZE);
    assert_eq!(upload.staging, staging("mpu-1;1;2"));
    let stored = w.get(&asset).await;
    assert_eq!(stored.state, AssetState::Processing);
    assert_eq!(stored.size_bytes, Some(SIZE));

    // No longer active: every upload write refuses.
    assert!(matches!(
        w.repo
            .finalize_upload(
                &asset.upload_id,
                &staging("again"),
                None,
                at(5),
                &w.fence(&asset.upload_id).await
            )
            .await,
        Err(RepoError::NotFound)
    ));
    assert!(matches!(
        w.repo
            .record_progress(
                &asset.upload_id,
                SIZE - 1,
                &staging("again"),
                at(5),
                None,
                &w.fence(&asset.upload_id).await
            )
            .await,
        Err(RepoError::NotFound)
    ));
    assert!(matches!(
        w.repo
            .identify_upload(
                &asset.upload_id,
                MediaFormat::Mp3,
                &staging("again"),
                &w.fence(&asset.upload_id).await
            )
            .await,
        Err(RepoError::NotFound)
    ));
    assert_eq!(
        w.upload(&asset).await,
        upload,
        "refused writes change nothing"
    );

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
    assert_eq!(
        job.upload, upload,
        "the completed upload, with its final staging"
    );
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
            .discard_upload(
                &asset.upload_id,
                reason,
                None,
                at(2),
                &w.fence(&asset.upload_id).await,
            )
            .await
            .unwrap();
        assert_eq!(
            purge,
            Some(Purge {
                asset_id: asset.id.clone(),
                upload_id: asset.upload_id.clone(),
                staging: Staging::default(),
            }),
            "nothing was staged"
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
                .discard_upload(
                    &asset.upload_id,
                    reason,
                    None,
                    at(3),
                    &w.fence(&asset.upload_id).await
                )
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
            .discard_upload(
                &asset.upload_id,
                GoneReason::Terminated,
                None,
                at(2),
                &w.fence(&asset.upload_id).await
            )
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
        .record_progress(
            &asset.upload_id,
            64,
            &staging("64"),
            at(10),
            None,
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();

    // Expiring at 10 is not "before 10".
    let discard = |before| {
        let w = w.clone();
        let id = asset.upload_id.clone();
        async move {
            w.repo
                .discard_upload(
                    &id,
                    GoneReason::Expired,
                    Some(before),
                    before,
                    &w.fence(&id).await,
                )
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
        .record_progress(
            &asset.upload_id,
            128,
            &staging("128"),
            at(100),
            None,
            &w.fence(&asset.upload_id).await,
        )
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
            .record_progress(
                &asset.upload_id,
                64,
                &staging("64"),
                at(secs),
                None,
                &w.fence(&asset.upload_id).await,
            )
            .await
            .unwrap();
        expiring.push((secs, asset.upload_id));
    }
    let fresh = w.asset(&account, &project, at(0)).await;
    w.repo
        .record_progress(
            &fresh.upload_id,
            64,
            &staging("64"),
            at(1_000),
            None,
            &w.fence(&fresh.upload_id).await,
        )
        .await
        .unwrap();
    // Completed uploads never expire, however old their expiry.
    // (Identified first: staging is chosen before the first byte.)
    let done = w.asset(&account, &project, at(0)).await;
    w.repo
        .identify_upload(
            &done.upload_id,
            MediaFormat::Wav,
            &staging("mpu"),
            &w.fence(&done.upload_id).await,
        )
        .await
        .unwrap();
    w.repo
        .record_progress(
            &done.upload_id,
            64,
            &staging("mpu;64"),
            at(5),
            None,
            &w.fence(&done.upload_id).await,
        )
        .await
        .unwrap();
    w.repo
        .finalize_upload(
            &done.upload_id,
            &staging("mpu;64;final"),
            None,
            at(6),
            &w.fence(&done.upload_id).await,
        )
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
        .discard_upload(
            &old.upload_id,
            GoneReason::Terminated,
            None,
            at(10),
            &w.fence(&old.upload_id).await,
        )
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

// --- staging: what the sink keeps, stored with the offset ---------------------------------------

#[tokio::test]
async fn identify_stores_the_staging_begun_and_progress_replaces_it() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(1)).await;
    assert!(
        w.upload(&asset).await.staging.is_empty(),
        "nothing begun yet"
    );

    w.repo
        .identify_upload(
            &asset.upload_id,
            MediaFormat::Flac,
            &staging("mpu-7"),
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    let identified = w.upload(&asset).await;
    assert_eq!(identified.staging, staging("mpu-7"));
    assert_eq!(identified.offset, 0);

    // A first chunk re-sent before any byte was durable identifies again with the same
    // staging: accepted.
    w.repo
        .identify_upload(
            &asset.upload_id,
            MediaFormat::Flac,
            &staging("mpu-7"),
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    assert_eq!(w.upload(&asset).await, identified);

    w.repo
        .record_progress(
            &asset.upload_id,
            300,
            &staging("mpu-7;1:e1"),
            at(50),
            None,
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    let progressed = w.upload(&asset).await;
    assert_eq!(
        (
            progressed.offset,
            &progressed.staging,
            progressed.expires_at
        ),
        (300, &staging("mpu-7;1:e1"), at(50))
    );
    w.repo
        .record_progress(
            &asset.upload_id,
            600,
            &staging("mpu-7;1:e1,2:e2"),
            at(60),
            None,
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    assert_eq!(
        w.upload(&asset).await.staging,
        staging("mpu-7;1:e1,2:e2"),
        "the staging of the latest offset"
    );
}

#[tokio::test]
async fn staging_is_fixed_once_a_byte_is_stored() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(1)).await;
    w.repo
        .identify_upload(
            &asset.upload_id,
            MediaFormat::Wav,
            &staging("mpu-1"),
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    w.repo
        .record_progress(
            &asset.upload_id,
            100,
            &staging("mpu-1;1"),
            at(50),
            None,
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    let (upload, stored) = (w.upload(&asset).await, w.get(&asset).await);

    assert!(matches!(
        w.repo
            .identify_upload(
                &asset.upload_id,
                MediaFormat::Mp3,
                &staging("mpu-2"),
                &w.fence(&asset.upload_id).await
            )
            .await,
        Err(RepoError::Conflict(_))
    ));
    assert_eq!(
        w.upload(&asset).await,
        upload,
        "a refused call changes nothing"
    );
    assert_eq!(w.get(&asset).await, stored, "not even the format");
}

#[tokio::test]
async fn progress_only_moves_forward_and_stays_below_the_length() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(1)).await;
    w.repo
        .record_progress(
            &asset.upload_id,
            400,
            &staging("400"),
            at(50),
            None,
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    let upload = w.upload(&asset).await;
    let stored = w.get(&asset).await;

    // Not forward (equal or behind), or at or past the length (only finalising reaches it).
    for refused in [400, 399, 0, SIZE, SIZE + 1] {
        assert!(
            matches!(
                w.repo
                    .record_progress(
                        &asset.upload_id,
                        refused,
                        &staging("refused"),
                        at(99),
                        None,
                        &w.fence(&asset.upload_id).await
                    )
                    .await,
                Err(RepoError::Conflict(_))
            ),
            "offset {refused}"
        );
        assert_eq!(
            w.upload(&asset).await,
            upload,
            "offset {refused}: a refused call changes nothing"
        );
    }
    assert_eq!(w.get(&asset).await, stored);
    assert_eq!(w.get(&asset).await.state, AssetState::PendingUpload);

    // The last byte below the length is still progress.
    w.repo
        .record_progress(
            &asset.upload_id,
            SIZE - 1,
            &staging("999"),
            at(60),
            None,
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    assert_eq!(w.upload(&asset).await.offset, SIZE - 1);
}

#[tokio::test]
async fn the_claimed_job_carries_the_completed_upload_with_its_final_staging() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let asset = w.asset(&account, &project, at(1)).await;
    w.repo
        .identify_upload(
            &asset.upload_id,
            MediaFormat::Ogg,
            &staging("mpu-9"),
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    w.repo
        .record_progress(
            &asset.upload_id,
            500,
            &staging("mpu-9;1:a"),
            at(2),
            None,
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();
    w.repo
        .finalize_upload(
            &asset.upload_id,
            &staging("mpu-9;1:a,2:b"),
            None,
            at(3),
            &w.fence(&asset.upload_id).await,
        )
        .await
        .unwrap();

    let job = w
        .repo
        .claim_job(at(4), Duration::minutes(1))
        .await
        .unwrap()
        .expect("queued");
    assert_eq!(job.asset.id, asset.id);
    assert_eq!(job.upload.id, asset.upload_id);
    assert_eq!(job.upload.asset_id, asset.id);
    assert_eq!(job.upload.account_id, account);
    assert_eq!(job.upload.state, UploadState::Completed);
    assert_eq!(job.upload.offset, SIZE);
    assert_eq!(job.upload.length.get(), SIZE);
    assert_eq!(job.upload.staging, staging("mpu-9;1:a,2:b"));
    assert_eq!(job.upload, w.upload(&asset).await);

    // Released and claimed again (another attempt): the same upload.
    w.repo.release_job(&job, at(5)).await.unwrap();
    let retry = w
        .repo
        .claim_job(at(5), Duration::minutes(1))
        .await
        .unwrap()
        .expect("due again");
    assert_eq!(retry.upload, job.upload);
}

#[tokio::test]
async fn every_purge_carries_the_staging_of_its_upload() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let other_project = w.project(&account, at(0)).await;

    // Discarded (terminated) after staging and progress.
    let discarded = w.asset(&account, &project, at(1)).await;
    w.repo
        .identify_upload(
            &discarded.upload_id,
            MediaFormat::Wav,
            &staging("d"),
            &w.fence(&discarded.upload_id).await,
        )
        .await
        .unwrap();
    w.repo
        .record_progress(
            &discarded.upload_id,
            100,
            &staging("d;1"),
            at(2),
            None,
            &w.fence(&discarded.upload_id).await,
        )
        .await
        .unwrap();
    // Expired after staging only (the first chunk's bytes never became durable).
    let expired = w.asset(&account, &project, at(1)).await;
    w.repo
        .identify_upload(
            &expired.upload_id,
            MediaFormat::Wav,
            &staging("e"),
            &w.fence(&expired.upload_id).await,
        )
        .await
        .unwrap();
    // An asset deleted mid-upload.
    let deleted = w.asset(&account, &project, at(1)).await;
    w.repo
        .identify_upload(
            &deleted.upload_id,
            MediaFormat::Mp3,
            &staging("a"),
            &w.fence(&deleted.upload_id).await,
        )
        .await
        .unwrap();
    w.repo
        .record_progress(
            &deleted.upload_id,
            200,
            &staging("a;1"),
            at(2),
            None,
            &w.fence(&deleted.upload_id).await,
        )
        .await
        .unwrap();
    // A project deleted with a completed upload in it.
    let in_project = w.processing(&account, &other_project, at(1)).await;

    let purge_of = |asset: &roughy_domain::Asset, label: &str| Purge {
        asset_id: asset.id.clone(),
        upload_id: asset.upload_id.clone(),
        staging: staging(label),
    };
    let mut returned = Vec::new();
    returned.push(
        w.repo
            .discard_upload(
                &discarded.upload_id,
                GoneReason::Terminated,
                None,
                at(3),
                &w.fence(&discarded.upload_id).await,
            )
            .await
            .unwrap()
            .expect("discarded"),
    );
    returned.push(
        w.repo
            .discard_upload(
                &expired.upload_id,
                GoneReason::Expired,
                Some(at(1_000_000)),
                at(4),
                &w.fence(&expired.upload_id).await,
            )
            .await
            .unwrap()
            .expect("expired"),
    );
    returned.push(
        w.repo
            .delete_asset(&account, &deleted.id, at(5))
            .await
            .unwrap()
            .expect("deleted"),
    );
    returned.extend(
        w.repo
            .delete_project(&account, &other_project, at(6))
            .await
            .unwrap()
            .expect("the caller's project"),
    );

    let expected = vec![
        purge_of(&discarded, "d;1"),
        purge_of(&expired, "e"),
        purge_of(&deleted, "a;1"),
        Purge {
            staging: World::final_staging(),
            ..purge_of(&in_project, "")
        },
    ];
    assert_eq!(returned, expected, "as returned");
    assert_eq!(
        w.repo.pending_purges(10).await.unwrap(),
        expected,
        "as recorded in the outbox"
    );
}

#[tokio::test]
async fn a_writer_that_lost_its_lease_changes_nothing() {
    let w = World::new().await;
    let owner = w.account().await;
    let project = w.project(&owner, at(0)).await;
    let asset = w.asset(&owner, &project, at(1)).await;
    let id = asset.upload_id.clone();
    let late = w.fence(&id).await;
    w.repo
        .identify_upload(&id, MediaFormat::Wav, &staging("mpu-1"), &late)
        .await
        .unwrap();
    // The first writer stalls; its lease goes, and a second writer takes the upload on.
    w.release(&id).await;
    let current = w.fence(&id).await;
    assert_ne!(late, current);
    w.repo
        .record_progress(&id, 400, &staging("mpu-1;1"), at(50), None, &current)
        .await
        .unwrap();

    // The late writer wakes up: each of its writes is refused and changes nothing.
    assert!(matches!(
        w.repo
            .record_progress(&id, 200, &staging("late"), at(60), None, &late)
            .await,
        Err(RepoError::LeaseLost)
    ));
    assert!(matches!(
        w.repo
            .identify_upload(&id, MediaFormat::Mp3, &staging("late"), &late)
            .await,
        Err(RepoError::LeaseLost)
    ));
    assert!(matches!(
        w.repo
            .finalize_upload(&id, &staging("late"), None, at(60), &late)
            .await,
        Err(RepoError::LeaseLost)
    ));
    assert!(matches!(
        w.repo
            .discard_upload(&id, GoneReason::Terminated, None, at(60), &late)
            .await,
        Err(RepoError::LeaseLost)
    ));
    let upload = w.upload(&asset).await;
    assert_eq!(upload.offset, 400);
    assert_eq!(upload.staging, staging("mpu-1;1"));
    assert_eq!(upload.expires_at, at(50));
    assert_eq!(upload.state, UploadState::Active);
    assert_eq!(w.get(&asset).await.format, Some(MediaFormat::Wav));
    assert!(w.repo.pending_purges(10).await.unwrap().is_empty());

    // The current writer goes on.
    w.repo
        .record_progress(&id, 500, &staging("mpu-1;1;2"), at(70), None, &current)
        .await
        .unwrap();
    assert_eq!(w.upload(&asset).await.offset, 500);
}

#[tokio::test]
async fn an_uploads_owner_is_known_while_it_lives_and_while_its_tombstone_does() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, crate::support::at(0)).await;
    let asset = w.asset(&account, &project, crate::support::at(1)).await;
    assert_eq!(
        w.repo.upload_owner(&asset.upload_id).await.unwrap(),
        Some(account.clone())
    );
    let fence = w.fence(&asset.upload_id).await;
    w.repo
        .discard_upload(
            &asset.upload_id,
            roughy_app::ports::GoneReason::Terminated,
            None,
            crate::support::at(2),
            &fence,
        )
        .await
        .unwrap();
    assert_eq!(
        w.repo.upload_owner(&asset.upload_id).await.unwrap(),
        Some(account),
        "the tombstone's"
    );
    w.repo
        .prune_tombstones(crate::support::at(3))
        .await
        .unwrap();
    assert_eq!(w.repo.upload_owner(&asset.upload_id).await.unwrap(), None);
    assert_eq!(
        w.repo
            .upload_owner(&roughy_domain::UploadId::generate())
            .await
            .unwrap(),
        None
    );
}
