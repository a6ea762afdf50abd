//! Sink conformance: the contract of [`UploadSink`] and the upload half of [`BlobStore`] (see
//! the port's docs in `roughy_app::ports`), written once and run against every adapter — the
//! local disk ([`LocalBlobStore`]) and S3 ([`ObjectBlobStore`] on the run's s3s-fs, which
//! `scripts/s3s-fs run -- …` starts; without it the S3 half fails, it never skips).
//!
//! The repository is modelled by the domain's own [`Upload`] transitions: what a PATCH
//! "commits" is exactly what the repository adapters persist, and a failed commit is an
//! outcome that is not applied.

#![allow(
    clippy::expect_used,
    reason = "integration test: a failed expectation is the test's failure"
)]

use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, StreamExt};
use time::macros::datetime;
use time::OffsetDateTime;

use roughy_app::ports::{
    AppendOutcome, AppendStop, BlobError, BlobStore, BodyError, ByteStream, UploadSink,
};
use roughy_blobstore::{LocalBlobStore, ObjectBlobStore, ObjectStoreSettings};
use roughy_domain::{
    AccountId, AssetId, MediaFormat, SizeBytes, Staging, Upload, UploadId, UploadState,
};

/// The part size the S3 adapter runs with here: the smallest whose 10,000 parts cover 50 GiB
/// (S3's own minimum is 5 MiB), so the boundary classes stay a few MiB.
const PART: usize = 6 * 1024 * 1024;

/// Lists the storage files an upload has staged.
type StagedFiles = Box<dyn Fn(&Upload) -> Vec<std::path::PathBuf>>;

/// An adapter under test: its sink and store (one object), and what keeps its storage alive.
struct Sink {
    sink: Arc<dyn UploadSink>,
    blobs: Arc<dyn BlobStore>,
    /// Files of storage that an abort must leave empty of this upload: the local part file's
    /// directory, or the S3 bucket's directory and the server's multipart files.
    staged: StagedFiles,
    _keep: Box<dyn std::any::Any>,
}

fn local() -> Sink {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("blobs");
    let store = Arc::new(LocalBlobStore::new(&root).expect("local store"));
    let uploads = root.join("uploads");
    Sink {
        sink: store.clone(),
        blobs: store,
        staged: Box::new(move |u: &Upload| {
            files_under(&uploads)
                .into_iter()
                .filter(|p| p.to_string_lossy().contains(u.id.as_str()))
                .collect()
        }),
        _keep: Box::new(dir),
    }
}

fn s3() -> Sink {
    s3_in(&format!(
        "sink{}",
        roughy_domain::ids::random_base62(10).to_ascii_lowercase()
    ))
}

/// An S3 store over `bucket` (created when missing) of the run's S3 server.
fn s3_in(bucket: &str) -> Sink {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the S3 tests through `scripts/s3s-fs run -- …` (as `make test` does)")
        })
    };
    let root = std::path::PathBuf::from(var("ROUGHY_TEST_S3_ROOT"));
    let dir = root.join(bucket);
    std::fs::create_dir_all(&dir).expect("create the bucket directory");
    let store = Arc::new(
        ObjectBlobStore::new(&ObjectStoreSettings {
            url: format!("s3://{bucket}/sink"),
            options: vec![
                ("AWS_ENDPOINT".into(), var("ROUGHY_TEST_S3_ENDPOINT")),
                ("AWS_ALLOW_HTTP".into(), "true".into()),
                ("AWS_REGION".into(), "us-east-1".into()),
                ("AWS_ACCESS_KEY_ID".into(), var("ROUGHY_TEST_S3_ACCESS_KEY")),
                (
                    "AWS_SECRET_ACCESS_KEY".into(),
                    var("ROUGHY_TEST_S3_SECRET_KEY"),
                ),
            ],
            part_size: PART,
            parts_in_flight: 2,
        })
        .expect("S3 store"),
    );
    Sink {
        sink: store.clone(),
        blobs: store,
        staged: Box::new(move |u: &Upload| {
            // Staged tails in the bucket, and the server's files of multipart uploads in
            // progress (s3s-fs keeps `.upload-<id>.json` and `.upload_id-<id>.part-<n>` in
            // its root; an abort removes them).
            let mut out: Vec<_> = files_under(&dir.join("sink").join("staging"))
                .into_iter()
                .filter(|p| p.to_string_lossy().contains(u.id.as_str()))
                .collect();
            if let Ok(state) = serde_json::from_str::<serde_json::Value>(u.staging.as_str()) {
                if let Some(id) = state["upload"].as_str() {
                    out.extend(
                        files_under(&root)
                            .into_iter()
                            .filter(|p| p.parent() == Some(root.as_path()))
                            .filter(|p| p.to_string_lossy().contains(id)),
                    );
                }
            }
            out
        }),
        _keep: Box::new(()),
    }
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

