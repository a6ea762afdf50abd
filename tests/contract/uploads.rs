//! Contract rules: uploads, PATCH/HEAD/DELETE semantics (§5).

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use roughy_tests::media::wav;
use roughy_tests::{error_code, header_str, parse_imf_fixdate, upload_id, Tenant, TestApp};

const OCTETS: &str = "application/offset+octet-stream";

/// A tenant, a project, the bytes of a 1 s WAV and its fresh upload: `(tenant, asset id, url, bytes)`.
async fn fresh_upload(app: &TestApp, millis: u64) -> (Tenant, String, String, Vec<u8>) {
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let bytes = wav(millis, 8_000);
    let (asset, url) = app.asset(&t, &project, bytes.len()).await;
    (t, asset["id"].as_str().unwrap().to_owned(), url, bytes)
}

/// Stored bytes of an asset or upload, anywhere in the blob store.
fn stored(app: &TestApp, asset_id: &str, url: &str) -> Vec<PathBuf> {
    [
        app.blob_files_named(asset_id),
        app.blob_files_named(&upload_id(url)),
    ]
    .concat()
}

async fn download(app: &TestApp, t: &Tenant, asset_id: &str) -> Vec<u8> {
    let settled = app.settled(t, asset_id).await;
    assert_eq!(settled["state"], "ready", "{settled}");
    let link = settled["download_url"].as_str().unwrap();
    let r = app.client.get(link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn head_is_200_with_offset_length_no_store_and_expiry_and_no_body() {
    let app = TestApp::spawn().await;
    let (t, _, url, bytes) = fresh_upload(&app, 1_000).await;
    let r = app.head(&t, &url).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_str(&r, "upload-offset"), "0");
    assert_eq!(header_str(&r, "upload-length"), bytes.len().to_string());
    assert_eq!(header_str(&r, "cache-control"), "no-store");
    assert_eq!(header_str(&r, "tus-resumable"), "1.0.0");
    parse_imf_fixdate(&header_str(&r, "upload-expires"));
    assert!(r.bytes().await.unwrap().is_empty());

    app.upload_all(&t, &url, &bytes[..500], 500).await;
    let r = app.head(&t, &url).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_str(&r, "upload-offset"), "500");
    assert_eq!(header_str(&r, "upload-length"), bytes.len().to_string());
    assert_eq!(header_str(&r, "cache-control"), "no-store");
    parse_imf_fixdate(&header_str(&r, "upload-expires"));
}

#[tokio::test]
async fn head_after_finalisation_reports_offset_equal_to_length() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 1_000).await;
    app.upload_all(&t, &url, &bytes, bytes.len()).await;
    let len = bytes.len().to_string();
    let r = app.head(&t, &url).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_str(&r, "upload-offset"), len);
    assert_eq!(header_str(&r, "upload-length"), len);
    assert_eq!(header_str(&r, "cache-control"), "no-store");
    assert!(
        !r.headers().contains_key("upload-expires"),
        "Upload-Expires only while pending: {:?}",
        r.headers()
    );
    // Still so once processed.
    app.settled(&t, &id).await;
    let r = app.head(&t, &url).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_str(&r, "upload-offset"), len);
}

#[tokio::test]
async fn patch_is_204_with_new_offset_and_a_refreshed_upload_expires() {
    let app = TestApp::spawn().await;
    let (t, _, url, bytes) = fresh_upload(&app, 1_000).await;
    let r = app.patch(&t, &url, 0, bytes[..1_000].to_vec()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&r, "upload-offset"), "1000");
    assert_eq!(header_str(&r, "tus-resumable"), "1.0.0");
    let first = parse_imf_fixdate(&header_str(&r, "upload-expires"));
    let ahead = first - time::OffsetDateTime::now_utc();
    assert!(
        ahead > time::Duration::hours(47)
            && ahead <= time::Duration::hours(48) + time::Duration::minutes(1),
        "expiry {first} is now + 48 h, got {ahead}"
    );

    app.clock.advance(time::Duration::hours(3));
    let r = app
        .patch(&t, &url, 1_000, bytes[1_000..2_000].to_vec())
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&r, "upload-offset"), "2000");
    let second = parse_imf_fixdate(&header_str(&r, "upload-expires"));
    let moved = second - first;
    assert!(
        moved >= time::Duration::hours(3) - time::Duration::seconds(2)
            && moved <= time::Duration::hours(3) + time::Duration::seconds(60),
        "the expiry moved by {moved}, expected about 3 h"
    );
    let head = app.head(&t, &url).await;
    assert_eq!(
        parse_imf_fixdate(&header_str(&head, "upload-expires")),
        second
    );
}

