//! `LocalBlobStore` against a real temporary directory.

use tempfile::TempDir;

use roughy_app::ports::BodyError;

use super::*;

/// A store in a fresh temporary directory (kept alive by the returned guard).
fn store() -> (TempDir, LocalBlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(dir.path().join("blobs")).unwrap();
    (dir, store)
}

/// Deterministic bytes, so misplaced or repeated bytes show up.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + i / 251) % 256) as u8 ^ seed)
        .collect()
}

/// A body of these items.
fn body(items: Vec<Result<Bytes, BodyError>>) -> ByteStream<'static> {
    Box::pin(stream::iter(items))
}

/// A body of `data` cut into `chunk`-byte pieces.
fn chunked(data: &[u8], chunk: usize) -> ByteStream<'static> {
    body(
        data.chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect(),
    )
}

fn part_bytes(store: &LocalBlobStore, id: &UploadId) -> Vec<u8> {
    fs::read(store.part_path(id)).unwrap()
}

async fn read_all(store: &LocalBlobStore, asset: &AssetId, range: Range<u64>) -> Vec<u8> {
    let chunks: Vec<Bytes> = store
        .read_range(asset, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(chunks.iter().all(|c| c.len() <= READ_CHUNK_SIZE));
    chunks.concat()
}

#[tokio::test]
async fn appends_in_one_chunk_and_in_several() {
    let (_dir, store) = store();
    let store = store.with_write_buffer_size(10);
    let data = pattern(1000, 1);

    let one = UploadId::generate();
    let outcome = store.append_at(&one, 0, chunked(&data, 1000), 1000).await;
    assert_eq!(outcome.offset, 1000);
    assert!(outcome.stop.is_none());
    assert_eq!(part_bytes(&store, &one), data);

    // Odd chunk sizes against a 10-byte buffer: many buffer hand-overs, split chunks.
    let several = UploadId::generate();
    let outcome = store
        .append_at(&several, 0, chunked(&data[..333], 7), 1000)
        .await;
    assert_eq!(outcome.offset, 333);
    assert!(outcome.stop.is_none());
    let outcome = store
        .append_at(&several, 333, chunked(&data[333..], 64), 667)
        .await;
    assert_eq!(outcome.offset, 1000);
    assert!(outcome.stop.is_none());
    assert_eq!(part_bytes(&store, &several), data);
}

#[tokio::test]
async fn streams_a_large_body_through_the_default_buffers() {
    let (_dir, store) = store();
    let id = UploadId::generate();
    let asset = AssetId::generate();
    let data = pattern(5 * 1024 * 1024 + 123, 2);
    let outcome = store
        .append_at(&id, 0, chunked(&data, 64 * 1024), data.len() as u64)
        .await;
    assert_eq!(outcome.offset, data.len() as u64);
    assert!(outcome.stop.is_none());
    assert_eq!(
        store.complete_at(&id, &asset).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(read_all(&store, &asset, 0..data.len() as u64).await, data);
}

/// Direct I/O (aligned bulk past the page cache, unaligned heads and tails through it) and
/// plain buffered writes store the same bytes, whatever the offsets and chunk sizes.
#[tokio::test]
async fn direct_and_buffered_appends_store_the_same_bytes() {
    for direct_io in [true, false] {
        let (_dir, store) = store();
        let store = store
            .with_direct_io(direct_io)
            .with_write_buffer_size(64 * 1024);
        let id = UploadId::generate();
        let data = pattern(1_000_003, 4);
        let mut offset = 0;
        for len in [100_001, 4096, 333_333, 1, 262_144, 300_428] {
            let end = offset + len;
            let outcome = store
                .append_at(
                    &id,
                    offset as u64,
                    chunked(&data[offset..end], 8191),
                    (data.len() - offset) as u64,
                )
                .await;
            assert_eq!(outcome.offset, end as u64, "direct_io {direct_io}");
            assert!(outcome.stop.is_none());
            offset = end;
        }
        assert_eq!(part_bytes(&store, &id), data, "direct_io {direct_io}");
    }
}

#[tokio::test]
async fn a_body_failing_midway_keeps_what_arrived() {
    let (_dir, store) = store();
    let store = store.with_write_buffer_size(16);
    let id = UploadId::generate();
    let data = pattern(100, 3);
    let items = vec![
        Ok(Bytes::copy_from_slice(&data[..30])),
        Ok(Bytes::copy_from_slice(&data[30..45])),
        Err(BodyError::Interrupted("connection reset".into())),
        Ok(Bytes::from_static(b"never read")),
    ];
    let outcome = store.append_at(&id, 0, body(items), 100).await;
    assert_eq!(outcome.offset, 45);
    assert!(matches!(
        outcome.stop,
        Some(AppendStop::Body(BodyError::Interrupted(_)))
    ));
    assert_eq!(part_bytes(&store, &id), &data[..45]);

    // Idle timeouts stop it the same way.
    let outcome = store
        .append_at(
            &id,
            45,
            body(vec![
                Ok(Bytes::copy_from_slice(&data[45..50])),
                Err(BodyError::IdleTimeout),
            ]),
            55,
        )
        .await;
    assert_eq!(outcome.offset, 50);
    assert!(matches!(
        outcome.stop,
        Some(AppendStop::Body(BodyError::IdleTimeout))
    ));

    // The client resumes from the reported offset to an identical object.
    let outcome = store.append_at(&id, 50, chunked(&data[50..], 9), 50).await;
    assert_eq!(outcome.offset, 100);
    let asset = AssetId::generate();
    assert_eq!(store.complete_at(&id, &asset).await.unwrap(), 100);
    assert_eq!(read_all(&store, &asset, 0..100).await, data);
}

#[tokio::test]
async fn a_body_failing_before_any_byte_stores_nothing() {
    let (_dir, store) = store();
    let id = UploadId::generate();
    let outcome = store
        .append_at(&id, 0, body(vec![Err(BodyError::IdleTimeout)]), 100)
        .await;
    assert_eq!(outcome.offset, 0);
    assert!(matches!(outcome.stop, Some(AppendStop::Body(_))));
}

#[tokio::test]
async fn appending_from_a_smaller_offset_drops_stale_bytes() {
    let (_dir, store) = store();
    let id = UploadId::generate();
    let first = pattern(100, 4);
    let outcome = store.append_at(&id, 0, chunked(&first, 33), 100).await;
    assert_eq!(outcome.offset, 100);

    // The repository only recorded 40 (say the response was lost): bytes past it are stale.
    let second = pattern(10, 5);
    let outcome = store.append_at(&id, 40, chunked(&second, 4), 60).await;
    assert_eq!(outcome.offset, 50);
    let mut expected = first[..40].to_vec();
    expected.extend_from_slice(&second);
    assert_eq!(part_bytes(&store, &id), expected);
}

#[tokio::test]
async fn an_offset_past_the_staged_bytes_is_a_storage_failure() {
    let (_dir, store) = store();
    let id = UploadId::generate();
    // No part file at all.
    let outcome = store.append_at(&id, 10, chunked(b"abc", 3), 90).await;
    assert_eq!(outcome.offset, 0);
    assert!(matches!(
        outcome.stop,
        Some(AppendStop::Storage(BlobError::Internal(_)))
    ));
    assert!(!store.part_path(&id).exists());

    // A part file shorter than the offset: never padded with zeros.
    store.append_at(&id, 0, chunked(b"12345", 5), 100).await;
    let outcome = store.append_at(&id, 8, chunked(b"abc", 3), 92).await;
    assert_eq!(outcome.offset, 5);
    assert!(matches!(outcome.stop, Some(AppendStop::Storage(_))));
    assert_eq!(part_bytes(&store, &id), b"12345");
}

#[tokio::test]
async fn more_than_the_limit_is_too_long() {
    let (_dir, store) = store();
    let store = store.with_write_buffer_size(4);
    let id = UploadId::generate();
    let outcome = store
        .append_at(&id, 0, chunked(&pattern(12, 6), 6), 10)
        .await;
    assert!(matches!(outcome.stop, Some(AppendStop::TooLong)));
    // Bytes up to the limit, never past it.
    assert_eq!(outcome.offset, 10);
    assert_eq!(part_bytes(&store, &id).len(), 10);

    // Exactly the limit is fine.
    let exact = UploadId::generate();
    let outcome = store
        .append_at(&exact, 0, chunked(&pattern(10, 6), 3), 10)
        .await;
    assert_eq!(outcome.offset, 10);
    assert!(outcome.stop.is_none());

    // Nothing allowed: refused without touching the disk.
    let none = UploadId::generate();
    let outcome = store.append_at(&none, 0, chunked(b"x", 1), 0).await;
    assert!(matches!(outcome.stop, Some(AppendStop::TooLong)));
    assert_eq!(outcome.offset, 0);
    assert!(!store.part_path(&none).exists());
}

#[tokio::test]
async fn an_empty_body_changes_nothing() {
    let (_dir, store) = store();
    let id = UploadId::generate();
    let outcome = store.append_at(&id, 0, body(vec![]), 100).await;
    assert_eq!(outcome.offset, 0);
    assert!(outcome.stop.is_none());
    assert!(!store.part_path(&id).exists());

    let outcome = store
        .append_at(&id, 0, body(vec![Ok(Bytes::new()), Ok(Bytes::new())]), 100)
        .await;
    assert_eq!(outcome.offset, 0);
    assert!(outcome.stop.is_none());
}

#[tokio::test]
async fn complete_moves_the_part_into_place_and_ranges_read_exact_bytes() {
    let (_dir, store) = store();
    let id = UploadId::generate();
    let asset = AssetId::generate();
    // Several read chunks long, with a ragged end.
    let len = 3 * READ_CHUNK_SIZE + 1234;
    let data = pattern(len, 7);
    store
        .append_at(&id, 0, chunked(&data, 50_000), len as u64)
        .await;
    assert_eq!(store.complete_at(&id, &asset).await.unwrap(), len as u64);
    assert!(!store.part_path(&id).exists());
    assert!(store.object_path(&asset).exists());
    assert_eq!(store.object_size(&asset).await.unwrap(), len as u64);

    let len64 = len as u64;
    let chunk = READ_CHUNK_SIZE as u64;
    for range in [
        0..len64,
        0..1,
        5..17,
        chunk - 3..chunk + 3,
        chunk..2 * chunk,
        len64 - 1..len64,
        100..len64,
    ] {
        let expected = &data[range.start as usize..range.end as usize];
        assert_eq!(
            read_all(&store, &asset, range.clone()).await,
            expected,
            "{range:?}"
        );
    }
    // An end past the object is cut at its end.
    assert_eq!(
        read_all(&store, &asset, len64 - 10..len64 + 100).await,
        &data[len - 10..]
    );
    assert!(read_all(&store, &asset, 7..7).await.is_empty());
    assert!(matches!(
        store.read_range(&asset, len64..len64 + 1).await,
        Err(BlobError::Internal(_))
    ));

    // Completing again (the repository failed to record it) answers the same size.
    assert_eq!(store.complete_at(&id, &asset).await.unwrap(), len as u64);
}

#[tokio::test]
async fn missing_things_are_not_found() {
    let (_dir, store) = store();
    let asset = AssetId::generate();
    assert!(matches!(
        store.complete_at(&UploadId::generate(), &asset).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        store.object_size(&asset).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        store.read_range(&asset, 0..10).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        store.read_range(&asset, 0..0).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        store.open_reader(&asset).await,
        Err(BlobError::NotFound)
    ));
}

#[tokio::test]
async fn abort_is_idempotent() {
    let (_dir, store) = store();
    let id = UploadId::generate();
    store.abort_at(&id).await.unwrap();
    store
        .append_at(&id, 0, chunked(b"some bytes", 4), 100)
        .await;
    assert!(store.part_path(&id).exists());
    store.abort_at(&id).await.unwrap();
    assert!(!store.part_path(&id).exists());
    store.abort_at(&id).await.unwrap();
}

#[tokio::test]
async fn delete_is_idempotent() {
    let (_dir, store) = store();
    let id = UploadId::generate();
    let asset = AssetId::generate();
    store.delete_object(&asset).await.unwrap();
    store
        .append_at(&id, 0, chunked(b"object bytes", 5), 100)
        .await;
    store.complete_at(&id, &asset).await.unwrap();
    store.delete_object(&asset).await.unwrap();
    assert!(matches!(
        store.object_size(&asset).await,
        Err(BlobError::NotFound)
    ));
    store.delete_object(&asset).await.unwrap();
}

#[tokio::test]
async fn a_reader_seeks_and_knows_its_length() {
    let (_dir, store) = store();
    let id = UploadId::generate();
    let asset = AssetId::generate();
    let data = pattern(10_000, 8);
    store.append_at(&id, 0, chunked(&data, 999), 10_000).await;
    store.complete_at(&id, &asset).await.unwrap();

    let mut reader = store.open_reader(&asset).await.unwrap();
    assert_eq!(reader.byte_len(), Some(10_000));
    let mut buf = [0; 16];
    reader.read_exact(&mut buf).unwrap();
    assert_eq!(buf, data[..16]);
    reader.seek(SeekFrom::Start(5000)).unwrap();
    reader.read_exact(&mut buf).unwrap();
    assert_eq!(buf, data[5000..5016]);
    reader.seek(SeekFrom::End(-16)).unwrap();
    reader.read_exact(&mut buf).unwrap();
    assert_eq!(buf, data[10_000 - 16..]);
    reader.seek(SeekFrom::Current(-32)).unwrap();
    reader.read_exact(&mut buf).unwrap();
    assert_eq!(buf, data[10_000 - 32..10_000 - 16]);
}

#[tokio::test]
async fn check_answers_while_the_root_is_writable() {
    let (_dir, store) = store();
    store.check().await.unwrap();
    // No probe file is left behind.
    assert_eq!(fs::read_dir(&store.uploads).unwrap().count(), 0);

    fs::remove_dir_all(store.root()).unwrap();
    assert!(matches!(store.check().await, Err(BlobError::Internal(_))));
}

#[tokio::test]
async fn a_store_reopens_over_existing_data() {
    let dir = tempfile::tempdir().unwrap();
    let id = UploadId::generate();
    {
        let store = LocalBlobStore::new(dir.path()).unwrap();
        store
            .append_at(&id, 0, chunked(b"first half ", 4), 100)
            .await;
    }
    // A restarted process resumes the staged upload.
    let store = LocalBlobStore::new(dir.path()).unwrap();
    let outcome = store
        .append_at(&id, 11, chunked(b"second half", 4), 89)
        .await;
    assert_eq!(outcome.offset, 22);
    let asset = AssetId::generate();
    store.complete_at(&id, &asset).await.unwrap();
    assert_eq!(
        read_all(&store, &asset, 0..22).await,
        b"first half second half"
    );
}
