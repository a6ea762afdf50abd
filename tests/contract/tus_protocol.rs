//! Contract rules: the TUS 1.0.0 protocol surface of `/v1/uploads` (§5).

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use roughy_tests::media::wav;
use roughy_tests::{error_code, header_str, upload_id, Tenant, TestApp};

const OCTETS: &str = "application/offset+octet-stream";

/// A tenant and a fresh upload of a 1 s WAV: `(tenant, asset id, url, bytes)`.
async fn fresh_upload(app: &TestApp) -> (Tenant, String, String, Vec<u8>) {
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let bytes = wav(1_000, 8_000);
    let (asset, url) = app.asset(&t, &project, bytes.len()).await;
    (t, asset["id"].as_str().unwrap().to_owned(), url, bytes)
}

fn assert_tus_resumable(r: &Response, what: &str) {
    assert_eq!(
        r.headers()
            .get("tus-resumable")
            .and_then(|v| v.to_str().ok()),
        Some("1.0.0"),
        "{what}: Tus-Resumable missing: {:?}",
        r.headers()
    );
}

/// The comma-separated tokens of a header, lowercased.
fn tokens(r: &Response, name: &str) -> Vec<String> {
    r.headers()
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::test]
async fn options_on_uploads_advertises_tus_capabilities_without_auth() {
    let app = TestApp::spawn().await;
    let (_, _, url, _) = fresh_upload(&app).await;
    for target in [
        app.url("/v1/uploads"),
        url.clone(),
        app.url("/v1/uploads/upl_neverissued0000000000"),
    ] {
        // No Authorization, no Tus-Resumable.
        let r = app
            .client
            .request(Method::OPTIONS, &target)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "OPTIONS {target}");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("tus-resumable").as_deref(),
            Some("1.0.0"),
            "{target}"
        );
        assert_eq!(header("tus-version").as_deref(), Some("1.0.0"), "{target}");
        let mut ext = tokens(&r, "tus-extension");
        ext.sort();
        assert_eq!(ext, vec!["expiration", "termination"], "{target}");
        assert_eq!(
            header("tus-max-size").as_deref(),
            Some("53687091200"),
            "{target}"
        );
        assert!(r.bytes().await.unwrap().is_empty(), "no body");
    }
}

