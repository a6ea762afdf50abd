//! Contract rules: assets (§4).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use roughy_tests::media::wav;
use roughy_tests::{error_code, header_str, parse_imf_fixdate, upload_id, TestApp};

/// The byte-derived and lifecycle fields that are null on a new asset.
const NULL_ON_CREATE: [&str; 7] = [
    "type",
    "extension",
    "content_type",
    "size_bytes",
    "duration_seconds",
    "error_code",
    "error_message",
];

#[tokio::test]
async fn create_asset_is_201_pending_upload_with_null_byte_fields_and_absolute_upload_url() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let before = OffsetDateTime::now_utc();
    let r = app
        .create_asset_raw(&t, json!({"project_id": project, "size_bytes": 1000}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = header_str(&r, "location");
    let expires = parse_imf_fixdate(&header_str(&r, "upload-expires"));
    assert!(
        header_str(&r, "content-type").starts_with("application/json"),
        "{:?}",
        r.headers()
    );
    let body: Value = r.json().await.unwrap();

    assert!(body["id"].as_str().unwrap().starts_with("ast_"), "{body}");
    assert_eq!(body["project_id"], project.as_str());
    assert_eq!(body["state"], "pending_upload");
    for field in NULL_ON_CREATE {
        assert!(
            body.get(field).is_some_and(Value::is_null),
            "{field} must be present and null: {body}"
        );
    }
    assert!(body["language"].is_null(), "{body}");
    let created = body["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z'), "{created}");
    OffsetDateTime::parse(created, &Rfc3339).unwrap();

    // Absolute, on this server, equal to Location.
    assert_eq!(body["upload_url"], location.as_str());
    assert!(
        location.starts_with(&format!("{}/v1/uploads/", app.base)),
        "{location}"
    );
    assert!(!upload_id(&location).is_empty());

    // Upload-Expires is an IMF-fixdate about 48 h ahead.
    let ahead = expires - before;
    assert!(
        ahead > time::Duration::hours(47)
            && ahead <= time::Duration::hours(48) + time::Duration::minutes(1),
        "Upload-Expires {expires} is {ahead} ahead"
    );
}

#[tokio::test]
async fn create_asset_for_a_missing_project_is_404_project_not_found() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    app.project(&t).await;
    let r = app
        .create_asset_raw(
            &t,
            json!({"project_id": "prj_doesnotexist0000000000", "size_bytes": 1000}),
        )
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::NOT_FOUND, "project_not_found".into())
    );
}

#[tokio::test]
async fn create_asset_for_another_accounts_project_is_404_project_not_found() {
    let app = TestApp::spawn().await;
    let owner = app.tenant(10).await;
    let other = app.tenant(10).await;
    let project = app.project(&owner).await;
    let r = app
        .create_asset_raw(&other, json!({"project_id": project, "size_bytes": 1000}))
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::NOT_FOUND, "project_not_found".into())
    );
    // Nothing was created for either account.
    for t in [&owner, &other] {
        let list = app.get_json(t, "/v1/assets").await;
        assert_eq!(list["data"], json!([]), "{list}");
    }
}

#[tokio::test]
async fn create_asset_with_a_malformed_project_id_is_404_project_not_found() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    for bad in ["not-an-id", "ast_abc", "prj_", "prj_../../etc"] {
        let r = app
            .create_asset_raw(&t, json!({"project_id": bad, "size_bytes": 1000}))
            .await;
        assert_eq!(
            error_code(r).await,
            (StatusCode::NOT_FOUND, "project_not_found".into()),
            "project_id {bad:?}"
        );
    }
}

#[tokio::test]
async fn create_asset_smaller_than_64_bytes_is_422_upload_too_small() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    for size in [0, 1, 63] {
        let r = app
            .create_asset_raw(&t, json!({"project_id": project, "size_bytes": size}))
            .await;
        assert_eq!(
            error_code(r).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "upload_too_small".into()),
            "size {size}"
        );
    }
    let r = app
        .create_asset_raw(&t, json!({"project_id": project, "size_bytes": 64}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "64 bytes is the minimum");
}