#[tokio::test]
async fn patch_with_a_wrong_content_type_is_415_unsupported_content_type() {
    let app = TestApp::spawn().await;
    let (t, _, url, bytes) = fresh_upload(&app, 1_000).await;
    for ct in [
        Some("application/octet-stream"),
        Some("application/json"),
        Some("text/plain"),
        None,
    ] {
        let mut req = app
            .tus(Method::PATCH, &url, &t.key)
            .header("Upload-Offset", "0")
            .body(bytes[..200].to_vec());
        if let Some(ct) = ct {
            req = req.header("Content-Type", ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(header_str(&r, "tus-resumable"), "1.0.0");
        assert_eq!(
            error_code(r).await,
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_type".into()
            ),
            "Content-Type {ct:?}"
        );
    }
    assert_eq!(app.offset(&t, &url).await, 0);
}

#[tokio::test]
async fn patch_with_a_missing_negative_or_non_integer_offset_is_400_invalid_upload_offset() {
    let app = TestApp::spawn().await;
    let (t, _, url, bytes) = fresh_upload(&app, 1_000).await;
    for offset in [
        None,
        Some("-1"),
        Some("abc"),
        Some("1.5"),
        Some(""),
        Some("0x10"),
    ] {
        let mut req = app
            .tus(Method::PATCH, &url, &t.key)
            .header("Content-Type", OCTETS)
            .body(bytes[..200].to_vec());
        if let Some(o) = offset {
            req = req.header("Upload-Offset", o);
        }
        let r = req.send().await.unwrap();
        assert_eq!(
            error_code(r).await,
            (StatusCode::BAD_REQUEST, "invalid_upload_offset".into()),
            "Upload-Offset {offset:?}"
        );
    }
    assert_eq!(app.offset(&t, &url).await, 0);
}

#[tokio::test]
async fn patch_with_wrong_offset_is_409_offset_mismatch_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 1_000).await;
    // Ahead of a fresh upload.
    assert_eq!(
        error_code(app.patch(&t, &url, 100, bytes[100..300].to_vec()).await).await,
        (StatusCode::CONFLICT, "offset_mismatch".into())
    );
    assert_eq!(app.offset(&t, &url).await, 0);
    app.upload_all(&t, &url, &bytes[..1_000], 1_000).await;
    // Behind and ahead of the stored offset.
    for wrong in [0_u64, 999, 1_001, 5_000] {
        let at = wrong as usize;
        assert_eq!(
            error_code(
                app.patch(&t, &url, wrong, bytes[at..at + 100].to_vec())
                    .await
            )
            .await,
            (StatusCode::CONFLICT, "offset_mismatch".into()),
            "offset {wrong}"
        );
        assert_eq!(app.offset(&t, &url).await, 1_000);
    }
    // The right offset still works and the result is byte-identical.
    app.upload_from(&t, &url, &bytes, 1_000, 4_000).await;
    assert_eq!(download(&app, &t, &id).await, bytes);
}

#[tokio::test]
async fn patch_past_upload_length_is_413_upload_length_exceeded_and_keeps_nothing() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 1_000).await;
    // A first chunk longer than the whole upload.
    let mut too_long = bytes.clone();
    too_long.extend_from_slice(&[0_u8; 10]);
    assert_eq!(
        error_code(app.patch(&t, &url, 0, too_long.clone()).await).await,
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_length_exceeded".into()
        )
    );
    assert_eq!(app.offset(&t, &url).await, 0);
    // A later chunk that runs past the end.
    app.upload_all(&t, &url, &bytes[..1_000], 1_000).await;
    assert_eq!(
        error_code(app.patch(&t, &url, 1_000, too_long[1_000..].to_vec()).await).await,
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_length_exceeded".into()
        )
    );
    assert_eq!(app.offset(&t, &url).await, 1_000);
    let asset = app.get_asset(&t, &id).await;
    assert_eq!(asset["state"], "pending_upload", "{asset}");
    // The exact rest finishes it, byte-identical.
    app.upload_from(&t, &url, &bytes, 1_000, bytes.len()).await;
    assert_eq!(download(&app, &t, &id).await, bytes);
}

#[tokio::test]
async fn first_chunk_under_64_bytes_is_400_first_chunk_too_small_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 1_000).await;
    for n in [1, 44, 63] {
        assert_eq!(
            error_code(app.patch(&t, &url, 0, bytes[..n].to_vec()).await).await,
            (StatusCode::BAD_REQUEST, "first_chunk_too_small".into()),
            "{n} bytes"
        );
        assert_eq!(app.offset(&t, &url).await, 0);
    }
    let asset = app.get_asset(&t, &id).await;
    assert_eq!(asset["state"], "pending_upload");
    assert!(asset["type"].is_null(), "{asset}");
    // The upload is still usable.
    app.upload_all(&t, &url, &bytes, 64).await;
}

