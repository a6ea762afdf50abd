//! The real `roughy-server` binary as separate processes: several processes on one database
//! and one blob store, crashes (`kill -9`) and restarts.
//!
//! Each test gets its own database in the throwaway PostgreSQL cluster of the test run, except
//! the restart test, which runs the service on its embedded defaults.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failed expectation is the test's failure"
)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use roughy_media::synth::wav;

use common::{
    assert_same, credits, file_storage, media, patch_in_flight, shared_bucket, shared_database,
    wait_for, Api, Bucket, Server, Shared, PART,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_racing_patches_to_one_upload_never_corrupt_the_bytes_or_the_offset() {
    let (root, shared) = shared_database().await;
    let a = Server::start(&shared, &root.path().join("a"), &[]).await;
    let b = Server::start(&shared, &root.path().join("b"), &[]).await;
    let api = Api::tenant(&a, 100).await;
    let bytes = wav(20_000, 8_000);
    let (asset_id, url) = api.asset(&a, bytes.len()).await;
    // The first chunk through A, then two clients race the rest, one through each process,
    // each HEADing and PATCHing the same upload until it is complete.
    assert_eq!(
        api.patch(&url, 0, bytes[..4096].to_vec()).await,
        StatusCode::NO_CONTENT
    );
    let (via_a, via_b) = tokio::join!(
        api.race_patches(url.clone(), &bytes, 8192),
        api.race_patches(Api::via(&b, &url), &bytes, 8192)
    );
    assert!(
        via_a + via_b >= (bytes.len() - 4096) / 8192,
        "{via_a} + {via_b} chunks"
    );
    let asset = api.settled(&a, &asset_id, Duration::from_secs(30)).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_eq!(asset["size_bytes"], bytes.len());
    assert_eq!(
        api.download(&asset).await,
        bytes,
        "the stored object is byte-identical"
    );
    assert_eq!(api.charges(&b).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_jobs_raced_by_the_workers_of_two_processes_are_each_settled_once() {
    let (root, shared) = shared_database().await;
    let a = Server::start(&shared, &root.path().join("a"), &[]).await;
    let b = Server::start(&shared, &root.path().join("b"), &[]).await;
    let api = Api::tenant(&a, 1_000).await;
    let mut assets = Vec::new();
    for i in 0..8u64 {
        // Alternate the finalising process, so both workers are woken and both poll.
        let server = if i % 2 == 0 { &a } else { &b };
        let bytes = wav(61_000 + i * 1_000, 8_000); // 2 credits each
        let (id, url) = api.asset(server, bytes.len()).await;
        api.upload(&Api::via(server, &url), &bytes, 1 << 20).await;
        assets.push(id);
    }
    for id in &assets {
        let asset = api.settled(&a, id, Duration::from_secs(60)).await;
        assert_eq!(asset["state"], "ready", "{asset}");
    }
    let ids: Vec<&str> = assets.iter().map(String::as_str).collect();
    api.assert_charged_once(&b, &ids, 1_000 - 2 * assets.len() as i64)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_processing_then_restart_reaches_ready_and_charges_once() {
    let (root, shared) = shared_database().await;
    let lease = [("ROUGHY_JOB_LEASE_SECS", "2")];
    let a = Server::start(&shared, &root.path().join("a"), &lease).await;
    let api = Api::tenant(&a, 1_000).await;
    // 40 minutes of 8 kHz audio: measuring it (scan and decode) takes a moment.
    let bytes = wav(40 * 60 * 1_000, 8_000);
    let (id, url) = api.asset(&a, bytes.len()).await;
    api.upload(&url, &bytes, 8 << 20).await;
    // The last 204 means: finalised and the job durably queued. Crash at once.
    a.kill9();
    let again = Server::start(&shared, &root.path().join("a"), &lease).await;
    let asset = api.settled(&again, &id, Duration::from_secs(60)).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_eq!(asset["duration_seconds"], "2400.000");
    assert_eq!(api.charges(&again).await.len(), 1);
    assert_eq!(api.download(&asset).await.len(), bytes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_loses_no_acknowledged_byte_and_the_upload_resumes_identically() {
    let (root, shared) = shared_database().await;
    let a = Server::start(&shared, &root.path().join("a"), &[]).await;
    let api = Api::tenant(&a, 100).await;
    let bytes = wav(120_000, 8_000);
    let (id, url) = api.asset(&a, bytes.len()).await;
    let acknowledged = 64 * 1024;
    for start in (0..acknowledged).step_by(16 * 1024) {
        assert_eq!(
            api.patch(&url, start as u64, bytes[start..start + 16 * 1024].to_vec())
                .await,
            StatusCode::NO_CONTENT
        );
    }
    // A PATCH that sends 256 KiB and then stalls; the server is killed while it hangs.
    let sent = 256 * 1024;
    let counted = Arc::new(AtomicUsize::new(0));
    let in_flight = patch_in_flight(
        &api,
        &url,
        &bytes,
        acknowledged,
        acknowledged + sent,
        &counted,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.kill9();
    let _ = in_flight.await;
    let again = Server::start(&shared, &root.path().join("a"), &[]).await;
    let url = Api::via(&again, &url);
    let offset = api.head(&url).await as usize;
    assert!(
        offset >= acknowledged,
        "HEAD {offset} < acknowledged {acknowledged}"
    );
    assert!(
        offset <= acknowledged + sent,
        "HEAD {offset} > sent {}",
        acknowledged + sent
    );
    api.upload(&url, &bytes, 1 << 20).await;
    let asset = api.settled(&again, &id, Duration::from_secs(30)).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_eq!(
        api.download(&asset).await,
        bytes,
        "resumed to a byte-identical object"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_defaults_keep_assets_and_bytes_across_a_restart() {
    let root = tempfile::tempdir().unwrap();
    // No DATABASE_URL: the service starts its own cluster under <data dir>/pg.
    let shared = Shared {
        database_url: None,
        storage: file_storage(&root.path().join("data/blobs")),
    };
    let data = root.path().join("data");
    let first = Server::start(&shared, &data, &[]).await;
    let api = Api::tenant(&first, 10).await;
    let bytes = wav(3_000, 8_000);
    let (id, url) = api.asset(&first, bytes.len()).await;
    api.upload(&url, &bytes, 1 << 20).await;
    let asset = api.settled(&first, &id, Duration::from_secs(30)).await;
    assert_eq!(asset["state"], "ready");
    first.terminate();

    let second = Server::start(&shared, &data, &[]).await;
    let asset = api.asset_state(&second, &id).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_eq!(asset["duration_seconds"], "3.000");
    assert_eq!(api.download(&asset).await, bytes);
    second.terminate();
}

// ---------------------------------------------------------------------------------------------
// Several processes on one database and one S3 bucket, with nothing on a shared filesystem.
// ---------------------------------------------------------------------------------------------

/// Bytes of files under `dir` other than the server log (what a process kept locally).
fn local_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += local_bytes(&path);
        } else if path.file_name().is_some_and(|n| n != "server.log") {
            total += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}

impl Api {
    /// The ready asset's object, fetched through its `download_url`, which for S3 is a
    /// presigned GET of the bucket.
    async fn download_from(&self, bucket: &Bucket, asset: &Value) -> Vec<u8> {
        let url = asset["download_url"].as_str().unwrap_or_default();
        assert!(
            url.starts_with(&bucket.endpoint) && url.contains(&bucket.name),
            "a presigned GET of the bucket: {asset}"
        );
        let r = self.client.get(url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {url}");
        r.bytes().await.unwrap().to_vec()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_an_upload_started_on_one_process_finishes_on_the_other_byte_identical() {
    let (root, shared, bucket) = shared_bucket().await;
    let a = Server::start(&shared, &root.path().join("a"), &[]).await;
    let b = Server::start(&shared, &root.path().join("b"), &[]).await;
    let api = Api::tenant(&a, 100).await;
    let millis = 1_300_000; // 20.8 MB: three parts and a tail
    let bytes = media(millis);
    let (id, url) = api.asset(&a, bytes.len()).await;
    // Through A: a part and a tail (11 MiB + 777 bytes, in two PATCHes that cut parts).
    let handed_over = (11 << 20) + 777;
    for (from, to) in [(0, (3 << 20) + 5), ((3 << 20) + 5, handed_over)] {
        assert_eq!(
            api.patch(&url, from as u64, bytes[from..to].to_vec()).await,
            StatusCode::NO_CONTENT,
            "PATCH {from}..{to} via A"
        );
    }
    // A dies and its data dir goes: nothing but the database and the bucket carries on.
    a.kill9();
    std::fs::remove_dir_all(root.path().join("a")).unwrap();
    let via_b = Api::via(&b, &url);
    assert_eq!(api.head(&via_b).await, handed_over as u64);
    api.upload(&via_b, &bytes, (4 << 20) + 3).await;
    let asset = api.settled(&b, &id, Duration::from_secs(30)).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_eq!(asset["size_bytes"], bytes.len());
    assert_same(
        &api.download_from(&bucket, &asset).await,
        &bytes,
        "the object finished on B",
    );
    assert_eq!(api.charges(&b).await.len(), 1);
    assert_eq!(api.balance(&b).await, 100 - credits(millis));
    let kept = local_bytes(&root.path().join("b"));
    assert!(kept < 1 << 20, "B kept {kept} bytes on its own disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_two_processes_racing_multi_part_patches_to_one_upload_never_corrupt_it() {
    let (root, shared, bucket) = shared_bucket().await;
    let a = Server::start(&shared, &root.path().join("a"), &[]).await;
    let b = Server::start(&shared, &root.path().join("b"), &[]).await;
    let api = Api::tenant(&a, 100).await;
    let millis = 1_000_000; // 16 MB: two parts and a tail
    let bytes = media(millis);
    let (id, url) = api.asset(&a, bytes.len()).await;
    assert_eq!(
        api.patch(&url, 0, bytes[..1 << 20].to_vec()).await,
        StatusCode::NO_CONTENT
    );
    let chunk = (3 << 19) + 17; // 1.5 MiB + 17: PATCHes end mid-part, tails change hands
    let (via_a, via_b) = tokio::join!(
        api.race_patches(url.clone(), &bytes, chunk),
        api.race_patches(Api::via(&b, &url), &bytes, chunk)
    );
    assert!(
        via_a + via_b >= (bytes.len() - (1 << 20)).div_ceil(chunk),
        "{via_a} + {via_b} chunks"
    );
    let asset = api.settled(&b, &id, Duration::from_secs(30)).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_eq!(asset["size_bytes"], bytes.len());
    assert_same(
        &api.download_from(&bucket, &asset).await,
        &bytes,
        "the raced object",
    );
    assert_eq!(api.charges(&a).await.len(), 1);
    assert_eq!(api.balance(&a).await, 100 - credits(millis));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_api_and_worker_processes_split_the_work_and_settle_every_asset_exactly_once() {
    let (root, shared, bucket) = shared_bucket().await;
    let api_role = [("ROUGHY_ROLE", "api")];
    let worker_role = [("ROUGHY_ROLE", "worker")];
    let api1 = Server::start(&shared, &root.path().join("api1"), &api_role).await;
    let api2 = Server::start(&shared, &root.path().join("api2"), &api_role).await;
    let api = Api::tenant(&api1, 1_000).await;
    // Six assets, uploaded alternately through the two API processes; one spans parts.
    let lengths: Vec<u64> = vec![61_000, 62_000, 400_000, 63_000, 125_000, 64_000];
    let mut assets = Vec::new();
    for (i, &millis) in lengths.iter().enumerate() {
        let server = if i % 2 == 0 { &api1 } else { &api2 };
        let bytes = media(millis);
        let (id, url) = api.asset(server, bytes.len()).await;
        api.upload(&url, &bytes, (2 << 20) + 1).await;
        assets.push((id, bytes));
    }
    // No worker yet: API processes process nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (id, _) in &assets {
        let asset = api.asset_state(&api2, id).await;
        assert_eq!(
            asset["state"], "processing",
            "an api process processed {asset}"
        );
    }
    assert!(api.charges(&api1).await.is_empty());
    let w1 = Server::start(&shared, &root.path().join("w1"), &worker_role).await;
    let w2 = Server::start(&shared, &root.path().join("w2"), &worker_role).await;
    // Workers serve health only.
    for w in [&w1, &w2] {
        let (status, _) = api
            .json(Method::GET, format!("{}/v1/assets", w.base), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "a worker serves no API");
        let r = api
            .client
            .get(format!("{}/healthz", w.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    for (id, bytes) in &assets {
        let asset = api.settled(&api1, id, Duration::from_secs(30)).await;
        assert_eq!(
            asset["state"],
            "ready",
            "{asset}; worker logs:\n{}\n{}",
            w1.log(),
            w2.log()
        );
        assert_same(&api.download_from(&bucket, &asset).await, bytes, id);
    }
    let spent: i64 = lengths.iter().map(|&m| credits(m)).sum();
    let ids: Vec<&str> = assets.iter().map(|(id, _)| id.as_str()).collect();
    api.assert_charged_once(&api2, &ids, 1_000 - spent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_kill_9_between_a_part_upload_and_its_database_record_loses_nothing_and_charges_once() {
    let (root, shared, bucket) = shared_bucket().await;
    let a = Server::start(&shared, &root.path().join("a"), &[]).await;
    let b = Server::start(&shared, &root.path().join("b"), &[]).await;
    let api = Api::tenant(&a, 1_000).await;
    let millis = 2_621_440; // 40 MiB: six parts and a tail
    let bytes = media(millis);

    // 1. A PATCH through A that sends four parts' worth and stalls; A is killed the moment
    //    the S3 server holds the fourth part, before A can have recorded it. B resumes.
    let (first, url) = api.asset(&a, bytes.len()).await;
    let acknowledged = (3 << 20) + 123; // a tail only
    assert_eq!(
        api.patch(&url, 0, bytes[..acknowledged].to_vec()).await,
        StatusCode::NO_CONTENT
    );
    let sent = Arc::new(AtomicUsize::new(0));
    let in_flight = patch_in_flight(
        &api,
        &url,
        &bytes,
        acknowledged,
        4 * PART + (100 << 10),
        &sent,
    );
    wait_for(
        "the fourth part reaches S3",
        Duration::from_secs(20),
        || a.log(),
        || bucket.parts_of(&first) >= 4,
    )
    .await;
    a.kill9();
    let sent_by_then = acknowledged + sent.load(Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(5), in_flight).await;
    let via_b = Api::via(&b, &url);
    let offset = api.head(&via_b).await as usize;
    assert!(
        (acknowledged..=sent_by_then).contains(&offset),
        "HEAD {offset} outside acknowledged {acknowledged} ..= sent {sent_by_then}"
    );
    api.upload(&via_b, &bytes, (4 << 20) + 1).await;

    // 2. A fast PATCH through the restarted A, killed after about 20 MiB went out; the
    //    process restarted on the same data dir resumes.
    let a = Server::start(&shared, &root.path().join("a"), &[]).await;
    let (second, url) = api.asset(&a, bytes.len()).await;
    let acknowledged = (7 << 20) + 1; // a part and a tail
    assert_eq!(
        api.patch(&url, 0, bytes[..acknowledged].to_vec()).await,
        StatusCode::NO_CONTENT
    );
    let sent = Arc::new(AtomicUsize::new(0));
    let in_flight = patch_in_flight(&api, &url, &bytes, acknowledged, bytes.len(), &sent);
    wait_for(
        "20 MiB sent",
        Duration::from_secs(20),
        || a.log(),
        || acknowledged + sent.load(Ordering::SeqCst) >= 20 << 20,
    )
    .await;
    a.kill9();
    let sent_by_then = acknowledged + sent.load(Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(5), in_flight).await;
    let again = Server::start(&shared, &root.path().join("a"), &[]).await;
    let url = Api::via(&again, &url);
    let offset = api.head(&url).await as usize;
    assert!(
        (acknowledged..=sent_by_then).contains(&offset),
        "HEAD {offset} outside acknowledged {acknowledged} ..= sent {sent_by_then}"
    );
    api.upload(&url, &bytes, 16 << 20).await;

    for id in [&first, &second] {
        let asset = api.settled(&b, id, Duration::from_secs(30)).await;
        assert_eq!(asset["state"], "ready", "{asset}");
        assert_eq!(asset["size_bytes"], bytes.len());
        assert_same(&api.download_from(&bucket, &asset).await, &bytes, id);
    }
    api.assert_charged_once(&b, &[&first, &second], 1_000 - 2 * credits(millis))
        .await;
}