/// A fresh active upload of `len` bytes, as the repository holds it before the first PATCH.
fn upload(len: usize) -> Upload {
    Upload {
        id: UploadId::generate(),
        asset_id: AssetId::generate(),
        account_id: AccountId::generate(),
        length: SizeBytes::new(len as u64).expect("a valid size"),
        offset: 0,
        expires_at: NOW,
        state: UploadState::Active,
        staging: Staging::default(),
    }
}

/// Deterministic bytes, so misplaced or repeated bytes show up.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + i / 251 + i / 65_521) % 256) as u8)
        .collect()
}

/// A body of `data` cut into `chunk`-byte pieces, failing after them when `drop` is set.
fn body(data: &[u8], chunk: usize, drop: bool) -> ByteStream<'static> {
    let mut items: Vec<Result<Bytes, BodyError>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if drop {
        items.push(Err(BodyError::Interrupted("connection reset".into())));
    }
    Box::pin(stream::iter(items))
}

impl Sink {
    /// What a PATCH does with the sink, without committing: identifies the first chunk
    /// (begin) and appends `data` in `chunk`-byte pieces. Returns the staged upload (as the
    /// identify commit leaves it) and the outcome.
    async fn append(
        &self,
        u: &Upload,
        data: &[u8],
        chunk: usize,
        drop: bool,
    ) -> (Upload, AppendOutcome) {
        let mut u = u.clone();
        if u.expects_first_chunk() && u.staging.is_empty() {
            let staging = self.sink.begin(&u, MediaFormat::Wav).await.expect("begin");
            u.stage(staging).expect("stage");
        }
        let outcome = self.sink.append(&u, body(data, chunk, drop)).await;
        (u, outcome)
    }

    /// A PATCH whose commit succeeds: the repository records the outcome as the domain says.
    async fn patch(&self, u: &mut Upload, data: &[u8], chunk: usize) -> AppendOutcome {
        let (staged, outcome) = self.append(u, data, chunk, false).await;
        *u = staged;
        commit(u, &outcome);
        outcome
    }

    /// The whole object, after completing the upload.
    async fn finish(&self, u: &Upload) -> Vec<u8> {
        let size = self.blobs.complete_upload(u).await.expect("complete");
        assert_eq!(size, u.length.get(), "the object's size");
        self.read(&u.asset_id, size).await
    }

    async fn read(&self, asset: &AssetId, size: u64) -> Vec<u8> {
        let mut got = Vec::new();
        let mut s = self.blobs.read_range(asset, 0..size).await.expect("read");
        while let Some(chunk) = s.next().await {
            got.extend_from_slice(&chunk.expect("chunk"));
        }
        got
    }
}

/// Records an outcome the way the PATCH use case has the repository do it: nothing of a
/// refused (too long) body, completed at the length, else advanced when the offset moved.
fn commit(u: &mut Upload, outcome: &AppendOutcome) {
    if matches!(outcome.stop, Some(AppendStop::TooLong)) {
        return;
    }
    if outcome.offset == u.length.get() {
        u.complete(outcome.staging.clone()).expect("complete");
    } else if outcome.offset > u.offset {
        u.advance(outcome.offset, outcome.staging.clone(), NOW)
            .expect("advance");
    }
}

/// Uploads `data` in PATCHes of `patch` bytes, each sent in `chunk`-byte pieces; returns the
/// object's bytes.
async fn upload_in_patches(s: &Sink, data: &[u8], patch: usize, chunk: usize) -> Vec<u8> {
    let mut u = upload(data.len());
    for piece in data.chunks(patch) {
        let before = u.offset;
        let outcome = s.patch(&mut u, piece, chunk).await;
        assert!(outcome.stop.is_none(), "{:?}", outcome.stop);
        assert_eq!(outcome.offset, before + piece.len() as u64);
    }
    assert_eq!(u.state, UploadState::Completed);
    s.finish(&u).await
}

// --- the suite -----------------------------------------------------------------------------

/// Parts and tails at every boundary class: PATCHes smaller than a part, exactly a part,
/// spanning parts, and a body ending exactly on a part boundary.
async fn every_boundary_class_stores_the_exact_bytes(s: Sink) {
    let data = pattern(3 * PART + 12_345);
    for (patch, chunk) in [
        (PART / 3, 64 * 1024), // smaller than a part: tails carried across PATCHes
        (PART, PART),          // exactly a part per PATCH
        (2 * PART + 7, 1024 * 1024), // spanning parts, ending mid-part
        (data.len(), 8 * 1024), // one PATCH for everything
    ] {
        let got = upload_in_patches(&s, &data, patch, chunk).await;
        assert!(
            got == data,
            "PATCHes of {patch} bytes in {chunk}-byte pieces"
        );
    }
}