#[tokio::test]
async fn first_chunk_that_is_not_media_is_409_unsupported_media_type_and_the_upload_is_gone() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let text = "This is a plain text file, not audio or video at all. "
        .repeat(2)
        .into_bytes()[..100]
        .to_vec();
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    png.resize(100, 0);
    for body in [text, png] {
        let size = 1_000;
        let (asset, url) = app.asset(&t, &project, size).await;
        let id = asset["id"].as_str().unwrap();
        let r = app.patch(&t, &url, 0, body).await;
        assert_eq!(header_str(&r, "tus-resumable"), "1.0.0");
        assert_eq!(
            error_code(r).await,
            (StatusCode::CONFLICT, "unsupported_media_type".into())
        );
        let head = app.head(&t, &url).await;
        assert_eq!(head.status(), StatusCode::GONE, "HEAD after rejection");
        let again = app
            .patch(&t, &url, 0, wav(1_000, 8_000)[..100].to_vec())
            .await;
        assert_eq!(
            error_code(again).await,
            (StatusCode::GONE, "upload_gone".into())
        );
        assert_eq!(
            error_code(app.get_asset_raw(&t, id).await).await,
            (StatusCode::NOT_FOUND, "not_found".into())
        );
        assert_eq!(stored(&app, id, &url), Vec::<PathBuf>::new());
    }
}

#[tokio::test]
async fn any_chunk_size_is_accepted_down_to_one_byte() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 100).await;
    app.upload_all(&t, &url, &bytes[..64], 64).await;
    // 200 one-byte chunks, then odd sizes, then the rest.
    for offset in 64..264 {
        let r = app
            .patch(&t, &url, offset as u64, bytes[offset..=offset].to_vec())
            .await;
        assert_eq!(
            r.status(),
            StatusCode::NO_CONTENT,
            "1-byte PATCH at {offset}"
        );
        assert_eq!(header_str(&r, "upload-offset"), (offset + 1).to_string());
    }
    let mut offset = 264;
    for size in [2, 3, 7, 100, 513] {
        let r = app
            .patch(
                &t,
                &url,
                offset as u64,
                bytes[offset..offset + size].to_vec(),
            )
            .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{size}-byte PATCH");
        offset += size;
    }
    app.upload_from(&t, &url, &bytes, offset, bytes.len()).await;
    assert_eq!(download(&app, &t, &id).await, bytes);
}

#[tokio::test]
async fn a_single_8_mib_chunk_is_accepted() {
    let app = TestApp::spawn().await;
    // 8 kHz mono 16-bit: 16 000 bytes a second; 524.288 s is 8 MiB of samples.
    let (t, id, url, bytes) = fresh_upload(&app, 524_288).await;
    assert!(bytes.len() > 8 << 20);
    let r = app.patch(&t, &url, 0, bytes.clone()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&r, "upload-offset"), bytes.len().to_string());
    assert_eq!(download(&app, &t, &id).await, bytes);
}

#[tokio::test]
async fn the_last_byte_finalises_the_asset_before_the_204() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 1_000).await;
    app.upload_all(&t, &url, &bytes[..bytes.len() - 1], bytes.len())
        .await;
    let before = app.get_asset(&t, &id).await;
    assert_eq!(before["state"], "pending_upload");
    let r = app
        .patch(
            &t,
            &url,
            (bytes.len() - 1) as u64,
            bytes[bytes.len() - 1..].to_vec(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&r, "upload-offset"), bytes.len().to_string());
    // Immediately: no longer pending, no upload_url, size known.
    let after = app.get_asset(&t, &id).await;
    assert!(
        ["processing", "ready", "pending_payment"].contains(&after["state"].as_str().unwrap()),
        "{after}"
    );
    assert!(after["upload_url"].is_null(), "{after}");
    assert_eq!(after["size_bytes"], serde_json::json!(bytes.len()));
}

