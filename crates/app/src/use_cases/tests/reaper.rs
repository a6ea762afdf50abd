//! `reap_expired_uploads`: expired pending uploads go, refreshed ones stay.

use roughy_domain::{AssetId, Staging, UploadId};

use super::{Harness, NOW, UPLOAD_TTL};
use crate::ports::{GoneReason, Purge};

/// The purge of an upload that had bytes staged (its staging is what gets aborted).
fn purge_of(id: &UploadId) -> Purge {
    Purge {
        asset_id: AssetId::generate(),
        upload_id: id.clone(),
        staging: Staging::new(format!("mpu-of-{id}")),
    }
}

/// Tombstones older than twice the upload TTL are forgotten, once.
fn expect_prune(h: &mut Harness) {
    h.uploads
        .expect_prune_tombstones()
        .withf(|before| *before == NOW - UPLOAD_TTL * 2)
        .times(1)
        .returning(|_| Ok(0));
}

#[tokio::test]
async fn expired_uploads_are_discarded_as_expired_only_if_still_expired_now() {
    let mut h = Harness::new();
    h.uploads_unlocked();
    let ids: Vec<UploadId> = (0..3).map(|_| UploadId::generate()).collect();
    let listed = ids.clone();
    h.uploads
        .expect_expired_uploads()
        .withf(|now, limit| *now == NOW && *limit == 100)
        .times(1)
        .returning(move |_, _| Ok(listed.clone()));
    for id in &ids {
        let purge = purge_of(id);
        h.expect_purge(&purge);
        let expected = id.clone();
        h.uploads
            .expect_discard_upload()
            .withf(move |i, reason, before, at, _| {
                *i == expected
                    && *reason == GoneReason::Expired
                    && *before == Some(NOW)
                    && *at == NOW
            })
            .times(1)
            .returning(move |_, _, _, _, _| Ok(Some(purge.clone())));
    }
    expect_prune(&mut h);

    assert_eq!(h.build().reap_expired_uploads().await.expect("reaped"), 3);
}