#[tokio::test]
async fn create_asset_larger_than_50_gib_is_413_upload_too_large() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    for size in [53_687_091_201_u64, 1 << 40, u64::MAX] {
        let r = app
            .create_asset_raw(&t, json!({"project_id": project, "size_bytes": size}))
            .await;
        assert_eq!(
            error_code(r).await,
            (StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large".into()),
            "size {size}"
        );
    }
    let r = app
        .create_asset_raw(
            &t,
            json!({"project_id": project, "size_bytes": 53_687_091_200_u64}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "exactly 50 GiB is allowed");
    let body: Value = r.json().await.unwrap();
    let head = app.head(&t, body["upload_url"].as_str().unwrap()).await;
    assert_eq!(header_str(&head, "upload-length"), "53687091200");
}

#[tokio::test]
async fn create_asset_with_a_negative_string_or_missing_size_is_422_validation_error() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    for body in [
        json!({"project_id": project, "size_bytes": -1}),
        json!({"project_id": project, "size_bytes": -100_000}),
        json!({"project_id": project, "size_bytes": "1000"}),
        json!({"project_id": project, "size_bytes": 1000.5}),
        json!({"project_id": project, "size_bytes": null}),
        json!({"project_id": project}),
        json!({"size_bytes": 1000}),
    ] {
        let r = app.create_asset_raw(&t, body.clone()).await;
        assert_eq!(
            error_code(r).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error".into()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn create_asset_normalises_language_to_lowercase() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    for (given, stored) in [
        (json!("DE"), json!("de")),
        (json!("En"), json!("en")),
        (json!("fr"), json!("fr")),
        (json!(null), json!(null)),
    ] {
        let r = app
            .create_asset_raw(
                &t,
                json!({"project_id": project, "size_bytes": 1000, "language": given}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "language {given}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["language"], stored, "{body}");
        let got = app.get_asset(&t, body["id"].as_str().unwrap()).await;
        assert_eq!(got["language"], stored, "{got}");
    }
}

#[tokio::test]
async fn create_asset_with_a_bad_language_is_422_validation_error() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    for bad in [
        json!("deu"),
        json!("d1"),
        json!("d"),
        json!(""),
        json!("de-DE"),
        json!("é1"),
        json!(12),
    ] {
        let r = app
            .create_asset_raw(
                &t,
                json!({"project_id": project, "size_bytes": 1000, "language": bad}),
            )
            .await;
        assert_eq!(
            error_code(r).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error".into()),
            "language {bad}"
        );
    }
}

#[tokio::test]
async fn create_asset_with_an_unknown_field_is_422_validation_error() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    for extra in [
        json!({"project_id": project, "size_bytes": 1000, "name": "x"}),
        json!({"project_id": project, "size_bytes": 1000, "type": "audio"}),
        json!({"project_id": project, "size_bytes": 1000, "state": "ready"}),
    ] {
        let r = app.create_asset_raw(&t, extra.clone()).await;
        assert_eq!(
            error_code(r).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error".into()),
            "{extra}"
        );
    }
}

#[tokio::test]
async fn get_asset_has_null_download_url_and_is_not_cuttable_until_ready() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let bytes = wav(1_000, 8_000);
    let (asset, url) = app.asset(&t, &project, bytes.len()).await;
    let id = asset["id"].as_str().unwrap();
    let got = app.get_asset(&t, id).await;
    assert_eq!(got["state"], "pending_upload");
    assert_eq!(got["id"], id);
    assert_eq!(got["upload_url"], url.as_str());
    assert!(got.get("download_url").is_some_and(Value::is_null), "{got}");
    assert_eq!(got["cuttable"], false, "{got}");
    // Still so after the first chunk.
    app.upload_all(&t, &url, &bytes[..100], 100).await;
    let got = app.get_asset(&t, id).await;
    assert!(got["download_url"].is_null(), "{got}");
    assert_eq!(got["cuttable"], false, "{got}");
}