#[tokio::test]
async fn delete_of_a_pending_upload_is_204_and_removes_the_asset_and_its_bytes() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 1_000).await;
    app.upload_all(&t, &url, &bytes[..5_000], 5_000).await;
    assert!(!stored(&app, &id, &url).is_empty(), "bytes are staged");
    let r = app.tus(Method::DELETE, &url, &t.key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&r, "tus-resumable"), "1.0.0");
    assert_eq!(
        error_code(app.get_asset_raw(&t, &id).await).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    assert_eq!(stored(&app, &id, &url), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn repeated_delete_of_an_upload_is_204_and_head_then_is_410() {
    let app = TestApp::spawn().await;
    let (t, _, url, bytes) = fresh_upload(&app, 1_000).await;
    app.upload_all(&t, &url, &bytes[..100], 100).await;
    for round in 0..3 {
        let r = app.tus(Method::DELETE, &url, &t.key).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "DELETE #{round}");
    }
    let head = app.head(&t, &url).await;
    assert_eq!(head.status(), StatusCode::GONE);
    assert_eq!(header_str(&head, "tus-resumable"), "1.0.0");
    assert_eq!(
        error_code(app.patch(&t, &url, 100, bytes[100..200].to_vec()).await).await,
        (StatusCode::GONE, "upload_gone".into())
    );
}

#[tokio::test]
async fn delete_of_a_finalised_upload_is_409_upload_complete_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 1_000).await;
    app.upload_all(&t, &url, &bytes, bytes.len()).await;
    let settled = app.settled(&t, &id).await;
    let r = app.tus(Method::DELETE, &url, &t.key).send().await.unwrap();
    assert_eq!(
        error_code(r).await,
        (StatusCode::CONFLICT, "upload_complete".into())
    );
    let mut after = app.get_asset(&t, &id).await;
    let mut before = settled.clone();
    // The signed link is minted per GET.
    for v in [&mut after, &mut before] {
        v.as_object_mut().unwrap().remove("download_url");
    }
    assert_eq!(after, before);
    assert_eq!(download(&app, &t, &id).await, bytes);
    assert_eq!(app.offset(&t, &url).await, bytes.len() as u64);
}

/// A well-formed upload URL, shaped like `issued`, that was never issued.
fn never_issued(app: &TestApp, issued: &str) -> String {
    let id = upload_id(issued);
    let (prefix, rest) = id.split_at(id.find('_').map_or(0, |i| i + 1));
    let flipped: String = rest
        .chars()
        .map(|c| if c == 'z' { 'y' } else { 'z' })
        .collect();
    app.url(&format!("/v1/uploads/{prefix}{flipped}"))
}

#[tokio::test]
async fn upload_ids_never_issued_are_404_not_found() {
    let app = TestApp::spawn().await;
    let (t, _, issued, _) = fresh_upload(&app, 100).await;
    for url in [
        never_issued(&app, &issued),
        app.url("/v1/uploads/upl_doesnotexist0000000000"),
        app.url("/v1/uploads/nonsense"),
    ] {
        let id = upload_id(&url);
        let r = app.tus(Method::DELETE, &url, &t.key).send().await.unwrap();
        assert_eq!(
            error_code(r).await,
            (StatusCode::NOT_FOUND, "not_found".into()),
            "DELETE {id}"
        );
        let r = app.head(&t, &url).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "HEAD {id}");
        assert_eq!(
            error_code(app.patch(&t, &url, 0, wav(100, 8_000)).await).await,
            (StatusCode::NOT_FOUND, "not_found".into()),
            "PATCH {id}"
        );
    }
}

#[tokio::test]
async fn another_accounts_upload_is_404_for_head_patch_and_delete() {
    let app = TestApp::spawn().await;
    let (owner, id, url, bytes) = fresh_upload(&app, 1_000).await;
    app.upload_all(&owner, &url, &bytes[..100], 100).await;
    let other = app.tenant(10).await;
    let head = app.head(&other, &url).await;
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    let patch = app.patch(&other, &url, 100, bytes[100..200].to_vec()).await;
    let patch_status = patch.status();
    let patch_body: Value = patch.json().await.unwrap();
    assert_eq!(patch_status, StatusCode::NOT_FOUND);
    assert_eq!(patch_body["error"]["code"], "not_found");
    let delete = app
        .tus(Method::DELETE, &url, &other.key)
        .send()
        .await
        .unwrap();
    let delete_status = delete.status();
    let delete_body: Value = delete.json().await.unwrap();
    assert_eq!(delete_status, StatusCode::NOT_FOUND);
    // Same body as for an id never issued: existence does not leak.
    let never = app
        .tus(Method::DELETE, &never_issued(&app, &url), &other.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        roughy_tests::without_request_id(never.json::<Value>().await.unwrap()),
        roughy_tests::without_request_id(delete_body)
    );
    // The owner's upload is untouched.
    assert_eq!(app.offset(&owner, &url).await, 100);
    assert_eq!(app.get_asset(&owner, &id).await["state"], "pending_upload");
}

