//! Contract rules: direct uploads (issue #10). An asset created with `"direct_upload": true`
//! has an upload URL with a signed token (`?token=…`) that HEAD, PATCH, DELETE and OPTIONS
//! accept without `Authorization`; a missing, tampered or other upload's token is 401; with
//! `cors_origin`, only that origin gets CORS answers for the URL.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use roughy_tests::media::wav;
use roughy_tests::{error_code, header_str, Tenant, TestApp};

/// Creates a direct asset of `bytes.len()` bytes: `(asset, Location)`.
async fn direct_asset(app: &TestApp, t: &Tenant, size: usize, extra: Value) -> (Value, String) {
    let project = app.project(t).await;
    let mut body = json!({"project_id": project, "size_bytes": size, "direct_upload": true});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let r = app.create_asset_raw(t, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = header_str(&r, "location");
    (r.json().await.unwrap(), location)
}

/// A TUS request with no `Authorization`.
fn keyless(app: &TestApp, method: Method, url: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, url)
        .header("Tus-Resumable", "1.0.0")
}

async fn keyless_patch(app: &TestApp, url: &str, offset: u64, bytes: Vec<u8>) -> Response {
    keyless(app, Method::PATCH, url)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_direct_upload_url_uploads_without_the_api_key_and_stays_readable_after_completion() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let media = wav(2_000, 8_000);
    let (asset, location) = direct_asset(&app, &t, media.len(), json!({})).await;
    assert!(location.contains("/v1/uploads/upl_"), "{location}");
    assert!(location.contains("?token="), "{location}");
    assert_eq!(asset["upload_url"], location.as_str());
    // GET shows the same URL, token included.
    let id = asset["id"].as_str().unwrap();
    assert_eq!(app.get_asset(&t, id).await["upload_url"], location.as_str());

    let head = keyless(&app, Method::HEAD, &location).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header_str(&head, "upload-offset"), "0");
    let half = media.len() / 2;
    let r = keyless_patch(&app, &location, 0, media[..half].to_vec()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = keyless_patch(&app, &location, half as u64, media[half..].to_vec()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let ready = app.settled(&t, id).await;
    assert_eq!(ready["state"], "ready");
    // The token lives as long as the upload: HEAD still reports offset = length.
    let head = keyless(&app, Method::HEAD, &location).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header_str(&head, "upload-offset"), media.len().to_string());
    // The bytes are the file's.
    let got = app
        .client
        .get(ready["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), media.as_slice());
}

#[tokio::test]
async fn a_missing_tampered_or_other_uploads_token_is_401_and_the_key_still_works() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let other = app.tenant(100).await;
    let (_, location) = direct_asset(&app, &t, 1_000, json!({})).await;
    let (_, elsewhere) = direct_asset(&app, &t, 1_000, json!({})).await;
    let (bare, token) = location.split_once("?token=").unwrap();
    let (_, other_token) = elsewhere.split_once("?token=").unwrap();
    let mut flipped = token.to_owned().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();

    for url in [
        bare.to_owned(),
        format!("{bare}?token={flipped}"),
        format!("{bare}?token={other_token}"),
        format!("{bare}?token="),
    ] {
        for method in [Method::HEAD, Method::DELETE] {
            let r = keyless(&app, method.clone(), &url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {url}");
        }
        let r = keyless_patch(&app, &url, 0, wav(1_000, 8_000)[..100].to_vec()).await;
        assert_eq!(
            error_code(r).await,
            (StatusCode::UNAUTHORIZED, "unauthorized".into()),
            "{url}"
        );
    }
    // A bad token is refused even alongside the owner's key: the token alone decides.
    let r = app
        .tus(Method::HEAD, &format!("{bare}?token={flipped}"), &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Without a token, the usual rule: the owner's key works, another account's does not.
    assert_eq!(app.head(&t, bare).await.status(), StatusCode::OK);
    assert_eq!(app.head(&other, bare).await.status(), StatusCode::NOT_FOUND);
    // An asset created without direct_upload has a plain URL that needs the key.
    let project = app.project(&t).await;
    let (plain, plain_url) = app.asset(&t, &project, 1_000).await;
    assert!(!plain_url.contains("token="), "{plain}");
    let r = keyless(&app, Method::HEAD, &plain_url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Its upload id under another upload's token is refused too.
    let r = keyless(&app, Method::HEAD, &format!("{plain_url}?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_direct_upload_is_terminated_and_refused_through_its_token_url() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let (asset, location) = direct_asset(&app, &t, 1_000, json!({})).await;
    let r = keyless(&app, Method::DELETE, &location)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let head = keyless(&app, Method::HEAD, &location).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::GONE);
    assert_eq!(header_str(&head, "upload-gone-reason"), "upload_terminated");
    let r = app.get_asset_raw(&t, asset["id"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A rejected first chunk tells the page why.
    let (_, location) = direct_asset(&app, &t, 1_000, json!({})).await;
    let r = keyless_patch(&app, &location, 0, vec![b'x'; 100]).await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::CONFLICT, "unsupported_media_type".into())
    );
    let head = keyless(&app, Method::HEAD, &location).send().await.unwrap();
    assert_eq!(
        header_str(&head, "upload-gone-reason"),
        "unsupported_media_type"
    );
}

#[tokio::test]
async fn with_cors_origin_only_that_origin_gets_cors_answers() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let (_, location) = direct_asset(
        &app,
        &t,
        1_000,
        json!({"cors_origin": "https://app.example.com"}),
    )
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, &location)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "PATCH")
            .header(
                "Access-Control-Request-Headers",
                "tus-resumable, upload-offset, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        header_str(&allowed, "access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(header_str(&allowed, "access-control-allow-methods").contains("PATCH"));
    assert!(header_str(&allowed, "access-control-allow-headers").contains("upload-offset"));
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let head = |origin: &'static str| {
        keyless(&app, Method::HEAD, &location)
            .header("Origin", origin)
            .send()
    };
    let r = head("https://app.example.com").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header_str(&r, "access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(header_str(&r, "access-control-expose-headers").contains("upload-offset"));
    let r = head("https://evil.example.com").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // A direct upload without cors_origin follows the service's CORS settings (here `*`).
    let (_, open) = direct_asset(&app, &t, 1_000, json!({})).await;
    let r = keyless(&app, Method::HEAD, &open)
        .header("Origin", "https://anywhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header_str(&r, "access-control-allow-origin"), "*");
}

#[tokio::test]
async fn a_bad_cors_origin_or_one_without_direct_upload_is_422_validation_error() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    for body in [
        json!({"project_id": project, "size_bytes": 1000, "cors_origin": "https://app.example.com"}),
        json!({"project_id": project, "size_bytes": 1000, "direct_upload": true, "cors_origin": "app.example.com"}),
        json!({"project_id": project, "size_bytes": 1000, "direct_upload": true, "cors_origin": "https://app.example.com/path"}),
        json!({"project_id": project, "size_bytes": 1000, "direct_upload": "yes"}),
    ] {
        let r = app.create_asset_raw(&t, body.clone()).await;
        assert_eq!(
            error_code(r).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error".into()),
            "{body}"
        );
    }
}