#[tokio::test]
async fn missing_or_wrong_tus_resumable_is_412_unsupported_tus_version() {
    let app = TestApp::spawn().await;
    let (t, _, url, bytes) = fresh_upload(&app).await;
    for version in [None, Some("0.2.2"), Some("1.0"), Some("2.0.0"), Some("")] {
        let with = |method: Method| {
            let req = app.req(method, &url, &t.key);
            match version {
                Some(v) => req.header("Tus-Resumable", v),
                None => req,
            }
        };
        let head = with(Method::HEAD).send().await.unwrap();
        assert_eq!(
            head.status(),
            StatusCode::PRECONDITION_FAILED,
            "HEAD {version:?}"
        );
        assert_eq!(header_str(&head, "tus-version"), "1.0.0");

        let patch = with(Method::PATCH)
            .header("Content-Type", OCTETS)
            .header("Upload-Offset", "0")
            .body(bytes[..200].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(header_str(&patch, "tus-version"), "1.0.0");
        assert_eq!(
            error_code(patch).await,
            (
                StatusCode::PRECONDITION_FAILED,
                "unsupported_tus_version".into()
            ),
            "PATCH {version:?}"
        );

        let delete = with(Method::DELETE).send().await.unwrap();
        assert_eq!(header_str(&delete, "tus-version"), "1.0.0");
        assert_eq!(
            error_code(delete).await,
            (
                StatusCode::PRECONDITION_FAILED,
                "unsupported_tus_version".into()
            ),
            "DELETE {version:?}"
        );
    }
    // None of them did anything.
    assert_eq!(app.offset(&t, &url).await, 0);
}

#[tokio::test]
async fn every_upload_response_carries_tus_resumable() {
    let app = TestApp::spawn().await;
    let (t, _, url, bytes) = fresh_upload(&app).await;
    let never = app.url("/v1/uploads/upl_neverissued0000000000");
    let mut seen = Vec::new();

    let r = app.head(&t, &url).await;
    assert_tus_resumable(&r, "HEAD 200");
    seen.push(r.status());
    let r = app.patch(&t, &url, 0, bytes[..100].to_vec()).await;
    assert_tus_resumable(&r, "PATCH 204");
    seen.push(r.status());
    let r = app.patch(&t, &url, 0, bytes[..100].to_vec()).await;
    assert_tus_resumable(&r, "PATCH 409");
    seen.push(r.status());
    let r = app
        .tus(Method::PATCH, &url, &t.key)
        .header("Content-Type", "text/plain")
        .header("Upload-Offset", "100")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_tus_resumable(&r, "PATCH 415");
    seen.push(r.status());
    let r = app
        .tus(Method::PATCH, &url, &t.key)
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", "x")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_tus_resumable(&r, "PATCH 400");
    seen.push(r.status());
    let r = app.req(Method::HEAD, &url, &t.key).send().await.unwrap();
    assert_tus_resumable(&r, "HEAD 412");
    seen.push(r.status());
    let r = app.head(&t, &never).await;
    assert_tus_resumable(&r, "HEAD 404");
    seen.push(r.status());
    let r = app
        .tus(Method::HEAD, &url, "sk_not_a_real_key")
        .send()
        .await
        .unwrap();
    assert_tus_resumable(&r, "HEAD 401");
    seen.push(r.status());
    let r = app
        .client
        .post(app.url("/v1/uploads"))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_tus_resumable(&r, "POST 405");
    seen.push(r.status());
    let r = app.tus(Method::DELETE, &url, &t.key).send().await.unwrap();
    assert_tus_resumable(&r, "DELETE 204");
    seen.push(r.status());
    let r = app.head(&t, &url).await;
    assert_tus_resumable(&r, "HEAD 410");
    seen.push(r.status());
    assert_eq!(
        seen.iter().map(StatusCode::as_u16).collect::<Vec<_>>(),
        vec![200, 204, 409, 415, 400, 412, 404, 401, 405, 204, 410],
        "the statuses this test meant to cover"
    );
}

#[tokio::test]
async fn post_to_uploads_is_405_method_not_allowed() {
    let app = TestApp::spawn().await;
    let (t, _, url, _) = fresh_upload(&app).await;
    let r = app
        .tus(Method::POST, &app.url("/v1/uploads"), &t.key)
        .header("Upload-Length", "1000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r).await,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
    );
    // A POST on an upload without an override is no TUS request either.
    let r = app.tus(Method::POST, &url, &t.key).send().await.unwrap();
    assert_eq!(
        error_code(r).await,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
    );
    assert_eq!(app.offset(&t, &url).await, 0);
}

#[tokio::test]
async fn post_with_method_override_patch_appends_a_chunk() {
    let app = TestApp::spawn().await;
    let (t, _, url, bytes) = fresh_upload(&app).await;
    let r = app
        .tus(Method::POST, &url, &t.key)
        .header("X-HTTP-Method-Override", "PATCH")
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", "0")
        .body(bytes[..1_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&r, "upload-offset"), "1000");
    assert_eq!(app.offset(&t, &url).await, 1_000);
    // And its refusals are PATCH refusals.
    let r = app
        .tus(Method::POST, &url, &t.key)
        .header("X-HTTP-Method-Override", "PATCH")
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", "0")
        .body(bytes[..1_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r).await,
        (StatusCode::CONFLICT, "offset_mismatch".into())
    );
}

#[tokio::test]
async fn post_with_method_override_head_reports_the_offset() {
    let app = TestApp::spawn().await;
    let (t, _, url, bytes) = fresh_upload(&app).await;
    app.upload_all(&t, &url, &bytes[..700], 700).await;
    let r = app
        .tus(Method::POST, &url, &t.key)
        .header("X-HTTP-Method-Override", "HEAD")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_str(&r, "upload-offset"), "700");
    assert_eq!(header_str(&r, "upload-length"), bytes.len().to_string());
    assert_eq!(header_str(&r, "cache-control"), "no-store");
}

#[tokio::test]
async fn post_with_method_override_delete_terminates_the_upload() {
    let app = TestApp::spawn().await;
    let (t, id, url, bytes) = fresh_upload(&app).await;
    app.upload_all(&t, &url, &bytes[..700], 700).await;
    let r = app
        .tus(Method::POST, &url, &t.key)
        .header("X-HTTP-Method-Override", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.head(&t, &url).await.status(), StatusCode::GONE);
    assert_eq!(
        error_code(app.get_asset_raw(&t, &id).await).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
}

#[tokio::test]
async fn cors_preflight_is_answered_without_auth_and_allows_the_tus_headers() {
    let app = TestApp::spawn().await;
    let (_, _, url, _) = fresh_upload(&app).await;
    for (target, method) in [
        (url.as_str(), "PATCH"),
        (url.as_str(), "HEAD"),
        (url.as_str(), "DELETE"),
        (&*app.url("/v1/assets"), "POST"),
    ] {
        let r = app
            .client
            .request(Method::OPTIONS, target)
            .header("Origin", "https://app.example.com")
            .header("Access-Control-Request-Method", method)
            .header(
                "Access-Control-Request-Headers",
                "upload-offset,tus-resumable,content-type,authorization",
            )
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "preflight {method} {target}: {}",
            r.status()
        );
        let origin = header_str(&r, "access-control-allow-origin");
        assert!(
            origin == "*" || origin == "https://app.example.com",
            "{origin}"
        );
        let methods = tokens(&r, "access-control-allow-methods");
        assert!(
            methods.contains(&method.to_ascii_lowercase()),
            "{method} not allowed: {methods:?}"
        );
        let allowed = tokens(&r, "access-control-allow-headers");
        for h in [
            "upload-offset",
            "tus-resumable",
            "content-type",
            "authorization",
        ] {
            assert!(
                allowed.contains(&h.to_owned()) || allowed.contains(&"*".to_owned()),
                "{h} not in Access-Control-Allow-Headers {allowed:?}"
            );
        }
    }
}