#[tokio::test]
async fn an_upload_idle_past_its_expiry_is_reaped_with_its_asset_and_bytes() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 1_000).await;
    app.upload_all(&t, &url, &bytes[..5_000], 5_000).await;
    assert!(!stored(&app, &id, &url).is_empty());
    // Not yet: 47 h idle.
    app.clock.advance(time::Duration::hours(47));
    app.wait_reaper().await;
    assert_eq!(app.offset(&t, &url).await, 5_000);
    // 49 h idle: reaped.
    app.clock.advance(time::Duration::hours(2));
    app.wait_reaper().await;
    let head = app.head(&t, &url).await;
    assert_eq!(head.status(), StatusCode::GONE);
    assert_eq!(
        error_code(
            app.patch(&t, &url, 5_000, bytes[5_000..6_000].to_vec())
                .await
        )
        .await,
        (StatusCode::GONE, "upload_gone".into())
    );
    assert_eq!(
        error_code(app.get_asset_raw(&t, &id).await).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    assert_eq!(stored(&app, &id, &url), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn only_a_patch_refreshes_the_upload_expiry() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let bytes = wav(1_000, 8_000);
    let (looked_at, looked_url) = app.asset(&t, &project, bytes.len()).await;
    let (patched, patched_url) = app.asset(&t, &project, bytes.len()).await;
    app.upload_all(&t, &looked_url, &bytes[..100], 100).await;
    app.upload_all(&t, &patched_url, &bytes[..100], 100).await;
    let expiry = parse_imf_fixdate(&header_str(
        &app.head(&t, &looked_url).await,
        "upload-expires",
    ));

    app.clock.advance(time::Duration::hours(47));
    // HEAD, GET and list on one; a PATCH on the other.
    let head = app.head(&t, &looked_url).await;
    assert_eq!(
        parse_imf_fixdate(&header_str(&head, "upload-expires")),
        expiry,
        "HEAD does not refresh"
    );
    app.get_asset(&t, looked_at["id"].as_str().unwrap()).await;
    app.req(Method::GET, "/v1/assets?state=pending_upload", &t.key)
        .send()
        .await
        .unwrap();
    let head = app.head(&t, &looked_url).await;
    assert_eq!(
        parse_imf_fixdate(&header_str(&head, "upload-expires")),
        expiry
    );
    let r = app
        .patch(&t, &patched_url, 100, bytes[100..200].to_vec())
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    app.clock.advance(time::Duration::hours(2));
    app.wait_reaper().await;
    assert_eq!(app.head(&t, &looked_url).await.status(), StatusCode::GONE);
    assert_eq!(
        error_code(
            app.get_asset_raw(&t, looked_at["id"].as_str().unwrap())
                .await
        )
        .await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    assert_eq!(app.offset(&t, &patched_url).await, 200);
    assert_eq!(
        app.get_asset(&t, patched["id"].as_str().unwrap()).await["state"],
        "pending_upload"
    );
}

#[tokio::test]
async fn a_connection_dropped_mid_patch_keeps_the_received_bytes_and_resumes() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 20_000).await;
    const CHUNK: usize = 64 * 1024;
    let sent = 3 * CHUNK;
    assert!(bytes.len() > sent + CHUNK);
    let parts: Vec<Vec<u8>> = bytes[..sent].chunks(CHUNK).map(<[u8]>::to_vec).collect();
    let stream = futures::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>)).chain(
        futures::stream::once(async {
            // Let the bytes reach the server before the connection breaks.
            tokio::time::sleep(Duration::from_millis(300)).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "client gave up",
            ))
        }),
    );
    let result = app
        .tus(Method::PATCH, &url, &t.key)
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", "0")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    if let Ok(r) = &result {
        assert_ne!(
            r.status(),
            StatusCode::NO_CONTENT,
            "an aborted body is not a success"
        );
    }
    // The server notices the drop on its own schedule: give it a moment.
    let mut offset = 0;
    for _ in 0..50 {
        offset = app.offset(&t, &url).await;
        if offset > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        offset > 0 && offset <= sent as u64,
        "HEAD after a dropped PATCH reports {offset}, expected 1..={sent}"
    );
    let asset = app.get_asset(&t, &id).await;
    assert_eq!(asset["state"], "pending_upload");
    app.upload_from(&t, &url, &bytes, offset as usize, 100_000)
        .await;
    assert_eq!(download(&app, &t, &id).await, bytes);
}