/// 1-byte PATCHes across the first bytes of an upload, then the rest.
async fn one_byte_patches_store_the_exact_bytes(s: Sink) {
    let data = pattern(PART + 100);
    let mut u = upload(data.len());
    s.patch(&mut u, &data[..64], 64).await;
    for i in 64..200 {
        let outcome = s.patch(&mut u, &data[i..=i], 1).await;
        assert_eq!(outcome.offset, i as u64 + 1);
    }
    s.patch(&mut u, &data[200..], 1 << 20).await;
    assert!(s.finish(&u).await == data);
}

/// A body dropping mid-part keeps what arrived: the offset counts every durable byte, the
/// resend continues from it.
async fn a_drop_mid_part_keeps_the_received_bytes_and_resumes(s: Sink) {
    let data = pattern(2 * PART + 999);
    let mut u = upload(data.len());
    let cut = PART + PART / 2 + 17;
    let (staged, outcome) = s.append(&u, &data[..cut], 256 * 1024, true).await;
    assert!(
        matches!(outcome.stop, Some(AppendStop::Body(_))),
        "{:?}",
        outcome.stop
    );
    assert_eq!(outcome.offset, cut as u64, "every received byte is durable");
    u = staged;
    commit(&mut u, &outcome);
    s.patch(&mut u, &data[cut..], 1 << 20).await;
    assert!(s.finish(&u).await == data);
}

/// Bytes stored past the recorded offset (a crash after the write, before the commit) are
/// overwritten by the client's resend, never duplicated.
async fn bytes_past_the_recorded_offset_are_overwritten_by_the_resend(s: Sink) {
    let data = pattern(2 * PART + 4_321);
    let mut u = upload(data.len());
    s.patch(&mut u, &data[..PART / 2], 1 << 20).await;
    // Two PATCHes whose commits are lost: one crossing a part, one ending in a tail.
    let (_, lost) = s
        .append(&u, &data[PART / 2..PART + 100], 1 << 20, false)
        .await;
    assert_eq!(lost.offset, (PART + 100) as u64);
    let (_, lost) = s
        .append(&u, &data[PART / 2..PART / 2 + 10], 1 << 20, false)
        .await;
    assert_eq!(lost.offset, (PART / 2 + 10) as u64);
    // The resend from the recorded offset, in a different cut.
    s.patch(&mut u, &data[PART / 2..PART + 5_000], 300_000)
        .await;
    s.patch(&mut u, &data[PART + 5_000..], 1 << 20).await;
    assert!(s.finish(&u).await == data);
}

/// The finalising commit fails once (all bytes staged, the database keeps the previous
/// offset): the client's resend at HEAD's offset completes the upload, byte-identical.
async fn a_failed_finalising_commit_is_completed_by_the_resend(s: Sink) {
    for first in [PART / 2, PART, PART + 1] {
        let data = pattern(first + PART / 4 + 3);
        let mut u = upload(data.len());
        s.patch(&mut u, &data[..first], 1 << 20).await;
        let (_, lost) = s.append(&u, &data[first..], 1 << 20, false).await;
        assert_eq!(lost.offset, data.len() as u64, "all bytes staged");
        // The commit failed: `u` still holds the previous offset. The resend completes.
        let outcome = s.patch(&mut u, &data[first..], 64 * 1024).await;
        assert!(outcome.stop.is_none(), "{:?}", outcome.stop);
        assert_eq!(u.state, UploadState::Completed);
        assert!(s.finish(&u).await == data, "first PATCH of {first} bytes");
    }
}

/// Completing is repeatable: again, after success, it answers the same object.
async fn completing_again_answers_the_same_object(s: Sink) {
    let data = pattern(PART + 10);
    let mut u = upload(data.len());
    s.patch(&mut u, &data, 1 << 20).await;
    let once = s.finish(&u).await;
    let twice = s.finish(&u).await;
    assert!(once == data && twice == data);
}

/// A second instance over the same storage continues and completes an upload another began
/// (another process: nothing is kept in memory between PATCHes).
async fn another_instance_continues_the_upload(s: Sink, other: Sink) {
    let data = pattern(2 * PART + 50);
    let mut u = upload(data.len());
    s.patch(&mut u, &data[..PART + 20], 1 << 20).await;
    other
        .patch(&mut u, &data[PART + 20..2 * PART], 1 << 20)
        .await;
    s.patch(&mut u, &data[2 * PART..], 1 << 20).await;
    assert!(other.finish(&u).await == data);
}

