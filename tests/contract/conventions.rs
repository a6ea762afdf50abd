//! Contract rules: conventions (CONTRACT §1).

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use roughy_tests::media::wav;
use roughy_tests::{error_code, header_str, Tenant, TestApp};

/// Status and parsed JSON body (`Null` when the body is not JSON).
async fn status_json(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Asserts an error response: exact status, exact code; returns the message.
async fn expect_error(r: Response, status: StatusCode, code: &str, what: &str) -> String {
    let (got, body) = status_json(r).await;
    assert_eq!(
        (got, body["error"]["code"].as_str().unwrap_or("<none>")),
        (status, code),
        "{what}: {body}"
    );
    body["error"]["message"].as_str().unwrap_or("").to_owned()
}

async fn get(app: &TestApp, t: &Tenant, path: &str) -> Response {
    app.req(Method::GET, path, &t.key).send().await.unwrap()
}

async fn create_project(app: &TestApp, t: &Tenant, name: &str) -> Value {
    let r = app
        .req(Method::POST, "/v1/projects", &t.key)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

/// A short pause so that separately created rows never share a millisecond.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

/// Asserts items are ordered by `(created_at desc, id desc)`, strictly.
fn assert_newest_first(items: &[Value], what: &str) {
    for pair in items.windows(2) {
        let a = (
            pair[0]["created_at"].as_str().unwrap(),
            pair[0]["id"].as_str().unwrap(),
        );
        let b = (
            pair[1]["created_at"].as_str().unwrap(),
            pair[1]["id"].as_str().unwrap(),
        );
        // The wire shows milliseconds; rows are ordered by the stored microseconds, then by
        // id. Within one millisecond the order is only checkable where the ids decide it,
        // which a list cannot tell from outside; so: never older before newer.
        assert!(
            a.0 >= b.0 && a != b,
            "{what}: not newest first (created_at desc, id desc): {a:?} before {b:?}"
        );
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

/// One page: `(data, next_cursor)`; asserts 200 and the list shape.
async fn page(app: &TestApp, t: &Tenant, path: &str) -> (Vec<Value>, Option<String>) {
    let (status, body) = status_json(get(app, t, path).await).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    let obj = body.as_object().expect("a list is an object");
    assert!(obj.contains_key("data"), "{path}: no data: {body}");
    assert!(
        obj.contains_key("next_cursor"),
        "{path}: no next_cursor: {body}"
    );
    let data = body["data"].as_array().expect("data is an array").clone();
    let cursor = match &body["next_cursor"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => panic!("{path}: next_cursor is neither null nor a string: {other}"),
    };
    (data, cursor)
}

fn with_query(path: &str, query: &str) -> String {
    if path.contains('?') {
        format!("{path}&{query}")
    } else {
        format!("{path}?{query}")
    }
}

fn is_rfc3339_millis_z(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
        && OffsetDateTime::parse(s, &Rfc3339).is_ok()
}

fn assert_timestamp(v: &Value, what: &str) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    assert!(
        is_rfc3339_millis_z(s),
        "{what}: {s:?} is not RFC 3339 UTC with millis and Z"
    );
    let at = OffsetDateTime::parse(s, &Rfc3339).unwrap();
    let skew = (OffsetDateTime::now_utc() - at).abs();
    assert!(
        skew < time::Duration::minutes(5),
        "{what}: {s} is far from now"
    );
}

fn assert_error_envelope(body: &Value, what: &str) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: error body is not an object: {body}"));
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        vec!["error"],
        "{what}: {body}"
    );
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: error is not an object: {body}"));
    let mut keys: Vec<_> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    // `request_id` (CONTRACT, operations): the id the response's `X-Request-Id` carries.
    assert_eq!(
        keys,
        vec!["code", "message", "request_id"],
        "{what}: {body}"
    );
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{what}: request_id is a non-empty string: {body}"
    );
    let code = body["error"]["code"].as_str().expect("code is a string");
    assert!(
        !code.is_empty()
            && code.starts_with(|c: char| c.is_ascii_lowercase())
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "{what}: code {code:?} is not lowercase snake_case"
    );
    let message = body["error"]["message"]
        .as_str()
        .expect("message is a string");
    assert!(!message.is_empty(), "{what}: empty message");
}