#[tokio::test]
async fn a_second_patch_while_one_is_in_flight_is_not_stuck() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 20_000).await;
    const CHUNK: usize = 64 * 1024;
    // The first PATCH sends 64 KiB and then stalls without ending its body.
    let first_part = bytes[..CHUNK].to_vec();
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first_part) })
        .chain(futures::stream::pending());
    let stalled = {
        let req = app
            .tus(Method::PATCH, &url, &t.key)
            .header("Content-Type", OCTETS)
            .header("Upload-Offset", "0")
            .body(reqwest::Body::wrap_stream(stream));
        tokio::spawn(async move { req.send().await.map(|r| r.status()) })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The client resumes: HEAD, then PATCH from there, with a definite answer quickly.
    let second = tokio::time::timeout(Duration::from_secs(8), async {
        let offset = app.offset(&t, &url).await;
        let r = app
            .patch(&t, &url, offset, bytes[offset as usize..].to_vec())
            .await;
        let status = r.status();
        let code = if status == StatusCode::NO_CONTENT {
            None
        } else {
            Some(error_code(r).await)
        };
        (offset, status, code)
    })
    .await
    .expect("the second PATCH got no answer within 8 s: stuck behind the stalled one");
    match second {
        (_, StatusCode::NO_CONTENT, _) => {}
        (_, _, Some((StatusCode::CONFLICT, code))) if code == "offset_mismatch" => {
            // The holder stored its bytes meanwhile: HEAD and resume, promptly.
            let finished = tokio::time::timeout(Duration::from_secs(8), async {
                let offset = app.offset(&t, &url).await;
                assert!(offset > 0 && offset <= CHUNK as u64, "offset {offset}");
                app.patch(&t, &url, offset, bytes[offset as usize..].to_vec())
                    .await
                    .status()
            })
            .await
            .expect("the resumed PATCH got no answer within 8 s");
            assert_eq!(finished, StatusCode::NO_CONTENT);
        }
        other => panic!("second PATCH: expected 204 or 409 offset_mismatch, got {other:?}"),
    }
    stalled.abort();
    assert_eq!(download(&app, &t, &id).await, bytes);
}

#[tokio::test]
async fn an_idle_patch_body_is_cut_after_the_idle_timeout_and_keeps_what_arrived() {
    let app =
        TestApp::spawn_with(|c| c.http.settings.body_idle_timeout = Duration::from_secs(1)).await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let bytes = wav(2_000, 8_000);
    let (asset, url) = app.asset(&t, &project, bytes.len()).await;
    let head = bytes[..4096].to_vec();
    // 4 KiB arrive, then the body stalls without ending, as a stuck client would.
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(head) })
        .chain(futures::stream::pending());
    let started = std::time::Instant::now();
    let response = app
        .tus(Method::PATCH, &url, &t.key)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "0")
        .header("Content-Length", bytes.len().to_string())
        .body(reqwest::Body::wrap_stream(body))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    // The server cut the body well before the client's own 10 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "cut after {:?}",
        started.elapsed()
    );
    if let Ok(r) = response {
        assert_eq!(
            error_code(r).await,
            (StatusCode::REQUEST_TIMEOUT, "body_timeout".to_owned())
        );
    }
    assert_eq!(app.offset(&t, &url).await, 4096);
    app.upload_from(&t, &url, &bytes, 4096, 1 << 20).await;
    let settled = app.settled(&t, asset["id"].as_str().unwrap()).await;
    assert_eq!(settled["state"], "ready", "{settled}");
}

/// The wedge of issue #8: all bytes stored, the finalising commit fails (here: a trigger
/// makes the job insert fail, as a pool timeout or lost connection would). The upload keeps
/// its previous offset, and once the database is healthy the client's resend at HEAD's offset
/// completes it, byte-identical. Needs a database that can fail: on the memory wiring it
/// runs on PostgreSQL with local blobs; on the others, on their own blobs (disk or S3).
#[tokio::test]
async fn a_failed_finalising_commit_is_completed_by_the_clients_resend() {
    let wiring = match roughy_tests::Wiring::from_env() {
        roughy_tests::Wiring::Memory => roughy_tests::Wiring::Postgres,
        other => other,
    };
    let app = TestApp::spawn_wired(wiring, |_| {}).await;
    let db = app.database_url.clone().expect("a PostgreSQL wiring");
    let (t, asset_id, url, bytes) = fresh_upload(&app, 2_000).await;
    let half = bytes.len() / 2;
    app.upload_all(&t, &url, &bytes[..half], half).await;

    roughy_postgres::testing::execute_sql(
        &db,
        "CREATE FUNCTION refuse_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'injected fault: the job insert fails'; END $$;
         CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs
         FOR EACH ROW EXECUTE FUNCTION refuse_jobs();",
    )
    .await;
    for _ in 0..2 {
        let r = app
            .patch(&t, &url, half as u64, bytes[half..].to_vec())
            .await;
        assert!(r.status().is_server_error(), "{}", r.status());
        let r = app.head(&t, &url).await;
        assert_eq!(header_str(&r, "upload-offset"), half.to_string());
    }
    let pending = app.get_asset(&t, &asset_id).await;
    assert_eq!(pending["state"], "pending_upload", "{pending}");

    roughy_postgres::testing::execute_sql(&db, "DROP TRIGGER refuse_jobs ON jobs;").await;
    let r = app
        .patch(&t, &url, half as u64, bytes[half..].to_vec())
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&r, "upload-offset"), bytes.len().to_string());
    assert!(download(&app, &t, &asset_id).await == bytes);
    let charges = app
        .ledger(&t)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "asset_charge" && e["asset_id"] == asset_id.as_str())
        .count();
    assert_eq!(charges, 1, "charged once");
}