#[tokio::test]
async fn cross_origin_responses_expose_the_tus_headers() {
    let app = TestApp::spawn().await;
    let (t, id, url, _) = fresh_upload(&app).await;
    let get = app
        .req(Method::GET, &format!("/v1/assets/{id}"), &t.key)
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    let head = app
        .tus(Method::HEAD, &url, &t.key)
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    let project = app.project(&t).await;
    let create = app
        .req(Method::POST, "/v1/assets", &t.key)
        .header("Origin", "https://app.example.com")
        .json(&json!({"project_id": project, "size_bytes": 1000}))
        .send()
        .await
        .unwrap();
    for (what, r) in [
        ("GET asset", get),
        ("HEAD upload", head),
        ("POST asset", create),
    ] {
        assert!(r.status().is_success(), "{what}: {}", r.status());
        assert!(
            r.headers().contains_key("access-control-allow-origin"),
            "{what}: {:?}",
            r.headers()
        );
        let exposed = tokens(&r, "access-control-expose-headers");
        for h in [
            "location",
            "upload-offset",
            "upload-length",
            "upload-expires",
            "tus-resumable",
            "tus-version",
            "tus-extension",
            "tus-max-size",
        ] {
            assert!(
                exposed.contains(&h.to_owned()),
                "{what}: {h} not in Access-Control-Expose-Headers {exposed:?}"
            );
        }
    }
}

/// Creates an asset with extra request headers; returns `(Location, body)`.
async fn create_with(
    app: &TestApp,
    t: &Tenant,
    project: &str,
    headers: &[(&str, &str)],
) -> (String, Value) {
    let mut req = app
        .req(Method::POST, "/v1/assets", &t.key)
        .json(&json!({"project_id": project, "size_bytes": 1000}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = header_str(&r, "location");
    (location, r.json().await.unwrap())
}

#[tokio::test]
async fn location_and_upload_url_are_built_from_roughy_public_url() {
    let app = TestApp::spawn_with(|c| {
        c.http.settings.public_url = Some("https://media.example.com".into())
    })
    .await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (location, body) = create_with(
        &app,
        &t,
        &project,
        &[
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "evil.example.net"),
        ],
    )
    .await;
    let id = upload_id(&location);
    assert_eq!(
        location,
        format!("https://media.example.com/v1/uploads/{id}")
    );
    assert_eq!(body["upload_url"], location.as_str());
    let got = app.get_asset(&t, body["id"].as_str().unwrap()).await;
    assert_eq!(got["upload_url"], location.as_str());
    // The same path works against this server.
    let local = app.url(&format!("/v1/uploads/{id}"));
    assert_eq!(app.offset(&t, &local).await, 0);
}

#[tokio::test]
async fn forwarded_headers_build_the_upload_url_when_trust_proxy_is_set() {
    let app = TestApp::spawn_with(|c| c.http.settings.trust_proxy = true).await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (location, body) = create_with(
        &app,
        &t,
        &project,
        &[
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "uploads.example.org"),
        ],
    )
    .await;
    assert_eq!(
        location,
        format!(
            "https://uploads.example.org/v1/uploads/{}",
            upload_id(&location)
        )
    );
    assert_eq!(body["upload_url"], location.as_str());
    // The standard Forwarded header too.
    let (location, _) = create_with(
        &app,
        &t,
        &project,
        &[("Forwarded", "proto=https;host=edge.example.org")],
    )
    .await;
    assert_eq!(
        location,
        format!(
            "https://edge.example.org/v1/uploads/{}",
            upload_id(&location)
        )
    );
    // Without forwarded headers: the request's own host.
    let (location, _) = create_with(&app, &t, &project, &[]).await;
    assert!(
        location.starts_with(&format!("{}/v1/uploads/", app.base)),
        "{location}"
    );
}

#[tokio::test]
async fn forwarded_headers_are_ignored_without_trust_proxy() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (location, body) = create_with(
        &app,
        &t,
        &project,
        &[
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example.net"),
            ("Forwarded", "proto=https;host=evil.example.net"),
        ],
    )
    .await;
    assert_eq!(
        location,
        format!("{}/v1/uploads/{}", app.base, upload_id(&location))
    );
    assert_eq!(body["upload_url"], location.as_str());
    let got = app
        .req(
            Method::GET,
            &format!("/v1/assets/{}", body["id"].as_str().unwrap()),
            &t.key,
        )
        .header("X-Forwarded-Host", "evil.example.net")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(got["upload_url"], location.as_str());
}