/// More than the remaining bytes is refused and changes nothing.
async fn a_too_long_body_keeps_nothing_of_it(s: Sink) {
    let data = pattern(PART + 10);
    let mut u = upload(data.len());
    s.patch(&mut u, &data[..100], 100).await;
    let mut long = data[100..].to_vec();
    long.extend_from_slice(b"overflow");
    let outcome = s.patch(&mut u, &long, 1 << 20).await;
    assert!(
        matches!(outcome.stop, Some(AppendStop::TooLong)),
        "{:?}",
        outcome.stop
    );
    assert_eq!(u.offset, 100);
    s.patch(&mut u, &data[100..], 1 << 20).await;
    assert!(s.finish(&u).await == data);
}

/// Aborting removes everything staged, and may be repeated.
async fn abort_removes_everything_staged(s: Sink) {
    let data = pattern(PART + PART / 2);
    let mut u = upload(data.len());
    s.patch(&mut u, &data[..PART + 1_000], 1 << 20).await;
    assert!(
        !(s.staged)(&u).is_empty(),
        "something is staged before the abort"
    );
    s.blobs
        .abort_upload(&u.id, &u.staging)
        .await
        .expect("abort");
    assert_eq!((s.staged)(&u), Vec::<std::path::PathBuf>::new());
    s.blobs
        .abort_upload(&u.id, &u.staging)
        .await
        .expect("abort again");
    assert!(matches!(
        s.blobs.object_size(&u.asset_id).await,
        Err(BlobError::NotFound)
    ));
}

/// Deleting a finished object is idempotent, and a read of it then is `NotFound`.
async fn deleting_an_object_is_idempotent(s: Sink) {
    let data = pattern(1_000);
    let mut u = upload(data.len());
    s.patch(&mut u, &data, 1 << 20).await;
    s.finish(&u).await;
    s.blobs.delete_object(&u.asset_id).await.expect("delete");
    s.blobs
        .delete_object(&u.asset_id)
        .await
        .expect("delete again");
    assert!(matches!(
        s.blobs.object_size(&u.asset_id).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        s.blobs.complete_upload(&u).await,
        Err(BlobError::NotFound)
    ));
}

/// Ranged reads answer exactly those bytes.
async fn ranged_reads_answer_exact_bytes(s: Sink) {
    let data = pattern(PART + 333);
    let mut u = upload(data.len());
    s.patch(&mut u, &data, 1 << 20).await;
    s.finish(&u).await;
    for (from, to) in [
        (0, 1),
        (10, 20),
        (PART - 5, PART + 5),
        (data.len() - 1, data.len()),
    ] {
        let mut got = Vec::new();
        let mut r = s
            .blobs
            .read_range(&u.asset_id, from as u64..to as u64)
            .await
            .expect("range");
        while let Some(c) = r.next().await {
            got.extend_from_slice(&c.expect("chunk"));
        }
        assert!(got == data[from..to], "{from}..{to}");
    }
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod local_disk {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::local()).await;
            })*

            #[tokio::test]
            async fn another_instance_continues_the_upload() {
                // Two stores over one directory.
                let first = super::local();
                let root = first
                    ._keep
                    .downcast_ref::<tempfile::TempDir>()
                    .expect("the local store keeps its temp dir")
                    .path()
                    .join("blobs");
                let store = std::sync::Arc::new(
                    roughy_blobstore::LocalBlobStore::new(&root).expect("second store"),
                );
                let second = super::Sink {
                    sink: store.clone(),
                    blobs: store,
                    staged: Box::new(|_| Vec::new()),
                    _keep: Box::new(()),
                };
                super::another_instance_continues_the_upload(first, second).await;
            }
        }
        mod s3 {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::s3()).await;
            })*

            #[tokio::test]
            async fn another_instance_continues_the_upload() {
                // Two clients of the run's S3 server that share nothing but the bucket.
                let bucket = format!(
                    "sink{}",
                    roughy_domain::ids::random_base62(10).to_ascii_lowercase()
                );
                let first = super::s3_in(&bucket);
                let second = super::s3_in(&bucket);
                super::another_instance_continues_the_upload(first, second).await;
            }
        }
    };
}

conformance!(
    every_boundary_class_stores_the_exact_bytes,
    one_byte_patches_store_the_exact_bytes,
    a_drop_mid_part_keeps_the_received_bytes_and_resumes,
    bytes_past_the_recorded_offset_are_overwritten_by_the_resend,
    a_failed_finalising_commit_is_completed_by_the_resend,
    completing_again_answers_the_same_object,
    a_too_long_body_keeps_nothing_of_it,
    abort_removes_everything_staged,
    deleting_an_object_is_idempotent,
    ranged_reads_answer_exact_bytes,
);