#[tokio::test]
async fn get_ready_asset_has_a_download_url_and_is_cuttable() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let settled = app.ingest(&t, &project, &wav(1_000, 8_000)).await;
    assert_eq!(settled["state"], "ready", "{settled}");
    let got = app.get_asset(&t, settled["id"].as_str().unwrap()).await;
    let link = got["download_url"].as_str().expect("download_url string");
    assert!(link.starts_with("http"), "{link}");
    assert_eq!(got["cuttable"], true, "{got}");
    assert!(got["upload_url"].is_null(), "{got}");
}

#[tokio::test]
async fn get_unknown_or_another_accounts_asset_is_404_not_found() {
    let app = TestApp::spawn().await;
    let owner = app.tenant(10).await;
    let other = app.tenant(10).await;
    let project = app.project(&owner).await;
    let (asset, _) = app.asset(&owner, &project, 1000).await;
    let id = asset["id"].as_str().unwrap();
    let theirs = app.get_asset_raw(&other, id).await;
    let theirs_status = theirs.status();
    let theirs_body: Value = theirs.json().await.unwrap();
    let unknown = app.get_asset_raw(&owner, "ast_doesnotexist000000000").await;
    let unknown_status = unknown.status();
    let unknown_body: Value = unknown.json().await.unwrap();
    assert_eq!(theirs_status, StatusCode::NOT_FOUND);
    assert_eq!(unknown_status, StatusCode::NOT_FOUND);
    assert_eq!(theirs_body["error"]["code"], "not_found");
    assert_eq!(
        roughy_tests::without_request_id(theirs_body),
        roughy_tests::without_request_id(unknown_body),
        "existence must not leak"
    );
    let malformed = app.get_asset_raw(&owner, "garbage").await;
    assert_eq!(
        error_code(malformed).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
}

async fn list(app: &TestApp, t: &roughy_tests::Tenant, query: &str) -> (StatusCode, Value) {
    let r = app
        .req(Method::GET, &format!("/v1/assets{query}"), &t.key)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data array: {list}"))
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_assets_is_newest_first() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let mut created = Vec::new();
    for _ in 0..4 {
        let (a, _) = app.asset(&t, &project, 1000).await;
        created.push(a["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (status, body) = list(&app, &t, "").await;
    assert_eq!(status, StatusCode::OK);
    created.reverse();
    assert_eq!(ids(&body), created);
    assert!(body["next_cursor"].is_null(), "{body}");
    let stamps: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["created_at"].as_str().unwrap())
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(stamps, sorted, "created_at descending");
}

#[tokio::test]
async fn list_assets_filters_by_project_id() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let p1 = app.project(&t).await;
    let p2 = app.project(&t).await;
    let (a1, _) = app.asset(&t, &p1, 1000).await;
    let (a2, _) = app.asset(&t, &p2, 1000).await;
    let (a3, _) = app.asset(&t, &p1, 1000).await;
    let (status, body) = list(&app, &t, &format!("?project_id={p1}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ids(&body),
        vec![
            a3["id"].as_str().unwrap().to_owned(),
            a1["id"].as_str().unwrap().to_owned()
        ]
    );
    let (_, body) = list(&app, &t, &format!("?project_id={p2}")).await;
    assert_eq!(ids(&body), vec![a2["id"].as_str().unwrap().to_owned()]);
    let (_, all) = list(&app, &t, "").await;
    assert_eq!(ids(&all).len(), 3);
}

#[tokio::test]
async fn list_assets_filters_by_state() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let ready = app.ingest(&t, &project, &wav(500, 8_000)).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    let (pending, _) = app.asset(&t, &project, 1000).await;
    let (_, body) = list(&app, &t, "?state=ready").await;
    assert_eq!(ids(&body), vec![ready["id"].as_str().unwrap().to_owned()]);
    for item in body["data"].as_array().unwrap() {
        assert_eq!(item["state"], "ready");
    }
    let (_, body) = list(&app, &t, "?state=pending_upload").await;
    assert_eq!(ids(&body), vec![pending["id"].as_str().unwrap().to_owned()]);
    let (status, body) = list(&app, &t, "?state=failed").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], json!([]));
    let (_, body) = list(&app, &t, &format!("?state=ready&project_id={project}")).await;
    assert_eq!(ids(&body).len(), 1);
}