/// A PATCH body the test feeds chunk by chunk: the sender, and the body to send.
fn fed_body() -> (
    futures::channel::mpsc::UnboundedSender<Result<Vec<u8>, std::io::Error>>,
    reqwest::Body,
) {
    let (tx, rx) = futures::channel::mpsc::unbounded();
    (tx, reqwest::Body::wrap_stream(rx))
}

#[tokio::test]
async fn a_patch_still_streaming_when_its_expiry_passes_is_not_reaped() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app, 2_000).await;
    let (tx, body) = fed_body();
    let patch = app
        .tus(Method::PATCH, &url, &t.key)
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", "0")
        .body(body)
        .send();
    let patch = tokio::spawn(patch);
    let half = bytes.len() / 2;
    tx.unbounded_send(Ok(bytes[..half / 2].to_vec())).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The upload's expiry passes while its PATCH is still sending: it is not idle.
    app.clock.advance(time::Duration::hours(49));
    app.wait_reaper().await;
    tx.unbounded_send(Ok(bytes[half / 2..half].to_vec()))
        .unwrap();
    app.wait_reaper().await;
    drop(tx);
    let r = patch.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&r, "upload-offset"), half.to_string());
    // The expiry moved on when the PATCH ended: the reaper leaves it alone from now on.
    app.wait_reaper().await;
    assert_eq!(app.offset(&t, &url).await, half as u64);
    app.upload_from(&t, &url, &bytes, half, 100_000).await;
    assert_eq!(download(&app, &t, &id).await, bytes);
}

#[tokio::test]
async fn deleting_an_asset_stops_its_running_patch_and_purges_every_byte() {
    deleting_stops_the_running_patch(|asset, _| format!("/v1/assets/{asset}")).await;
}

#[tokio::test]
async fn deleting_a_project_stops_its_assets_running_patch_and_purges_every_byte() {
    deleting_stops_the_running_patch(|_, project| format!("/v1/projects/{project}")).await;
}

