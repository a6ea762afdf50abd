//! Contract rules: signed downloads (§8).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use roughy_tests::media::wav;
use roughy_tests::{download_refusal, header_str, Tenant, TestApp, Wiring};

/// Asserts that a download link was refused for its signature or its expiry: `403
/// invalid_signature` from our route. A presigned S3 URL is the object store's to judge: 403
/// with the S3 code for a signature that does not match or an expired request, or 400 for
/// query authentication too malformed to check (an empty signature), as S3 answers.
async fn assert_bad_signature(app: &TestApp, r: reqwest::Response, link: &str) {
    let refusal = download_refusal(r).await;
    if app.is_s3() {
        let (status, code) = (refusal.0, refusal.1.as_str());
        let refused = match status {
            StatusCode::FORBIDDEN => ["SignatureDoesNotMatch", "AccessDenied"].contains(&code),
            StatusCode::BAD_REQUEST => {
                ["InvalidRequest", "AuthorizationQueryParametersError"].contains(&code)
            }
            _ => false,
        };
        assert!(refused, "{link}: {status} {code}");
    } else {
        assert_eq!(
            refusal,
            (StatusCode::FORBIDDEN, "invalid_signature".into()),
            "{link}"
        );
    }
}

/// The query parameter holding a link's signature.
fn signature_param(app: &TestApp) -> &'static str {
    if app.is_s3() {
        "X-Amz-Signature"
    } else {
        "sig"
    }
}

/// A ready asset: `(tenant, asset, bytes)`.
async fn ready_asset(app: &TestApp) -> (Tenant, Value, Vec<u8>) {
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let bytes = wav(1_000, 8_000);
    let asset = app.ingest(&t, &project, &bytes).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    (t, asset, bytes)
}

/// Replaces the value of query parameter `key` in `url`.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').expect("a query");
    let params: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == key => format!("{k}={value}"),
            _ => kv.to_owned(),
        })
        .collect();
    assert!(
        params.iter().any(|p| p.starts_with(&format!("{key}="))),
        "{url} has no {key}"
    );
    format!("{base}?{}", params.join("&"))
}

fn param(url: &str, key: &str) -> String {
    url.split_once('?')
        .expect("a query")
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{url} has no {key}"))
        .to_owned()
}

#[tokio::test]
async fn download_url_is_present_only_when_ready() {
    let app = TestApp::spawn().await;
    let t = app.tenant(1).await;
    let project = app.project(&t).await;
    // pending_upload
    let (pending, _) = app.asset(&t, &project, 1_000).await;
    let got = app.get_asset(&t, pending["id"].as_str().unwrap()).await;
    assert!(got.get("download_url").is_some_and(Value::is_null), "{got}");
    // failed
    let failed = app.ingest(&t, &project, &wav(10_000, 8_000)[..64]).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["download_url"].is_null(), "{failed}");
    // pending_payment: 2 minutes cost 2 credits, the balance is 1.
    let unpaid = app.ingest(&t, &project, &wav(90_000, 4_000)).await;
    assert_eq!(unpaid["state"], "pending_payment", "{unpaid}");
    assert!(unpaid["download_url"].is_null(), "{unpaid}");
    // ready
    let ready = app.ingest(&t, &project, &wav(1_000, 8_000)).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    assert!(ready["download_url"].is_string(), "{ready}");
    // List items carry no download link.
    let list: Value = app
        .req(Method::GET, "/v1/assets?state=ready", &t.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = &list["data"][0];
    assert_eq!(item["id"], ready["id"]);
    assert!(
        item.get("download_url").is_none_or(Value::is_null),
        "{item}"
    );
}

#[tokio::test]
async fn download_url_serves_the_exact_bytes_without_a_bearer_key() {
    let app = TestApp::spawn().await;
    let (_, asset, bytes) = ready_asset(&app).await;
    let link = asset["download_url"].as_str().unwrap();
    let r = app.client.get(link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_str(&r, "content-type"), "audio/wav");
    assert_eq!(header_str(&r, "content-length"), bytes.len().to_string());
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
}

#[tokio::test]
async fn download_range_is_206_with_content_range_and_those_bytes() {
    let app = TestApp::spawn().await;
    let (_, asset, bytes) = ready_asset(&app).await;
    let link = asset["download_url"].as_str().unwrap();
    let r = app
        .client
        .get(link)
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header_str(&r, "content-range"),
        format!("bytes 10-19/{}", bytes.len())
    );
    assert_eq!(header_str(&r, "content-type"), "audio/wav");
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes[10..20].to_vec());
    // An open-ended range.
    let tail_from = bytes.len() - 5;
    let r = app
        .client
        .get(link)
        .header("Range", format!("bytes={tail_from}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        bytes[tail_from..].to_vec()
    );
}