#[tokio::test]
async fn list_assets_with_an_unknown_state_is_422_validation_error() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    for bad in ["bogus", "READY", "deleted", "pending"] {
        let r = app
            .req(Method::GET, &format!("/v1/assets?state={bad}"), &t.key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(r).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error".into()),
            "state={bad}"
        );
    }
}

#[tokio::test]
async fn list_pending_upload_finds_a_lost_upload_and_its_upload_url() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let bytes = wav(1_000, 8_000);
    let (asset, location) = app.asset(&t, &project, bytes.len()).await;
    app.upload_all(&t, &location, &bytes[..4_000], 4_000).await;
    // The client lost the create response: it finds the upload by listing.
    let (status, body) = list(&app, &t, "?state=pending_upload").await;
    assert_eq!(status, StatusCode::OK);
    let items = body["data"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["id"], asset["id"]);
    let url = items[0]["upload_url"].as_str().expect("upload_url");
    assert_eq!(url, location);
    // And resumes from it.
    let offset = app.offset(&t, url).await;
    assert_eq!(offset, 4_000);
    app.upload_from(&t, url, &bytes, 4_000, 100_000).await;
    let settled = app.settled(&t, asset["id"].as_str().unwrap()).await;
    assert_eq!(settled["state"], "ready", "{settled}");
}

#[tokio::test]
async fn first_chunk_sets_type_content_type_and_extension_from_the_bytes() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let bytes = wav(1_000, 8_000);
    let (asset, url) = app.asset(&t, &project, bytes.len()).await;
    app.upload_all(&t, &url, &bytes[..64], 64).await;
    let got = app.get_asset(&t, asset["id"].as_str().unwrap()).await;
    assert_eq!(got["state"], "pending_upload", "{got}");
    assert_eq!(got["type"], "audio", "{got}");
    assert_eq!(got["content_type"], "audio/wav", "{got}");
    assert_eq!(got["extension"], "wav", "{got}");
    assert!(
        got["size_bytes"].is_null(),
        "size_bytes null while pending: {got}"
    );
    assert!(got["duration_seconds"].is_null(), "{got}");
    assert_eq!(got["upload_url"], url.as_str());
}

#[tokio::test]
async fn finalised_asset_has_null_upload_url_and_its_size_bytes_set() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let bytes = wav(1_000, 8_000);
    let (asset, url) = app.asset(&t, &project, bytes.len()).await;
    app.upload_all(&t, &url, &bytes, 6_000).await;
    let id = asset["id"].as_str().unwrap();
    let got = app.get_asset(&t, id).await;
    assert_ne!(got["state"], "pending_upload", "{got}");
    assert!(got["upload_url"].is_null(), "{got}");
    assert_eq!(got["size_bytes"], json!(bytes.len()), "{got}");
    let settled = app.settled(&t, id).await;
    assert!(settled["upload_url"].is_null(), "{settled}");
    assert_eq!(settled["size_bytes"], json!(bytes.len()), "{settled}");
    let (_, listed) = list(&app, &t, "").await;
    assert!(listed["data"][0]["upload_url"].is_null(), "{listed}");
    assert_eq!(listed["data"][0]["size_bytes"], json!(bytes.len()));
}

