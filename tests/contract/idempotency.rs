//! Contract rules: `Idempotency-Key` on `POST /v1/assets` and `POST /v1/projects` (issue #12):
//! a retry within 24 h gets the first response; another body under the key is 422
//! `idempotency_key_reused`; a key still in flight is 409 `idempotency_key_in_use`.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use roughy_tests::{error_code, header_str, Tenant, TestApp};

async fn keyed(app: &TestApp, t: &Tenant, path: &str, key: &str, body: &str) -> Response {
    app.req(Method::POST, path, &t.key)
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn asset_count(app: &TestApp, t: &Tenant) -> usize {
    let list = app.get_json(t, "/v1/assets?limit=100").await;
    list["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_retried_create_asset_gets_the_first_asset_and_location_back() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let body = format!(r#"{{"project_id": "{project}", "size_bytes": 1000}}"#);
    let first = keyed(&app, &t, "/v1/assets", "create-asset-1", &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let location = header_str(&first, "location");
    let expires = header_str(&first, "upload-expires");
    let first: Value = first.json().await.unwrap();

    // The same JSON, keys in another order and spaced otherwise, is the same request.
    let again = format!("{{\"size_bytes\":1000,\n\"project_id\":\"{project}\"}}");
    let retry = keyed(&app, &t, "/v1/assets", "create-asset-1", &again).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(header_str(&retry, "idempotent-replayed"), "true");
    assert_eq!(header_str(&retry, "location"), location);
    assert_eq!(header_str(&retry, "upload-expires"), expires);
    assert!(header_str(&retry, "content-type").starts_with("application/json"));
    let retried: Value = retry.json().await.unwrap();
    assert_eq!(retried, first);
    assert_eq!(asset_count(&app, &t).await, 1);

    // The upload it points at is the one asset's.
    let head = app.head(&t, &location).await;
    assert_eq!(head.status(), StatusCode::OK);
    // Without a key, the same body creates another asset.
    let (other, _) = app.asset(&t, &project, 1000).await;
    assert_ne!(other["id"], first["id"]);
    assert_eq!(asset_count(&app, &t).await, 2);
}

#[tokio::test]
async fn a_retried_create_project_gets_the_first_project_back() {
    let app = TestApp::spawn().await;
    let t = app.tenant(0).await;
    let first = keyed(&app, &t, "/v1/projects", "p-1", r#"{"name": "Show"}"#).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let retry = keyed(&app, &t, "/v1/projects", "p-1", r#"{"name":"Show"}"#).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    // An empty body is `{}`, under its own key.
    let empty = keyed(&app, &t, "/v1/projects", "p-2", "").await;
    assert_eq!(empty.status(), StatusCode::CREATED);
    let empty: Value = empty.json().await.unwrap();
    let again = keyed(&app, &t, "/v1/projects", "p-2", "{}").await;
    assert_eq!(again.json::<Value>().await.unwrap(), empty);
    let list = app.get_json(&t, "/v1/projects").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test]
async fn another_request_under_a_used_key_is_422_idempotency_key_reused() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let body = format!(r#"{{"project_id": "{project}", "size_bytes": 1000}}"#);
    assert_eq!(
        keyed(&app, &t, "/v1/assets", "k", &body).await.status(),
        StatusCode::CREATED
    );
    let other = format!(r#"{{"project_id": "{project}", "size_bytes": 1001}}"#);
    let (status, code) = error_code(keyed(&app, &t, "/v1/assets", "k", &other).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    // The key names one request on one route.
    let (status, code) =
        error_code(keyed(&app, &t, "/v1/projects", "k", r#"{"name": "x"}"#).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    assert_eq!(asset_count(&app, &t).await, 1);
}

#[tokio::test]
async fn a_refused_create_does_not_bind_its_key() {
    let app = TestApp::spawn().await;
    let t = app.tenant(0).await;
    let project = app.project(&t).await;
    let body = format!(r#"{{"project_id": "{project}", "size_bytes": 1000}}"#);
    let (status, code) =
        error_code(keyed(&app, &t, "/v1/assets", "after-top-up", &body).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYMENT_REQUIRED, "insufficient_credits")
    );
    // A body the validation refuses does not bind it either.
    let (status, _) = error_code(keyed(&app, &t, "/v1/assets", "after-top-up", "{}").await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    app.top_up(&t.account_id, 5).await;
    let r = keyed(&app, &t, "/v1/assets", "after-top-up", &body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("idempotent-replayed").is_none());
    assert_eq!(asset_count(&app, &t).await, 1);
}

#[tokio::test]
async fn keys_are_scoped_to_the_account() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant(10).await, app.tenant(10).await);
    let ra = keyed(&app, &a, "/v1/projects", "same-key", r#"{"name": "a"}"#).await;
    let rb = keyed(&app, &b, "/v1/projects", "same-key", r#"{"name": "b"}"#).await;
    assert_eq!(
        (ra.status(), rb.status()),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    let (pa, pb): (Value, Value) = (ra.json().await.unwrap(), rb.json().await.unwrap());
    assert_ne!(pa["id"], pb["id"]);
    assert_eq!(
        (pa["name"].as_str(), pb["name"].as_str()),
        (Some("a"), Some("b"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_with_one_key_make_one_asset() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let body = format!(r#"{{"project_id": "{project}", "size_bytes": 1000}}"#);
    for round in 0..4 {
        let key = format!("race-{round}");
        let answers =
            futures::future::join_all((0..8).map(|_| keyed(&app, &t, "/v1/assets", &key, &body)))
                .await;
        let mut ids = Vec::new();
        for r in answers {
            match r.status() {
                StatusCode::CREATED => {
                    ids.push(r.json::<Value>().await.unwrap()["id"].clone());
                }
                StatusCode::CONFLICT => {
                    let (_, code) = error_code(r).await;
                    assert_eq!(code, "idempotency_key_in_use");
                }
                other => panic!("round {round}: {other}"),
            }
        }
        assert!(
            !ids.is_empty(),
            "round {round}: the first request answers 201"
        );
        assert!(ids.iter().all(|id| *id == ids[0]), "round {round}: {ids:?}");
    }
    assert_eq!(asset_count(&app, &t).await, 4, "one asset per key");
}

#[tokio::test]
async fn a_key_is_forgotten_24_hours_after_its_first_use() {
    let app = TestApp::spawn().await;
    let t = app.tenant(0).await;
    let first = keyed(&app, &t, "/v1/projects", "daily", r#"{"name": "monday"}"#).await;
    let first: Value = first.json().await.unwrap();
    app.clock.advance(time::Duration::hours(23));
    let (status, _) =
        error_code(keyed(&app, &t, "/v1/projects", "daily", r#"{"name": "tuesday"}"#).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    app.clock.advance(time::Duration::hours(1));
    let later = keyed(&app, &t, "/v1/projects", "daily", r#"{"name": "tuesday"}"#).await;
    assert_eq!(later.status(), StatusCode::CREATED);
    let later: Value = later.json().await.unwrap();
    assert_ne!(later["id"], first["id"]);
    assert_eq!(later["name"], "tuesday");
}

#[tokio::test]
async fn a_malformed_key_is_422_validation_error_naming_the_header() {
    let app = TestApp::spawn().await;
    let t = app.tenant(0).await;
    let long = "k".repeat(256);
    for bad in [long.as_str(), "  "] {
        let (status, code) = error_code(keyed(&app, &t, "/v1/projects", bad, "{}").await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
            "{bad:?}"
        );
    }
    let r = app
        .req(Method::POST, "/v1/projects", &t.key)
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{body}"
    );
}