#[tokio::test]
async fn tampered_download_signature_is_403_invalid_signature() {
    let app = TestApp::spawn().await;
    let (_, asset, _) = ready_asset(&app).await;
    let link = asset["download_url"].as_str().unwrap();
    let name = signature_param(&app);
    let sig = param(link, name);
    let mut flipped: Vec<char> = sig.chars().collect();
    flipped[0] = if flipped[0] == '0' { '1' } else { '0' };
    let flipped: String = flipped.into_iter().collect();
    for bad in [
        with_param(link, name, &flipped),
        with_param(link, name, ""),
        with_param(link, name, "deadbeef"),
    ] {
        let r = app.client.get(&bad).send().await.unwrap();
        assert_bad_signature(&app, r, &bad).await;
    }
}

#[tokio::test]
async fn tampered_download_ext_or_expires_is_403_invalid_signature() {
    let app = TestApp::spawn().await;
    let (t, asset, _) = ready_asset(&app).await;
    let link = asset["download_url"].as_str().unwrap();
    let tampered = if app.is_s3() {
        // A presigned GET signs its lifetime and its date.
        let lifetime: i64 = param(link, "X-Amz-Expires").parse().unwrap();
        let date = param(link, "X-Amz-Date");
        let earlier = format!(
            "{}{}",
            &date[..date.len() - 2],
            if date.ends_with("0Z") { "1Z" } else { "0Z" }
        );
        vec![
            with_param(link, "X-Amz-Expires", &(lifetime + 3_600).to_string()),
            with_param(link, "X-Amz-Expires", &(lifetime - 1).to_string()),
            with_param(link, "X-Amz-Date", &earlier),
        ]
    } else {
        let expires: i64 = param(link, "expires").parse().unwrap();
        vec![
            with_param(link, "ext", "mp3"),
            with_param(link, "ext", "exe"),
            with_param(link, "expires", &(expires + 3_600).to_string()),
            with_param(link, "expires", &(expires - 1).to_string()),
            // Found by the parser fuzz: a query that does not parse answered 422.
            with_param(link, "expires", "abc"),
            with_param(link, "expires", "99999999999999999999"),
            format!("{link}&ext=wav"),
        ]
    };
    for bad in tampered {
        let r = app.client.get(&bad).send().await.unwrap();
        assert_bad_signature(&app, r, &bad).await;
    }
    // A link's signature does not open another asset.
    let project = app.project(&t).await;
    let other = app.ingest(&t, &project, &wav(500, 8_000)).await;
    let other_id = other["id"].as_str().unwrap();
    let swapped = link.replace(asset["id"].as_str().unwrap(), other_id);
    assert_ne!(swapped, link);
    let r = app.client.get(&swapped).send().await.unwrap();
    assert_bad_signature(&app, r, &swapped).await;
}

#[tokio::test]
async fn expired_download_url_is_403_invalid_signature() {
    // A presigned S3 URL expires by the S3 server's clock, not the service's: give it a short
    // lifetime and wait it out.
    let s3 = Wiring::from_env().is_s3();
    let app = TestApp::spawn_with(|c| {
        if s3 {
            c.uploads.rules.download_ttl = time::Duration::seconds(2);
        }
    })
    .await;
    let (_, asset, bytes) = ready_asset(&app).await;
    let link = asset["download_url"].as_str().unwrap();
    // Still valid just before its lifetime ends.
    if !s3 {
        app.clock.advance(time::Duration::seconds(290));
    }
    let r = app.client.get(link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    if s3 {
        tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    } else {
        app.clock.advance(time::Duration::seconds(20));
    }
    let r = app.client.get(link).send().await.unwrap();
    assert_bad_signature(&app, r, link).await;
}

#[tokio::test]
async fn download_url_of_a_deleted_asset_is_404() {
    let app = TestApp::spawn().await;
    let (t, asset, _) = ready_asset(&app).await;
    let id = asset["id"].as_str().unwrap();
    let link = asset["download_url"].as_str().unwrap();
    let r = app
        .req(Method::DELETE, &format!("/v1/assets/{id}"), &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.client.get(link).send().await.unwrap();
    let expected = if app.is_s3() {
        "NoSuchKey"
    } else {
        "not_found"
    };
    assert_eq!(
        download_refusal(r).await,
        (StatusCode::NOT_FOUND, expected.into())
    );
    assert_eq!(app.blob_files_named(id), Vec::<std::path::PathBuf>::new());
}
