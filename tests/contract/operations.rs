//! Contract rules: operations (CONTRACT §10, the parts observable over HTTP).

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::Value;

use roughy_tests::TestApp;

async fn served_openapi(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(ct.starts_with("application/json"), "Content-Type {ct:?}");
    r.json().await.expect("/openapi.json is JSON")
}

#[tokio::test]
async fn healthz_is_200() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_200_when_storage_answers() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_503_service_unavailable_with_the_error_body_when_storage_does_not_answer() {
    // Local blobs whatever the run's wiring, so the test can take the storage away.
    let wiring = match roughy_tests::Wiring::from_env() {
        roughy_tests::Wiring::PostgresS3 => roughy_tests::Wiring::Postgres,
        other => other,
    };
    let app = TestApp::spawn_wired(wiring, |_| {}).await;
    std::fs::remove_dir_all(app.blob_dir()).unwrap();
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        roughy_tests::error_code(r).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable".into()
        )
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_the_clients_when_it_is_acceptable() {
    let app = TestApp::spawn().await;
    let sent = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "client-req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        roughy_tests::header_str(&sent, "x-request-id"),
        "client-req-42"
    );
    let generated = app.client.get(app.url("/nope")).send().await.unwrap();
    let id = roughy_tests::header_str(&generated, "x-request-id");
    assert!(id.len() >= 16, "generated id {id:?}");
    for bad in ["has space", &"x".repeat(129)] {
        let r = app
            .client
            .get(app.url("/healthz"))
            .header("X-Request-Id", bad)
            .send()
            .await
            .unwrap();
        let id = roughy_tests::header_str(&r, "x-request-id");
        assert!(id != bad && !id.is_empty(), "{bad:?} was kept");
    }
}

#[tokio::test]
async fn every_error_body_names_the_request_id_of_its_response() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let cases = [
        // unknown route (the app-wide fallback)
        app.client.get(app.url("/nope")),
        // refused by the authentication extractor
        app.client.get(app.url("/v1/projects")),
        // a body the JSON extractor refuses
        app.req(reqwest::Method::POST, "/v1/projects", &t.key)
            .header("Content-Type", "application/json")
            .body("{\"name\": 7}"),
        // a TUS precondition (no Tus-Resumable)
        app.req(reqwest::Method::HEAD, "/v1/uploads/upl_nope", &t.key),
        app.req(reqwest::Method::PATCH, "/v1/uploads/upl_nope", &t.key),
    ];
    for (i, request) in cases.into_iter().enumerate() {
        let sent_id = format!("req-err-{i}");
        let r = request
            .header("X-Request-Id", &sent_id)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(status.is_client_error(), "case {i}: {status}");
        assert_eq!(roughy_tests::header_str(&r, "x-request-id"), sent_id);
        if r.headers().get("content-length").is_some_and(|v| v == "0") {
            continue; // HEAD: no body
        }
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if body.is_null() {
            continue;
        }
        assert_eq!(
            body["error"]["request_id"],
            sent_id.as_str(),
            "case {i}: {body}"
        );
        assert!(body["error"]["code"].is_string(), "case {i}: {body}");
    }
    // A generated id is the same in the header and the body.
    let r = app.client.get(app.url("/v1/assets")).send().await.unwrap();
    let header_id = roughy_tests::header_str(&r, "x-request-id");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], header_id.as_str(), "{body}");
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_1_document_of_the_api() {
    let app = TestApp::spawn().await;
    let doc = served_openapi(&app).await;
    let version = doc["openapi"].as_str().expect("an `openapi` field");
    assert!(version.starts_with("3.1"), "openapi version {version}");
    assert!(doc["info"]["title"].is_string(), "no info.title");
    let paths = doc["paths"].as_object().expect("a `paths` object");
    for path in [
        "/v1/assets",
        "/v1/assets/{id}",
        "/v1/uploads/{id}",
        "/v1/projects",
        "/v1/credits",
        "/v1/credits/ledger",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI paths: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(paths["/v1/assets"].get("post").is_some(), "POST /v1/assets");
    assert!(
        paths["/v1/uploads/{id}"].get("patch").is_some(),
        "PATCH /v1/uploads/{{id}}"
    );
}

#[tokio::test]
async fn committed_openapi_document_matches_the_served_one() {
    let committed_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_else(|e| {
        panic!(
            "the committed OpenAPI document {} is missing ({e}): run `make openapi`",
            committed_path.display()
        )
    });
    let committed: Value = serde_json::from_str(&committed).unwrap_or_else(|e| {
        panic!(
            "{} is not valid JSON ({e}): run `make openapi`",
            committed_path.display()
        )
    });
    let app = TestApp::spawn().await;
    let served = served_openapi(&app).await;
    assert!(
        committed == served,
        "{} differs from what GET /openapi.json serves: run `make openapi` and commit the result",
        committed_path.display()
    );
}
