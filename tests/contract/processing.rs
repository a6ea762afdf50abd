//! Contract rules: processing, as observed from outside (§6).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use roughy_tests::media::wav;
use roughy_tests::{Tenant, TestApp};

/// The failure codes §6 names.
const FAILURE_CODES: [&str; 4] = [
    "media_unreadable",
    "media_corrupt",
    "media_truncated",
    "media_no_duration",
];

/// Ledger charges for `asset_id`.
async fn charges_for(app: &TestApp, t: &Tenant, asset_id: &str) -> Vec<Value> {
    app.ledger(t)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "asset_charge" && e["asset_id"] == asset_id)
        .collect()
}

/// Asserts a settled asset is `failed`, uncharged, with a failure code and message.
async fn assert_failed_uncharged(app: &TestApp, t: &Tenant, asset: &Value, balance_before: i64) {
    let id = asset["id"].as_str().unwrap();
    assert_eq!(asset["state"], "failed", "{asset}");
    let code = asset["error_code"]
        .as_str()
        .unwrap_or_else(|| panic!("error_code: {asset}"));
    assert!(FAILURE_CODES.contains(&code), "error_code {code}");
    let message = asset["error_message"]
        .as_str()
        .unwrap_or_else(|| panic!("error_message: {asset}"));
    assert!(!message.trim().is_empty(), "{asset}");
    assert!(asset["duration_seconds"].is_null(), "{asset}");
    assert!(asset["download_url"].is_null(), "{asset}");
    assert_eq!(asset["cuttable"], false, "{asset}");
    assert_eq!(app.balance(t).await, balance_before, "nothing charged");
    assert_eq!(charges_for(app, t, id).await, Vec::<Value>::new());
    // Terminal: still failed a while later.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = app.get_asset(t, id).await;
    assert_eq!(again["state"], "failed", "{again}");
    assert_eq!(app.balance(t).await, balance_before);
}

#[tokio::test]
async fn a_valid_wav_reaches_ready_with_its_exact_duration_to_3_decimals() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    for (millis, rate, expected, charge) in [
        (1_234_u64, 8_000_u32, "1.234", 1_i64),
        (500, 8_000, "0.500", 1),
        (61_001, 8_000, "61.001", 2),
        (2_000, 11_025, "2.000", 1),
    ] {
        let before = app.balance(&t).await;
        let asset = app.ingest(&t, &project, &wav(millis, rate)).await;
        assert_eq!(asset["state"], "ready", "{asset}");
        assert_eq!(
            asset["duration_seconds"], expected,
            "{millis} ms at {rate} Hz"
        );
        assert!(asset["error_code"].is_null() && asset["error_message"].is_null());
        assert_eq!(asset["type"], "audio");
        assert_eq!(before - app.balance(&t).await, charge, "{millis} ms");
        let charges = charges_for(&app, &t, asset["id"].as_str().unwrap()).await;
        assert_eq!(charges.len(), 1, "{charges:?}");
        assert_eq!(charges[0]["amount"], -charge);
    }
}

#[tokio::test]
async fn a_truncated_wav_fails_with_an_error_code_and_is_not_charged() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let full = wav(10_000, 8_000);
    // The header states 10 s; only 30 % of the file is there, and that is all we declare.
    let cut = full[..full.len() * 3 / 10].to_vec();
    let before = app.balance(&t).await;
    let asset = app.ingest(&t, &project, &cut).await;
    assert_failed_uncharged(&app, &t, &asset, before).await;
}

#[tokio::test]
async fn a_valid_wav_header_followed_by_garbage_or_nothing_fails_and_is_not_charged() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let full = wav(10_000, 8_000);
    // Exactly the 64-byte minimum: the header (stating 10 s) and 20 bytes of samples.
    let header_only = full[..64].to_vec();
    // The header, then 1000 bytes of noise that never reach the stated length.
    let mut garbage = full[..64].to_vec();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..1_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push((x >> 24) as u8);
    }
    for bytes in [header_only, garbage] {
        let before = app.balance(&t).await;
        let asset = app.ingest(&t, &project, &bytes).await;
        assert_failed_uncharged(&app, &t, &asset, before).await;
    }
}

#[tokio::test]
async fn deleting_an_asset_while_it_is_processing_charges_nothing() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    // Long enough that measuring it takes a while.
    let big = wav(30 * 60 * 1_000, 8_000);
    let (asset, url) = app.asset(&t, &project, big.len()).await;
    let id = asset["id"].as_str().unwrap();
    // One PATCH: its 204 means the asset is processing.
    let r = app.patch(&t, &url, 0, big).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let state = app.get_asset(&t, id).await["state"].clone();
    let r = app
        .req(Method::DELETE, &format!("/v1/assets/{id}"), &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        state, "processing",
        "precondition: the asset was still processing when deleted"
    );

    // A later asset settles only after the worker is done with the deleted one.
    let started = Instant::now();
    let small = app.ingest(&t, &project, &wav(1_000, 8_000)).await;
    assert_eq!(small["state"], "ready", "{small}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(charges_for(&app, &t, id).await, Vec::<Value>::new());
    assert_eq!(app.balance(&t).await, 99, "only the small asset is charged");
    let gone = app
        .req(Method::GET, &format!("/v1/assets/{id}"), &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn the_bytes_of_a_failed_asset_are_purged_after_the_retention_and_the_asset_stays() {
    let app =
        TestApp::spawn_with(|c| c.uploads.rules.failed_retention = time::Duration::hours(1)).await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let full = wav(10_000, 8_000);
    let cut = full[..full.len() * 3 / 10].to_vec();
    let before = app.balance(&t).await;
    let asset = app.ingest(&t, &project, &cut).await;
    assert_failed_uncharged(&app, &t, &asset, before).await;
    let id = asset["id"].as_str().unwrap();
    assert!(
        !app.blob_files_named(id).is_empty(),
        "kept within the retention"
    );

    app.clock.advance(time::Duration::minutes(59));
    app.wait_reaper().await;
    assert!(
        !app.blob_files_named(id).is_empty(),
        "kept within the retention"
    );

    app.clock.advance(time::Duration::minutes(2));
    app.wait_reaper().await;
    assert_eq!(app.blob_files_named(id), Vec::<std::path::PathBuf>::new());
    // The asset and its error stay.
    let kept = app.get_asset(&t, id).await;
    assert_eq!(kept["state"], "failed");
    assert_eq!(kept["error_code"], asset["error_code"]);
    assert_eq!(kept["error_message"], asset["error_message"]);
}
