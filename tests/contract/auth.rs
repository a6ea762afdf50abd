//! Contract rules: authentication and tenancy (CONTRACT §2).

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use roughy_tests::media::wav;
use roughy_tests::{Tenant, TestApp};

/// Status, `WWW-Authenticate` and error code of a response.
async fn challenge(r: Response) -> (StatusCode, Option<String>, String) {
    let status = r.status();
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        www,
        body["error"]["code"]
            .as_str()
            .unwrap_or("<none>")
            .to_owned(),
    )
}

fn assert_unauthorized(got: &(StatusCode, Option<String>, String), what: &str) {
    assert_eq!(got.0, StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(got.2, "unauthorized", "{what}");
    let www = got
        .1
        .as_deref()
        .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    assert!(
        www.trim().to_ascii_lowercase().starts_with("bearer"),
        "{what}: WWW-Authenticate {www:?} is not a Bearer challenge"
    );
}

/// Mints a key for an account through the operator API: `(key id, secret)`.
async fn mint(app: &TestApp, account_id: &str) -> (String, String) {
    let r = app
        .admin(
            Method::POST,
            &format!("/admin/v1/accounts/{account_id}/api-keys"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    )
}

async fn revoke(app: &TestApp, key_id: &str) {
    let r = app
        .admin(Method::DELETE, &format!("/admin/v1/api-keys/{key_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

/// An id that looks like `real` (same prefix and length) but was never issued.
fn lookalike(real: &str) -> String {
    let (prefix, rest) = real.split_at(real.find('_').unwrap() + 1);
    format!("{prefix}{}", "Q".repeat(rest.len()))
}

/// A set of authenticated requests with a given `Authorization` value (or none).
fn protected_requests(app: &TestApp, upload_url: &str) -> Vec<(String, RequestBuilder)> {
    let c = &app.client;
    vec![
        ("GET /v1/projects".into(), c.get(app.url("/v1/projects"))),
        (
            "POST /v1/projects".into(),
            c.post(app.url("/v1/projects")).json(&json!({"name": "x"})),
        ),
        ("GET /v1/assets".into(), c.get(app.url("/v1/assets"))),
        ("GET /v1/credits".into(), c.get(app.url("/v1/credits"))),
        (
            "GET /v1/credits/ledger".into(),
            c.get(app.url("/v1/credits/ledger")),
        ),
        (
            "PATCH upload".into(),
            c.patch(upload_url)
                .header("Tus-Resumable", "1.0.0")
                .header("Content-Type", "application/offset+octet-stream")
                .header("Upload-Offset", "0")
                .body(wav(100, 8_000)),
        ),
        (
            "DELETE upload".into(),
            c.delete(upload_url).header("Tus-Resumable", "1.0.0"),
        ),
    ]
}

#[tokio::test]
async fn missing_key_is_401_unauthorized_with_bearer_challenge() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (_, upload_url) = app.asset(&t, &project, 1000).await;
    for (what, rb) in protected_requests(&app, &upload_url) {
        let got = challenge(rb.send().await.unwrap()).await;
        assert_unauthorized(&got, &what);
    }
    // HEAD has no body: status and challenge only.
    let r = app
        .client
        .head(&upload_url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    // Nothing happened to the upload.
    let head = app.head(&t, &upload_url).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["upload-offset"], "0");
}

#[tokio::test]
async fn malformed_key_is_401_unauthorized_with_bearer_challenge() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (_, upload_url) = app.asset(&t, &project, 1000).await;
    let malformed = [
        format!("Basic {}", t.key),
        t.key.clone(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer not-a-key".to_owned(),
        format!("Bearer {}x!", t.key),
        format!("Token {}", t.key),
    ];
    for auth in &malformed {
        for (what, rb) in protected_requests(&app, &upload_url) {
            let got = challenge(rb.header("Authorization", auth).send().await.unwrap()).await;
            assert_unauthorized(&got, &format!("{what} with Authorization {auth:?}"));
        }
    }
}

#[tokio::test]
async fn unknown_key_is_401_unauthorized_with_bearer_challenge() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (_, upload_url) = app.asset(&t, &project, 1000).await;
    let unknown = lookalike(&t.key);
    for key in [unknown.as_str(), "sk_live_0000000000000000000000000000"] {
        for (what, rb) in protected_requests(&app, &upload_url) {
            let got = challenge(rb.bearer_auth(key).send().await.unwrap()).await;
            assert_unauthorized(&got, &format!("{what} with unknown key"));
        }
    }
    // The admin token is not an API key.
    let got = challenge(
        app.req(Method::GET, "/v1/credits", roughy_tests::ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_unauthorized(&got, "admin token as API key");
}

#[tokio::test]
async fn revoked_key_is_401_unauthorized_with_bearer_challenge() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (_, upload_url) = app.asset(&t, &project, 1000).await;
    let (key_id, secret) = mint(&app, &t.account_id).await;
    revoke(&app, &key_id).await;
    for (what, rb) in protected_requests(&app, &upload_url) {
        let got = challenge(rb.bearer_auth(&secret).send().await.unwrap()).await;
        assert_unauthorized(&got, &format!("{what} with revoked key"));
    }
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let (key_id, secret) = mint(&app, &t.account_id).await;
    let project = app.project(&t).await;
    let (_, upload_url) = app.asset(&t, &project, 1000).await;
    // Works before, on a kept-alive connection too.
    let r = app
        .req(Method::GET, "/v1/credits", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .tus(Method::HEAD, &upload_url, &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    revoke(&app, &key_id).await;
    // The very next requests are refused.
    let got = challenge(
        app.req(Method::GET, "/v1/credits", &secret)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_unauthorized(&got, "GET /v1/credits right after revocation");
    let r = app
        .tus(Method::HEAD, &upload_url, &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "HEAD after revocation"
    );
    let bytes = wav(500, 8_000);
    let got = challenge(
        app.tus(Method::PATCH, &upload_url, &secret)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", "0")
            .body(bytes)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_unauthorized(&got, "PATCH after revocation");
    // The account's other key is unaffected.
    assert_eq!(app.balance(&t).await, 10);
    assert_eq!(
        app.head(&t, &upload_url).await.headers()["upload-offset"],
        "0"
    );
}

#[tokio::test]
async fn options_health_readiness_and_openapi_need_no_key() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let r = c.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path} without a key");
    }
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (asset, upload_url) = app.asset(&t, &project, 1000).await;
    let asset_id = asset["id"].as_str().unwrap();
    // TUS discovery.
    for url in [app.url("/v1/uploads"), upload_url.clone()] {
        let r = c.request(Method::OPTIONS, &url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "OPTIONS {url}");
        assert_eq!(r.headers()["tus-resumable"], "1.0.0", "OPTIONS {url}");
    }
    // CORS preflights on /v1 routes, answered without auth.
    for path in [
        "/v1/assets".to_owned(),
        format!("/v1/assets/{asset_id}"),
        "/v1/projects".to_owned(),
        "/v1/uploads".to_owned(),
        upload_url.replace(&app.base, ""),
    ] {
        let r = c
            .request(Method::OPTIONS, app.url(&path))
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "preflight {path} without auth: {}",
            r.status()
        );
        assert!(
            r.headers().contains_key("access-control-allow-origin"),
            "preflight {path}: no Access-Control-Allow-Origin"
        );
    }
    // Plain OPTIONS on a /v1 resource.
    let r = c
        .request(Method::OPTIONS, app.url("/v1/assets"))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "OPTIONS /v1/assets: {}",
        r.status()
    );
}

/// Asserts two responses are indistinguishable: same status, same body (with the requested
/// ids replaced by a placeholder, so only existence could tell them apart).
async fn assert_same_answer(theirs: Response, their_id: &str, missing: Response, missing_id: &str) {
    let (s1, s2) = (theirs.status(), missing.status());
    let text = |raw: String| match serde_json::from_str(&raw) {
        Ok(body) => roughy_tests::without_request_id(body).to_string(),
        Err(_) => raw,
    };
    let b1 = text(theirs.text().await.unwrap()).replace(their_id, "{id}");
    let b2 = text(missing.text().await.unwrap()).replace(missing_id, "{id}");
    assert_eq!(
        (s1, &b1),
        (s2, &b2),
        "another account's resource answers differently from a missing one"
    );
}

#[tokio::test]
async fn another_accounts_project_answers_exactly_as_a_missing_one() {
    let app = TestApp::spawn().await;
    let owner = app.tenant(10).await;
    let intruder = app.tenant(10).await;
    let project = app.project(&owner).await;
    let missing = lookalike(&project);
    for method in [Method::GET, Method::DELETE] {
        let theirs = app
            .req(
                method.clone(),
                &format!("/v1/projects/{project}"),
                &intruder.key,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(theirs.status(), StatusCode::NOT_FOUND, "{method}");
        let gone = app
            .req(
                method.clone(),
                &format!("/v1/projects/{missing}"),
                &intruder.key,
            )
            .send()
            .await
            .unwrap();
        assert_same_answer(theirs, &project, gone, &missing).await;
    }
    // Creating an asset in it answers like a missing project.
    let theirs = app
        .create_asset_raw(
            &intruder,
            json!({"project_id": project, "size_bytes": 1000}),
        )
        .await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    let gone = app
        .create_asset_raw(
            &intruder,
            json!({"project_id": missing, "size_bytes": 1000}),
        )
        .await;
    assert_same_answer(theirs, &project, gone, &missing).await;
    // The owner still has it, and no asset was created for anyone.
    let r = app
        .req(Method::GET, &format!("/v1/projects/{project}"), &owner.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for t in [&owner, &intruder] {
        let list: Value = app
            .req(Method::GET, "/v1/assets", &t.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["data"], json!([]));
    }
}

#[tokio::test]
async fn another_accounts_asset_answers_exactly_as_a_missing_one() {
    let app = TestApp::spawn().await;
    let owner = app.tenant(10).await;
    let intruder = app.tenant(10).await;
    let project = app.project(&owner).await;
    let ready = app.ingest(&owner, &project, &wav(500, 8_000)).await;
    let (pending, _) = app.asset(&owner, &project, 1000).await;
    for asset in [&ready, &pending] {
        let id = asset["id"].as_str().unwrap();
        let missing = lookalike(id);
        for method in [Method::GET, Method::DELETE] {
            let theirs = app
                .req(method.clone(), &format!("/v1/assets/{id}"), &intruder.key)
                .send()
                .await
                .unwrap();
            assert_eq!(theirs.status(), StatusCode::NOT_FOUND, "{method} {id}");
            let gone = app
                .req(
                    method.clone(),
                    &format!("/v1/assets/{missing}"),
                    &intruder.key,
                )
                .send()
                .await
                .unwrap();
            assert_same_answer(theirs, id, gone, &missing).await;
        }
        // The owner still has it, unchanged.
        let still = app.get_asset(&owner, id).await;
        assert_eq!(still["state"], asset["state"]);
    }
}

#[tokio::test]
async fn another_accounts_upload_answers_exactly_as_a_missing_one() {
    let app = TestApp::spawn().await;
    let owner = app.tenant(10).await;
    let intruder = app.tenant(10).await;
    let project = app.project(&owner).await;
    let bytes = wav(500, 8_000);
    let (asset, upload_url) = app.asset(&owner, &project, bytes.len()).await;
    let upload_id = upload_url.rsplit('/').next().unwrap().to_owned();
    let missing_id = lookalike(&upload_id);
    let missing_url = upload_url.replace(&upload_id, &missing_id);

    // HEAD: no body, same status and same TUS headers.
    let theirs = app.head(&intruder, &upload_url).await;
    let gone = app.head(&intruder, &missing_url).await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    assert_eq!(theirs.status(), gone.status());
    for h in ["upload-offset", "upload-length", "upload-expires"] {
        assert!(
            !theirs.headers().contains_key(h),
            "HEAD of another account's upload leaks {h}"
        );
    }
    // PATCH, at the right offset and at a wrong one.
    for offset in [0u64, 100] {
        let theirs = app
            .patch(&intruder, &upload_url, offset, bytes.clone())
            .await;
        assert_eq!(theirs.status(), StatusCode::NOT_FOUND, "PATCH at {offset}");
        let gone = app
            .patch(&intruder, &missing_url, offset, bytes.clone())
            .await;
        assert_same_answer(theirs, &upload_id, gone, &missing_id).await;
    }
    // DELETE (termination).
    let theirs = app
        .tus(Method::DELETE, &upload_url, &intruder.key)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND, "DELETE");
    let gone = app
        .tus(Method::DELETE, &missing_url, &intruder.key)
        .send()
        .await
        .unwrap();
    assert_same_answer(theirs, &upload_id, gone, &missing_id).await;
    // The owner's upload is untouched and still completes.
    let head = app.head(&owner, &upload_url).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["upload-offset"], "0");
    let fetched = app.get_asset(&owner, asset["id"].as_str().unwrap()).await;
    assert_eq!(
        fetched["type"],
        Value::Null,
        "the intruder's bytes were sniffed"
    );
    app.upload_all(&owner, &upload_url, &bytes, 1 << 20).await;
    let done = app.settled(&owner, asset["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "ready");
}

#[tokio::test]
async fn lists_and_ledger_are_scoped_to_the_keys_account() {
    let app = TestApp::spawn().await;
    let a = app.tenant(10).await;
    let b = app.tenant(7).await;
    let pa = app.project(&a).await;
    let pb = app.project(&b).await;
    app.ingest(&a, &pa, &wav(500, 8_000)).await;
    let (asset_b, _) = app.asset(&b, &pb, 1000).await;
    let list = |t: &Tenant, path: &'static str| {
        let rb = app.req(Method::GET, path, &t.key);
        async move {
            let v: Value = rb.send().await.unwrap().json().await.unwrap();
            v["data"].as_array().unwrap().clone()
        }
    };
    let projects_b = list(&b, "/v1/projects").await;
    assert_eq!(projects_b.len(), 1);
    assert_eq!(projects_b[0]["id"], pb.as_str());
    let assets_b = list(&b, "/v1/assets").await;
    assert_eq!(assets_b.len(), 1);
    assert_eq!(assets_b[0]["id"], asset_b["id"]);
    let ledger_b = list(&b, "/v1/credits/ledger").await;
    assert_eq!(ledger_b.len(), 1);
    assert_eq!(ledger_b[0]["amount"], 7);
    assert_eq!(app.balance(&b).await, 7);
    assert_eq!(app.balance(&a).await, 9);
    let ledger_a = list(&a, "/v1/credits/ledger").await;
    assert_eq!(ledger_a.len(), 2);
    // Filtering by another account's project shows none of its assets.
    let r = app
        .req(Method::GET, &format!("/v1/assets?project_id={pa}"), &b.key)
        .send()
        .await
        .unwrap();
    if r.status() == StatusCode::OK {
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["data"], json!([]), "another account's assets leak");
    } else {
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