async fn delete_asset(app: &TestApp, t: &roughy_tests::Tenant, id: &str) -> reqwest::Response {
    app.req(Method::DELETE, &format!("/v1/assets/{id}"), &t.key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn delete_asset_is_204_and_then_get_is_404() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let settled = app.ingest(&t, &project, &wav(500, 8_000)).await;
    let id = settled["id"].as_str().unwrap();
    let r = delete_asset(&app, &t, id).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());
    assert_eq!(
        error_code(app.get_asset_raw(&t, id).await).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let (_, listed) = list(&app, &t, "").await;
    assert_eq!(listed["data"], json!([]));
}

#[tokio::test]
async fn second_delete_of_an_asset_is_404_not_found() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (asset, _) = app.asset(&t, &project, 1000).await;
    let id = asset["id"].as_str().unwrap();
    assert_eq!(
        delete_asset(&app, &t, id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        error_code(delete_asset(&app, &t, id).await).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
}

#[tokio::test]
async fn delete_asset_purges_its_stored_bytes() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    // A finished object.
    let done = app.ingest(&t, &project, &wav(500, 8_000)).await;
    let done_id = done["id"].as_str().unwrap();
    assert!(
        !app.blob_files_named(done_id).is_empty(),
        "the finished object is stored under {:?}",
        app.blob_dir()
    );
    // A partial upload.
    let bytes = wav(1_000, 8_000);
    let (partial, url) = app.asset(&t, &project, bytes.len()).await;
    let partial_id = partial["id"].as_str().unwrap();
    app.upload_all(&t, &url, &bytes[..5_000], 5_000).await;
    let staged = [
        app.blob_files_named(partial_id),
        app.blob_files_named(&upload_id(&url)),
    ]
    .concat();
    assert!(!staged.is_empty(), "the partial upload is staged");

    for id in [done_id, partial_id] {
        assert_eq!(
            delete_asset(&app, &t, id).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        app.blob_files_named(done_id),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        app.blob_files_named(partial_id),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        app.blob_files_named(&upload_id(&url)),
        Vec::<std::path::PathBuf>::new()
    );
}

#[tokio::test]
async fn deleting_a_pending_asset_makes_its_upload_410_upload_gone() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let bytes = wav(1_000, 8_000);
    let (asset, url) = app.asset(&t, &project, bytes.len()).await;
    app.upload_all(&t, &url, &bytes[..100], 100).await;
    assert_eq!(
        delete_asset(&app, &t, asset["id"].as_str().unwrap())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let head = app.head(&t, &url).await;
    assert_eq!(head.status(), StatusCode::GONE);
    assert_eq!(
        error_code(app.patch(&t, &url, 100, bytes[100..200].to_vec()).await).await,
        (StatusCode::GONE, "upload_gone".into())
    );
}

#[tokio::test]
async fn put_or_patch_on_an_asset_is_405_method_not_allowed() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (asset, _) = app.asset(&t, &project, 1000).await;
    let id = asset["id"].as_str().unwrap();
    for method in [Method::PUT, Method::PATCH] {
        let r = app
            .req(method.clone(), &format!("/v1/assets/{id}"), &t.key)
            .json(&json!({"language": "de"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(r).await,
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into()),
            "{method}"
        );
    }
    let got = app.get_asset(&t, id).await;
    assert!(got["language"].is_null(), "language is immutable: {got}");
}

#[tokio::test]
async fn creating_past_the_pending_upload_limit_is_429_and_creates_nothing() {
    let app = TestApp::spawn_with(|c| c.uploads.rules.max_pending_uploads = 2).await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let bytes = wav(1_000, 8_000);
    let (first, first_url) = app.asset(&t, &project, bytes.len()).await;
    app.asset(&t, &project, bytes.len()).await;
    let refused = app
        .create_asset_raw(
            &t,
            json!({"project_id": project, "size_bytes": bytes.len()}),
        )
        .await;
    assert_eq!(
        error_code(refused).await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_pending_uploads".into()
        )
    );
    let listed = app
        .req(Method::GET, "/v1/assets", &t.key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");
    // Another account has its own limit.
    let other = app.tenant(100).await;
    let theirs = app.project(&other).await;
    app.asset(&other, &theirs, bytes.len()).await;
    // A finished upload is no longer pending: room for one more.
    app.upload_all(&t, &first_url, &bytes, bytes.len()).await;
    assert_ne!(
        app.get_asset(&t, first["id"].as_str().unwrap()).await["state"],
        "pending_upload"
    );
    app.asset(&t, &project, bytes.len()).await;
}