/// DELETE of `path(asset id, project id)` while a PATCH of the asset's upload streams: the
/// PATCH is stopped, and no byte of it is left, also none it receives after the delete.
async fn deleting_stops_the_running_patch(path: impl Fn(&str, &str) -> String) {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let bytes = wav(2_000, 8_000);
    let (asset, url) = app.asset(&t, &project, bytes.len()).await;
    let id = asset["id"].as_str().unwrap().to_owned();
    let (tx, body) = fed_body();
    let patch = tokio::spawn(
        app.tus(Method::PATCH, &url, &t.key)
            .header("Content-Type", OCTETS)
            .header("Upload-Offset", "0")
            .body(body)
            .send(),
    );
    tx.unbounded_send(Ok(bytes[..bytes.len() / 2].to_vec()))
        .unwrap();
    // Until the first chunk's bytes are staged.
    for _ in 0..50 {
        if !stored(&app, &id, &url).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !stored(&app, &id, &url).is_empty(),
        "the PATCH is staging bytes"
    );

    let deleted = app
        .req(Method::DELETE, &path(&id, &project), &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    // The PATCH was asked to stop: it ends without the client ending its body, and not as a
    // success.
    let r = tokio::time::timeout(Duration::from_secs(10), patch)
        .await
        .expect("the PATCH stops")
        .unwrap();
    if let Ok(r) = r {
        assert_ne!(r.status(), StatusCode::NO_CONTENT);
    }
    // Bytes sent after the delete are not staged again.
    let _ = tx.unbounded_send(Ok(bytes[bytes.len() / 2..].to_vec()));
    drop(tx);
    app.wait_reaper().await;
    assert_eq!(stored(&app, &id, &url), Vec::<PathBuf>::new());
    assert_eq!(
        error_code(app.get_asset_raw(&t, &id).await).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    assert_eq!(app.head(&t, &url).await.status(), StatusCode::GONE);
}

/// A size-limited tmpfs mounted for one test, unmounted when dropped. Needs root (as CI runs).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a {bytes}-byte tmpfs failed ({status}): this test needs root"
        );
        Self { dir }
    }

    fn resize(&self, bytes: u64) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(self.dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "remounting failed ({status})");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_answers_507_keeps_the_offset_at_the_bytes_stored_and_resumes_once_space_is_back(
) {
    const MIB: u64 = 1024 * 1024;
    let disk = SmallDisk::mount(3 * MIB);
    // Local blobs on the small disk whatever the run's wiring (S3 does not fill up).
    let wiring = match roughy_tests::Wiring::from_env() {
        roughy_tests::Wiring::PostgresS3 => roughy_tests::Wiring::Postgres,
        other => other,
    };
    let blobs = disk.dir.path().to_owned();
    let app = TestApp::spawn_wired(wiring, |c| {
        c.storage.blobs = roughy_server::BlobLocation::Local(blobs);
    })
    .await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    // About 6 MiB of WAV (16,000 bytes a second): twice what the disk holds.
    let bytes = wav(393_000, 8_000);
    let (asset, url) = app.asset(&t, &project, bytes.len()).await;
    let id = asset["id"].as_str().unwrap().to_owned();

    let chunk = MIB as usize;
    let mut offset = 0;
    let mut refused = None;
    while offset < bytes.len() {
        let end = (offset + chunk).min(bytes.len());
        let r = app
            .patch(&t, &url, offset as u64, bytes[offset..end].to_vec())
            .await;
        if r.status() != StatusCode::NO_CONTENT {
            refused = Some(error_code(r).await);
            break;
        }
        offset = end;
    }
    assert_eq!(
        refused,
        Some((
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage".into()
        )),
        "a PATCH past the disk's size is refused"
    );
    let stored_offset = app.offset(&t, &url).await;
    assert!(
        stored_offset >= offset as u64 && stored_offset < bytes.len() as u64,
        "HEAD {stored_offset}: at least the acknowledged {offset}, less than all"
    );
    let staged: u64 = roughy_tests::files_under(disk.dir.path())
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(
        staged >= stored_offset,
        "the offset counts only stored bytes: {stored_offset} > {staged} on disk"
    );
    assert_eq!(app.get_asset(&t, &id).await["state"], "pending_upload");

    // Space is back: the client resumes from HEAD's offset and completes.
    disk.resize(32 * MIB);
    app.upload_from(&t, &url, &bytes, stored_offset as usize, chunk)
        .await;
    assert_eq!(download(&app, &t, &id).await, bytes);
}

/// A 410 says why the upload is gone in `Upload-Gone-Reason` (a HEAD has no body), so a TUS
/// client that retried a refused PATCH can still tell its user why.
#[tokio::test]
async fn a_gone_upload_says_why_in_upload_gone_reason() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;

    let (_, rejected) = app.asset(&t, &project, 1_000).await;
    let r = app.patch(&t, &rejected, 0, vec![b'x'; 100]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let (_, terminated) = app.asset(&t, &project, 1_000).await;
    let r = app
        .tus(Method::DELETE, &terminated, &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (deleted_asset, deleted) = app.asset(&t, &project, 1_000).await;
    let r = app
        .req(
            Method::DELETE,
            &format!("/v1/assets/{}", deleted_asset["id"].as_str().unwrap()),
            &t.key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, expired) = app.asset(&t, &project, 1_000).await;
    app.clock.advance(time::Duration::days(3));
    app.wait_reaper().await;

    for (url, reason) in [
        (&rejected, "unsupported_media_type"),
        (&terminated, "upload_terminated"),
        (&deleted, "asset_deleted"),
        (&expired, "upload_expired"),
    ] {
        let head = app.head(&t, url).await;
        assert_eq!(head.status(), StatusCode::GONE, "{reason}");
        assert_eq!(header_str(&head, "upload-gone-reason"), reason);
        let patch = app
            .patch(&t, url, 0, wav(1_000, 8_000)[..100].to_vec())
            .await;
        assert_eq!(header_str(&patch, "upload-gone-reason"), reason);
        let body: Value = patch.json().await.unwrap();
        assert_eq!(body["error"]["code"], "upload_gone");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(reason),
            "{body}"
        );
    }
    // Browsers may read it.
    let preflight = app
        .client
        .request(Method::OPTIONS, &rejected)
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "HEAD")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let head = app
        .tus(Method::HEAD, &rejected, &t.key)
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(header_str(&head, "access-control-expose-headers")
        .to_ascii_lowercase()
        .contains("upload-gone-reason"));
}