fn assert_json_content_type(r: &Response, what: &str) {
    let ct = r
        .headers()
        .get("content-type")
        .unwrap_or_else(|| panic!("{what}: no Content-Type"))
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    let mut parts = ct.split(';').map(str::trim);
    assert_eq!(parts.next(), Some("application/json"), "{what}: {ct}");
    let params: Vec<&str> = parts.collect();
    assert!(
        params.iter().any(|p| p.replace(' ', "") == "charset=utf-8"),
        "{what}: Content-Type {ct:?} is not `application/json; charset=utf-8`"
    );
}

// --- JSON and the error envelope -------------------------------------------------------------

#[tokio::test]
async fn responses_are_json_with_utf8_charset() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = create_project(&app, &t, "ünïcødé ✓").await;
    let id = project["id"].as_str().unwrap();
    let cases = [
        (Method::POST, "/v1/projects".to_owned(), StatusCode::CREATED),
        (Method::GET, format!("/v1/projects/{id}"), StatusCode::OK),
        (Method::GET, "/v1/projects".to_owned(), StatusCode::OK),
        (Method::GET, "/v1/credits".to_owned(), StatusCode::OK),
        (Method::GET, "/v1/credits/ledger".to_owned(), StatusCode::OK),
        (Method::GET, "/v1/assets".to_owned(), StatusCode::OK),
        (
            Method::GET,
            "/v1/projects/prj_doesnotexist".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/v1/no-such-route".to_owned(),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, path, status) in cases {
        let mut rb = app.req(method.clone(), &path, &t.key);
        if method == Method::POST {
            rb = rb.json(&json!({"name": "x"}));
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), status, "{method} {path}");
        assert_json_content_type(&r, &format!("{method} {path}"));
    }
    let r = app
        .client
        .get(app.url("/v1/projects"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_json_content_type(&r, "401");
    // UTF-8 round-trips.
    let got: Value = get(&app, &t, &format!("/v1/projects/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "ünïcødé ✓");
}

#[tokio::test]
async fn every_error_is_the_error_envelope_with_code_and_message() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (asset, upload_url) = app.asset(&t, &project, 1000).await;
    let asset_id = asset["id"].as_str().unwrap();
    let mut responses: Vec<(String, Response)> = vec![
        ("404 route".into(), get(&app, &t, "/v1/no-such-route").await),
        (
            "404 resource".into(),
            get(&app, &t, "/v1/assets/ast_doesnotexist").await,
        ),
        (
            "401".into(),
            app.client.get(app.url("/v1/credits")).send().await.unwrap(),
        ),
        (
            "400 json".into(),
            app.req(Method::POST, "/v1/projects", &t.key)
                .header("content-type", "application/json")
                .body("{")
                .send()
                .await
                .unwrap(),
        ),
        (
            "422".into(),
            app.req(Method::POST, "/v1/projects", &t.key)
                .json(&json!({"name": 5}))
                .send()
                .await
                .unwrap(),
        ),
        (
            "405".into(),
            app.req(Method::PUT, &format!("/v1/assets/{asset_id}"), &t.key)
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        ),
        (
            "422 limit".into(),
            get(&app, &t, "/v1/projects?limit=0").await,
        ),
    ];
    // A TUS error carries the same body and Tus-Resumable: 1.0.0.
    let tus = app.patch(&t, &upload_url, 7, vec![0; 64]).await;
    assert_eq!(
        tus.headers()
            .get("tus-resumable")
            .and_then(|v| v.to_str().ok()),
        Some("1.0.0"),
        "TUS error without Tus-Resumable"
    );
    responses.push(("409 tus".into(), tus));
    let missing = upload_url.rsplit_once('/').unwrap().0.to_owned() + "/upl_doesnotexist";
    let tus404 = app.patch(&t, &missing, 0, wav(100, 8_000)).await;
    assert_eq!(
        tus404
            .headers()
            .get("tus-resumable")
            .and_then(|v| v.to_str().ok()),
        Some("1.0.0"),
        "TUS 404 without Tus-Resumable"
    );
    responses.push(("404 tus".into(), tus404));
    for (what, r) in responses {
        let status = r.status();
        assert!(
            status.is_client_error(),
            "{what}: expected an error, got {status}"
        );
        let (_, body) = status_json(r).await;
        assert_error_envelope(&body, &what);
    }
}

// --- Timestamps and ids ----------------------------------------------------------------------

#[tokio::test]
async fn timestamps_are_rfc3339_utc_with_millis_and_z() {
    let app = TestApp::spawn().await;
    let account: Value = app
        .admin(Method::POST, "/admin/v1/accounts")
        .json(&json!({"name": "ts"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_timestamp(&account["created_at"], "account.created_at");
    let t = app.tenant(10).await;
    let key: Value = app
        .admin(
            Method::POST,
            &format!("/admin/v1/accounts/{}/api-keys", t.account_id),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_timestamp(&key["created_at"], "api_key.created_at");
    let top_up = app.top_up(&t.account_id, 5).await;
    assert_timestamp(&top_up["created_at"], "top_up.created_at");
    let project = create_project(&app, &t, "p").await;
    assert_timestamp(&project["created_at"], "project.created_at");
    let (asset, _) = app.asset(&t, project["id"].as_str().unwrap(), 1000).await;
    assert_timestamp(&asset["created_at"], "asset.created_at");
    let ready = app
        .ingest(&t, project["id"].as_str().unwrap(), &wav(500, 8_000))
        .await;
    assert_timestamp(&ready["created_at"], "asset detail created_at");
    let (ledger, _) = page(&app, &t, "/v1/credits/ledger").await;
    assert!(!ledger.is_empty());
    for e in &ledger {
        assert_timestamp(&e["created_at"], "ledger.created_at");
    }
    let (assets, _) = page(&app, &t, "/v1/assets").await;
    for a in &assets {
        assert_timestamp(&a["created_at"], "asset list created_at");
    }
}

#[tokio::test]
async fn upload_expires_is_an_imf_fixdate() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let r = app
        .create_asset_raw(&t, json!({"project_id": project, "size_bytes": 1000}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let header = |r: &Response| {
        r.headers()
            .get("upload-expires")
            .expect("Upload-Expires")
            .to_str()
            .unwrap()
            .to_owned()
    };
    let created = header(&r);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let head = app.head(&t, &location).await;
    assert_eq!(head.status(), StatusCode::OK);
    for value in [created, header(&head)] {
        let at = time::PrimitiveDateTime::parse(&value, format)
            .unwrap_or_else(|e| panic!("Upload-Expires {value:?} is not an IMF-fixdate: {e}"))
            .assume_utc();
        assert!(at > OffsetDateTime::now_utc(), "{value} is in the past");
        // The weekday must agree with the date.
        assert_eq!(
            &value[..3],
            &at.weekday().to_string()[..3],
            "{value}: wrong weekday"
        );
    }
}

#[tokio::test]
async fn ids_carry_their_type_prefix_and_are_url_safe() {
    let app = TestApp::spawn().await;
    let account: Value = app
        .admin(Method::POST, "/admin/v1/accounts")
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account_id = account["id"].as_str().unwrap().to_owned();
    let key: Value = app
        .admin(
            Method::POST,
            &format!("/admin/v1/accounts/{account_id}/api-keys"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = app.top_up(&account_id, 3).await;
    let t = Tenant {
        account_id: account_id.clone(),
        key: key["key"].as_str().unwrap().to_owned(),
    };
    let project = create_project(&app, &t, "p").await;
    let (asset, location) = app.asset(&t, project["id"].as_str().unwrap(), 1000).await;
    let upload_id = location.rsplit('/').next().unwrap().to_owned();
    let other = app.tenant(1).await;
    let url_safe = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let cases = [
        ("acc_", account_id.clone()),
        ("acc_", other.account_id.clone()),
        ("key_", key["id"].as_str().unwrap().to_owned()),
        ("led_", entry["id"].as_str().unwrap().to_owned()),
        ("prj_", project["id"].as_str().unwrap().to_owned()),
        ("ast_", asset["id"].as_str().unwrap().to_owned()),
    ];
    for (prefix, id) in &cases {
        assert!(id.starts_with(prefix), "{id} lacks the prefix {prefix}");
        assert!(url_safe(id), "{id} is not URL-safe");
        // Unguessable: a long random part.
        assert!(
            id.len() - prefix.len() >= 16,
            "{id}: random part too short to be unguessable"
        );
    }
    assert_ne!(cases[0].1, cases[1].1);
    assert!(
        upload_id.starts_with("ast_") || upload_id.starts_with("upl_"),
        "upload id {upload_id} has neither ast_ nor upl_"
    );
    assert!(url_safe(&upload_id), "{upload_id} is not URL-safe");
    assert_eq!(asset["project_id"], project["id"]);
}

// --- JSON bodies -----------------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    for (path, body) in [
        ("/v1/projects", "{\"name\": "),
        ("/v1/projects", "{\"name\": \"x\"} trailing"),
        ("/v1/projects", "not json"),
        ("/v1/assets", "{"),
        ("/v1/assets", "{\"project_id\": 'single'}"),
        // Syntax is judged before fields: each of these would be a field error (unknown,
        // mistyped, missing) if it were well-formed, and must still be 400.
        ("/v1/projects", "{\"a\":1,}"),
        ("/v1/projects", "{\"name\":\"x\",}"),
        ("/v1/projects", "{\"name\": 5"),
        ("/v1/projects", "{\"owner\": \"me\""),
        ("/v1/projects", "{\"name\": 5, \"x\": tru}"),
        ("/v1/assets", "{\"size_bytes\": \"1000\",}"),
        ("/v1/assets", "{\"colour\": [1, 2,]}"),
        ("/v1/assets", "{\"size_bytes\": 1000} {}"),
    ] {
        let r = app
            .req(Method::POST, path, &t.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        expect_error(
            r,
            StatusCode::BAD_REQUEST,
            "invalid_json",
            &format!("{path} {body}"),
        )
        .await;
    }
    let r = app
        .admin(Method::POST, "/admin/v1/accounts")
        .header("content-type", "application/json")
        .body("{,}")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_json", "admin").await;
    let r = app
        .admin(
            Method::POST,
            &format!("/admin/v1/accounts/{}/top-ups", t.account_id),
        )
        .header("content-type", "application/json")
        .body("{\"credits\": 5,}")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_json", "top-up").await;
    let (_, balance) = status_json(get(&app, &t, "/v1/credits").await).await;
    assert_eq!(
        balance["balance"], 10,
        "a refused top-up credited the account"
    );
    // Nothing was created by the refused bodies.
    let (assets, _) = page(&app, &t, &format!("/v1/assets?project_id={project}")).await;
    assert!(assets.is_empty());
}

#[tokio::test]
async fn an_integer_field_takes_a_whole_number_written_as_a_float() {
    // JSON has one number type: JSON Schema, and so every generated client, calls 1000.0 the
    // integer 1000 (Python's json writes floats that way).
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let r = app
        .req(Method::POST, "/v1/assets", &t.key)
        .header("Content-Type", "application/json")
        .body(format!(
            r#"{{"project_id": "{project}", "size_bytes": 1000.0}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let asset: Value = r.json().await.unwrap();
    let id = asset["id"].as_str().unwrap();
    let url = asset["upload_url"].as_str().unwrap();
    assert_eq!(
        header_str(&app.head(&t, url).await, "upload-length"),
        "1000",
        "{id}"
    );
}

#[tokio::test]
async fn wrong_field_type_is_422_validation_error_naming_the_field() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let cases = [
        (
            "/v1/assets",
            json!({"project_id": project, "size_bytes": "1000"}),
            "size_bytes",
        ),
        (
            "/v1/assets",
            json!({"project_id": 17, "size_bytes": 1000}),
            "project_id",
        ),
        (
            "/v1/assets",
            json!({"project_id": project, "size_bytes": 1000, "language": 5}),
            "language",
        ),
        ("/v1/projects", json!({"name": 5}), "name"),
        ("/v1/projects", json!({"name": ["a"]}), "name"),
        // Well-formed JSON of the wrong top-level type is a field error of the whole body.
        ("/v1/projects", json!(["name"]), "body"),
        ("/v1/assets", json!("x"), "body"),
        // serde would read an array as the struct's fields in order: not an object, refused.
        ("/v1/assets", json!([project, 1000]), "body"),
        // A number with a fraction is no integer.
        (
            "/v1/assets",
            json!({"project_id": project, "size_bytes": 1000.5}),
            "size_bytes",
        ),
    ];
    for (path, body, field) in cases {
        let r = app
            .req(Method::POST, path, &t.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let message = expect_error(
            r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            &format!("{path} {body}"),
        )
        .await;
        assert!(
            message.contains(field),
            "{path} {body}: message {message:?} does not name {field}"
        );
    }
}

#[tokio::test]
async fn missing_required_field_is_422_validation_error_naming_the_field() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    for (body, field) in [
        (json!({"project_id": project}), "size_bytes"),
        (json!({"size_bytes": 1000}), "project_id"),
        (
            json!({"project_id": project, "size_bytes": null}),
            "size_bytes",
        ),
    ] {
        let r = app.create_asset_raw(&t, body.clone()).await;
        let message = expect_error(
            r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            &body.to_string(),
        )
        .await;
        assert!(
            message.contains(field),
            "{body}: message {message:?} does not name {field}"
        );
    }
    let r = app
        .admin(
            Method::POST,
            &format!("/admin/v1/accounts/{}/top-ups", t.account_id),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let message = expect_error(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
        "top-up {}",
    )
    .await;
    assert!(message.contains("credits"), "{message:?}");
}

#[tokio::test]
async fn unknown_field_is_422_validation_error_naming_the_field() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let cases = [
        (
            "/v1/assets",
            json!({"project_id": project, "size_bytes": 1000, "colour": "red"}),
            "colour",
        ),
        (
            "/v1/assets",
            json!({"project_id": project, "size_bytes": 1000, "type": "audio"}),
            "type",
        ),
        ("/v1/projects", json!({"name": "x", "owner": "me"}), "owner"),
    ];
    for (path, body, field) in cases {
        let r = app
            .req(Method::POST, path, &t.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let message = expect_error(
            r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            &format!("{path} {body}"),
        )
        .await;
        assert!(
            message.contains(field),
            "{path} {body}: message {message:?} does not name {field}"
        );
    }
    let (assets, _) = page(&app, &t, "/v1/assets").await;
    assert!(assets.is_empty(), "a refused body created an asset");
}

#[tokio::test]
async fn out_of_range_field_is_422_validation_error_naming_the_field() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let cases = [
        (
            "/v1/assets",
            json!({"project_id": project, "size_bytes": 1000, "language": "english"}),
            "language",
        ),
        (
            "/v1/assets",
            json!({"project_id": project, "size_bytes": -5}),
            "size_bytes",
        ),
        ("/v1/projects", json!({"name": ""}), "name"),
    ];
    for (path, body, field) in cases {
        let r = app
            .req(Method::POST, path, &t.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let message = expect_error(
            r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            &format!("{path} {body}"),
        )
        .await;
        assert!(
            message.contains(field),
            "{path} {body}: message {message:?} does not name {field}"
        );
    }
}

// --- Lists -----------------------------------------------------------------------------------

#[tokio::test]
async fn lists_are_data_and_next_cursor() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    for path in ["/v1/projects", "/v1/assets", "/v1/credits/ledger"] {
        let (status, body) = status_json(get(&app, &t, path).await).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let mut keys: Vec<_> = body
            .as_object()
            .unwrap_or_else(|| panic!("{path}: {body}"))
            .keys()
            .cloned()
            .collect();
        keys.sort();
        assert_eq!(keys, vec!["data", "next_cursor"], "{path}: {body}");
        assert!(body["data"].is_array(), "{path}: {body}");
    }
    // An empty list has no next page.
    let (projects, cursor) = page(&app, &t, "/v1/projects").await;
    assert!(projects.is_empty());
    assert_eq!(cursor, None);
}

#[tokio::test]
async fn list_limit_out_of_1_to_100_is_422_validation_error() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    for path in ["/v1/projects", "/v1/assets", "/v1/credits/ledger"] {
        for limit in ["0", "101", "abc", "-1", "1.5"] {
            let r = get(&app, &t, &format!("{path}?limit={limit}")).await;
            let message = expect_error(
                r,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                &format!("{path}?limit={limit}"),
            )
            .await;
            assert!(message.contains("limit"), "{message:?} does not name limit");
        }
        for limit in ["1", "100"] {
            let r = get(&app, &t, &format!("{path}?limit={limit}")).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}?limit={limit}");
        }
    }
}

#[tokio::test]
async fn list_limit_defaults_to_50() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    for i in 0..51 {
        create_project(&app, &t, &format!("p{i}")).await;
    }
    let (first, cursor) = page(&app, &t, "/v1/projects").await;
    assert_eq!(first.len(), 50);
    let cursor = cursor.expect("a 51st project exists");
    let (rest, end) = page(&app, &t, &format!("/v1/projects?cursor={cursor}")).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(end, None);
    let (all, end) = page(&app, &t, "/v1/projects?limit=100").await;
    assert_eq!(all.len(), 51);
    assert_eq!(end, None);
    let (one, more) = page(&app, &t, "/v1/projects?limit=1").await;
    assert_eq!(one.len(), 1);
    assert!(more.is_some());
}

#[tokio::test]
async fn lists_are_newest_first_with_id_tie_break() {
    let app = TestApp::spawn().await;
    let t = app.tenant(1).await;
    tick().await;
    let mut projects = Vec::new();
    for i in 0..4 {
        projects.push(create_project(&app, &t, &format!("p{i}")).await);
        tick().await;
    }
    let (listed, _) = page(&app, &t, "/v1/projects").await;
    assert_newest_first(&listed, "projects");
    let mut expected = ids(&projects);
    expected.reverse();
    assert_eq!(ids(&listed), expected, "projects newest first");

    // Assets: three, 0.5 s each (1 credit): the first takes the only credit, the other two
    // wait in pending_payment; one top-up then settles both in one transaction, so the top-up
    // entry and two charges may share their created_at: the id breaks the tie.
    let project = projects[0]["id"].as_str().unwrap();
    let bytes = wav(500, 8_000);
    let mut assets = Vec::new();
    for _ in 0..3 {
        assets.push(app.asset(&t, project, bytes.len()).await);
        tick().await;
    }
    for (asset, url) in &assets {
        app.upload_all(&t, url, &bytes, 1 << 20).await;
        app.settled(&t, asset["id"].as_str().unwrap()).await;
        tick().await;
    }
    let (listed, _) = page(&app, &t, "/v1/assets").await;
    assert_newest_first(&listed, "assets");
    let expected: Vec<String> = assets
        .iter()
        .rev()
        .map(|(a, _)| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids(&listed), expected, "assets newest first");
    app.top_up(&t.account_id, 5).await;
    let (ledger, _) = page(&app, &t, "/v1/credits/ledger").await;
    assert_eq!(ledger.len(), 5, "{ledger:?}");
    assert_newest_first(&ledger, "ledger");
    // Entries posted in one step (the top-up and the two charges it settles) read in posting
    // order: each balance_after is the older entry's balance_after plus this amount.
    for pair in ledger.windows(2) {
        assert_eq!(
            pair[0]["balance_after"].as_i64().unwrap() - pair[0]["amount"].as_i64().unwrap(),
            pair[1]["balance_after"].as_i64().unwrap(),
            "ledger is a running balance newest first: {ledger:?}"
        );
    }
    let paged_one_by_one = visit_all(&app, &t, "/v1/credits/ledger", 1).await;
    assert_eq!(
        paged_one_by_one,
        ids(&ledger),
        "paging one by one must follow the same order through ties"
    );
}

#[tokio::test]
async fn next_cursor_is_null_exactly_when_no_further_item_exists() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    for i in 0..4 {
        create_project(&app, &t, &format!("p{i}")).await;
    }
    // 4 items, limit 2: the second page holds the last two and says so.
    let (p1, c1) = page(&app, &t, "/v1/projects?limit=2").await;
    assert_eq!(p1.len(), 2);
    let c1 = c1.expect("more after the first page");
    let (p2, c2) = page(&app, &t, &format!("/v1/projects?limit=2&cursor={c1}")).await;
    assert_eq!(p2.len(), 2);
    assert_eq!(c2, None, "no item after the 4th, yet next_cursor is set");
    // limit 4 and 5: everything on one page, null.
    for limit in [4, 5] {
        let (all, c) = page(&app, &t, &format!("/v1/projects?limit={limit}")).await;
        assert_eq!(all.len(), 4);
        assert_eq!(c, None, "limit={limit}");
    }
    // limit 3: a cursor, then one item and null.
    let (p1, c1) = page(&app, &t, "/v1/projects?limit=3").await;
    assert_eq!(p1.len(), 3);
    let c1 = c1.expect("a 4th item exists");
    let (p2, c2) = page(&app, &t, &format!("/v1/projects?limit=3&cursor={c1}")).await;
    assert_eq!(p2.len(), 1);
    assert_eq!(c2, None);
}

/// Pages through `path` with `limit`; returns the ids seen, in order.
async fn visit_all(app: &TestApp, t: &Tenant, path: &str, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut q = format!("limit={limit}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let (data, next) = page(app, t, &with_query(path, &q)).await;
        seen.extend(ids(&data));
        match next {
            None => return seen,
            Some(c) => cursor = Some(c),
        }
    }
    panic!("{path}: paging does not end");
}

#[tokio::test]
async fn paging_visits_every_item_once_while_rows_are_inserted() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let mut originals_projects = HashSet::new();
    originals_projects.insert(project.clone());
    for i in 0..6 {
        let p = create_project(&app, &t, &format!("p{i}")).await;
        originals_projects.insert(p["id"].as_str().unwrap().to_owned());
    }
    let mut originals_assets = HashSet::new();
    for _ in 0..7 {
        let (a, _) = app.asset(&t, &project, 1000).await;
        originals_assets.insert(a["id"].as_str().unwrap().to_owned());
    }
    let (full_projects, _) = page(&app, &t, "/v1/projects?limit=100").await;
    let (full_assets, _) = page(&app, &t, "/v1/assets?limit=100").await;

    for (path, originals, full) in [
        ("/v1/projects", &originals_projects, ids(&full_projects)),
        ("/v1/assets", &originals_assets, ids(&full_assets)),
    ] {
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let q = match &cursor {
                None => "limit=2".to_owned(),
                Some(c) => format!("limit=2&cursor={c}"),
            };
            let (data, next) = page(&app, &t, &with_query(path, &q)).await;
            seen.extend(ids(&data));
            pages += 1;
            assert!(pages < 50, "{path}: paging does not end");
            // Insert new rows between pages.
            if path == "/v1/projects" {
                create_project(&app, &t, "inserted").await;
            } else {
                app.asset(&t, &project, 1000).await;
            }
            match next {
                None => break,
                Some(c) => cursor = Some(c),
            }
        }
        let unique: HashSet<_> = seen.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{path}: an item was visited twice"
        );
        assert_eq!(
            &unique, originals,
            "{path}: paging did not visit exactly the items present at the start"
        );
        assert_eq!(seen, full, "{path}: paged order differs from the full list");
    }
    // The page boundaries do not matter either.
    let by3 = visit_all(&app, &t, "/v1/assets", 3).await;
    let (all, _) = page(&app, &t, "/v1/assets?limit=100").await;
    assert_eq!(by3, ids(&all));
}

#[tokio::test]
async fn malformed_cursor_is_422_validation_error() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    app.project(&t).await;
    for path in ["/v1/projects", "/v1/assets", "/v1/credits/ledger"] {
        for cursor in ["garbage!!", "bm9wZQ", "%25%25%25", "MTIzOmFiYy9kZWY"] {
            let r = get(&app, &t, &format!("{path}?cursor={cursor}")).await;
            let message = expect_error(
                r,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                &format!("{path}?cursor={cursor}"),
            )
            .await;
            assert!(
                message.contains("cursor"),
                "{message:?} does not name cursor"
            );
        }
    }
}

// --- Routing ---------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_route_is_404_not_found() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    for (method, path) in [
        (Method::GET, "/v1/nothing-here".to_owned()),
        (Method::GET, "/nothing-here".to_owned()),
        (Method::POST, "/v2/assets".to_owned()),
        (Method::GET, format!("/v1/projects/{project}/assets/extra")),
        (Method::DELETE, "/v1/credits/ledger/x".to_owned()),
    ] {
        let r = app.req(method.clone(), &path, &t.key).send().await.unwrap();
        assert_eq!(
            error_code(r).await,
            (StatusCode::NOT_FOUND, "not_found".to_owned()),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn wrong_method_on_a_known_route_is_405_method_not_allowed() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (asset, _) = app.asset(&t, &project, 1000).await;
    let asset_id = asset["id"].as_str().unwrap();
    for (method, path, allow) in [
        (
            Method::PUT,
            format!("/v1/assets/{asset_id}"),
            "GET, DELETE, OPTIONS",
        ),
        (
            Method::PATCH,
            format!("/v1/assets/{asset_id}"),
            "GET, DELETE, OPTIONS",
        ),
        (Method::PUT, "/v1/assets".to_owned(), "GET, POST, OPTIONS"),
        (
            Method::DELETE,
            "/v1/assets".to_owned(),
            "GET, POST, OPTIONS",
        ),
        (
            Method::PUT,
            format!("/v1/projects/{project}"),
            "GET, DELETE, OPTIONS",
        ),
        (
            Method::PATCH,
            format!("/v1/projects/{project}"),
            "GET, DELETE, OPTIONS",
        ),
        (Method::POST, "/v1/credits".to_owned(), "GET, OPTIONS"),
        (
            Method::DELETE,
            "/v1/credits/ledger".to_owned(),
            "GET, OPTIONS",
        ),
        (Method::GET, "/v1/uploads".to_owned(), "OPTIONS"),
    ] {
        let r = app
            .req(method.clone(), &path, &t.key)
            .json(&json!({"language": "de"}))
            .send()
            .await
            .unwrap();
        // RFC 9110 §15.5.6: a 405 names the methods the resource serves.
        assert_eq!(header_str(&r, "allow"), allow, "{method} {path}");
        assert_eq!(
            error_code(r).await,
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed".to_owned()
            ),
            "{method} {path}"
        );
    }
    // Nothing changed.
    let unchanged = app.get_asset(&t, asset_id).await;
    assert_eq!(unchanged["language"], Value::Null);
    assert_eq!(unchanged["state"], "pending_upload");
}