#[tokio::test]
async fn upload_refreshed_meanwhile_is_neither_purged_nor_counted() {
    let mut h = Harness::new();
    h.uploads_unlocked();
    let (expired, refreshed) = (UploadId::generate(), UploadId::generate());
    let listed = vec![expired.clone(), refreshed.clone()];
    h.uploads
        .expect_expired_uploads()
        .times(1)
        .returning(move |_, _| Ok(listed.clone()));
    let purge = purge_of(&expired);
    h.expect_purge(&purge);
    let id = expired.clone();
    h.uploads
        .expect_discard_upload()
        .withf(move |i, reason, before, _, _| {
            *i == id && *reason == GoneReason::Expired && *before == Some(NOW)
        })
        .times(1)
        .returning(move |_, _, _, _, _| Ok(Some(purge.clone())));
    let id = refreshed.clone();
    h.uploads
        .expect_discard_upload()
        .withf(move |i, reason, before, _, _| {
            *i == id && *reason == GoneReason::Expired && *before == Some(NOW)
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(None));
    expect_prune(&mut h);

    assert_eq!(h.build().reap_expired_uploads().await.expect("reaped"), 1);
}

#[tokio::test]
async fn a_full_batch_is_followed_by_another_until_a_short_one() {
    let mut h = Harness::new();
    h.uploads_unlocked();
    let first: Vec<UploadId> = (0..100).map(|_| UploadId::generate()).collect();
    let second = vec![UploadId::generate()];
    let mut batches = vec![second, first];
    h.uploads
        .expect_expired_uploads()
        .withf(|now, limit| *now == NOW && *limit == 100)
        .times(2)
        .returning(move |_, _| Ok(batches.pop().unwrap_or_default()));
    h.uploads
        .expect_discard_upload()
        .withf(|_, reason, before, _, _| *reason == GoneReason::Expired && *before == Some(NOW))
        .times(101)
        .returning(|id, _, _, _, _| Ok(Some(purge_of(id))));
    h.blobs
        .expect_abort_upload()
        .times(101)
        .returning(|_, _| Ok(()));
    h.blobs
        .expect_delete_object()
        .times(101)
        .returning(|_| Ok(()));
    h.purges
        .expect_purge_done()
        .times(101)
        .returning(|_| Ok(()));
    expect_prune(&mut h);

    assert_eq!(h.build().reap_expired_uploads().await.expect("reaped"), 101);
}

#[tokio::test]
async fn nothing_expired_reaps_nothing_but_still_prunes_old_tombstones() {
    let mut h = Harness::new();
    h.uploads
        .expect_expired_uploads()
        .times(1)
        .returning(|_, _| Ok(Vec::new()));
    h.uploads.expect_discard_upload().never();
    h.expect_no_purge();
    expect_prune(&mut h);

    assert_eq!(h.build().reap_expired_uploads().await.expect("reaped"), 0);
}

#[tokio::test]
async fn purges_left_in_the_outbox_are_retried_and_then_marked_done() {
    let mut h = Harness::new();
    h.uploads
        .expect_expired_uploads()
        .returning(|_, _| Ok(Vec::new()));
    expect_prune(&mut h);
    let leftover = purge_of(&UploadId::generate());
    let pending = leftover.clone();
    h.purges = crate::ports::MockPurgeQueue::new();
    h.purges
        .expect_pending_purges()
        .times(1)
        .returning(move |_| Ok(vec![pending.clone()]));
    let aborted = leftover.clone();
    h.blobs
        .expect_abort_upload()
        .withf(move |id, staging| *id == aborted.upload_id && *staging == aborted.staging)
        .times(1)
        .returning(|_, _| Ok(()));
    h.blobs
        .expect_delete_object()
        .times(1)
        .returning(|_| Ok(()));
    let done = leftover.clone();
    h.purges
        .expect_purge_done()
        .withf(move |p| *p == done)
        .times(1)
        .returning(|_| Ok(()));

    h.build().reap_expired_uploads().await.expect("reaped");
}

#[tokio::test]
async fn a_purge_whose_bytes_could_not_be_deleted_stays_in_the_outbox() {
    let mut h = Harness::new();
    h.uploads
        .expect_expired_uploads()
        .returning(|_, _| Ok(Vec::new()));
    expect_prune(&mut h);
    let leftover = purge_of(&UploadId::generate());
    h.purges = crate::ports::MockPurgeQueue::new();
    h.purges
        .expect_pending_purges()
        .times(1)
        .returning(move |_| Ok(vec![leftover.clone()]));
    h.blobs
        .expect_abort_upload()
        .times(1)
        .returning(|_, _| Ok(()));
    h.blobs
        .expect_delete_object()
        .times(1)
        .returning(|_| Err(crate::ports::BlobError::Unavailable("disk".into())));
    h.purges.expect_purge_done().never();

    h.build().reap_expired_uploads().await.expect("reaped");
}

#[tokio::test]
async fn an_expired_upload_whose_patch_is_still_streaming_is_left_alone() {
    let mut h = Harness::new();
    let (streaming, idle) = (UploadId::generate(), UploadId::generate());
    let listed = vec![streaming.clone(), idle.clone()];
    h.uploads
        .expect_expired_uploads()
        .times(1)
        .returning(move |_, _| Ok(listed.clone()));
    // A PATCH holds the first upload's lock: the reaper neither waits for it nor asks it to
    // stop, and never discards it.
    let held = streaming.clone();
    h.locks
        .expect_try_acquire()
        .withf(move |id| *id == held)
        .times(1)
        .returning(|_| Ok(None));
    h.locks.expect_acquire().never();
    h.uploads_unlocked();
    let purge = purge_of(&idle);
    h.expect_purge(&purge);
    let discarded = idle.clone();
    h.uploads
        .expect_discard_upload()
        .withf(move |i, _, _, _, _| *i == discarded)
        .times(1)
        .returning(move |_, _, _, _, _| Ok(Some(purge.clone())));
    expect_prune(&mut h);

    assert_eq!(h.build().reap_expired_uploads().await.expect("reaped"), 1);
}
