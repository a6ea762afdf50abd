//! Contract rules: projects (CONTRACT §3).

use std::path::PathBuf;

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use roughy_tests::media::wav;
use roughy_tests::{error_code, Tenant, TestApp};

async fn create(app: &TestApp, t: &Tenant, body: Value) -> Response {
    app.req(Method::POST, "/v1/projects", &t.key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get_project(app: &TestApp, t: &Tenant, id: &str) -> Response {
    app.req(Method::GET, &format!("/v1/projects/{id}"), &t.key)
        .send()
        .await
        .unwrap()
}

async fn delete_project(app: &TestApp, t: &Tenant, id: &str) -> Response {
    app.req(Method::DELETE, &format!("/v1/projects/{id}"), &t.key)
        .send()
        .await
        .unwrap()
}

fn assert_project_shape(p: &Value, name: &Value) {
    assert!(
        p["id"].as_str().is_some_and(|id| id.starts_with("prj_")),
        "{p}"
    );
    assert_eq!(&p["name"], name, "{p}");
    assert!(p["created_at"].is_string(), "{p}");
    let obj = p.as_object().unwrap();
    for key in ["id", "name", "created_at"] {
        assert!(obj.contains_key(key), "{key} missing: {p}");
    }
}

#[tokio::test]
async fn create_project_is_201_with_id_name_created_at() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let r = create(&app, &t, json!({"name": "Podcast S01"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let p: Value = r.json().await.unwrap();
    assert_project_shape(&p, &json!("Podcast S01"));
    let other: Value = create(&app, &t, json!({"name": "Podcast S01"}))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(p["id"], other["id"], "two projects share an id");
}

#[tokio::test]
async fn project_name_is_optional() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    for body in [json!({}), json!({"name": null})] {
        let r = create(&app, &t, body.clone()).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{body}");
        let p: Value = r.json().await.unwrap();
        assert_project_shape(&p, &Value::Null);
        let got: Value = get_project(&app, &t, p["id"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(got["name"], Value::Null);
    }
}

#[tokio::test]
async fn project_name_is_1_to_200_characters() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    // Accepted: 1 and 200 characters (200 two-byte characters count as 200).
    for name in ["a".to_owned(), "x".repeat(200), "é".repeat(200)] {
        let r = create(&app, &t, json!({ "name": name })).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "name of {} chars",
            name.chars().count()
        );
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["name"], name.as_str());
    }
    // Refused: 0 and 201 characters, and U+0000, which PostgreSQL text cannot hold (a 422,
    // never a 500 from the store).
    for name in [
        String::new(),
        "x".repeat(201),
        "é".repeat(201),
        "a\u{0}b".to_owned(),
    ] {
        let r = create(&app, &t, json!({ "name": name })).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_error")),
            "name of {} chars: {body}",
            name.chars().count()
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("name")),
            "{body}"
        );
    }
    let list: Value = app
        .req(Method::GET, "/v1/projects", &t.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn get_project_returns_it() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let created: Value = create(&app, &t, json!({"name": "n"}))
        .await
        .json()
        .await
        .unwrap();
    let r = get_project(&app, &t, created["id"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got, created);
    assert_eq!(
        error_code(get_project(&app, &t, "prj_neverissued0000000000").await).await,
        (StatusCode::NOT_FOUND, "not_found".to_owned())
    );
    assert_eq!(
        error_code(get_project(&app, &t, "not-an-id").await).await,
        (StatusCode::NOT_FOUND, "not_found".to_owned())
    );
}

#[tokio::test]
async fn list_projects_returns_the_callers_projects() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let mut created = Vec::new();
    for i in 0..3 {
        let p: Value = create(&app, &t, json!({ "name": format!("p{i}") }))
            .await
            .json()
            .await
            .unwrap();
        created.push(p);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let r = app
        .req(Method::GET, "/v1/projects", &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = r.json().await.unwrap();
    created.reverse();
    assert_eq!(list["data"], Value::Array(created), "newest first");
    assert_eq!(list["next_cursor"], Value::Null);
}

#[tokio::test]
async fn delete_project_is_204_then_404() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let id = app.project(&t).await;
    let keep = app.project(&t).await;
    let r = delete_project(&app, &t, &id).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty(), "204 with a body");
    assert_eq!(
        error_code(get_project(&app, &t, &id).await).await,
        (StatusCode::NOT_FOUND, "not_found".to_owned())
    );
    assert_eq!(
        error_code(delete_project(&app, &t, &id).await).await,
        (StatusCode::NOT_FOUND, "not_found".to_owned()),
        "second DELETE"
    );
    let list: Value = app
        .req(Method::GET, "/v1/projects", &t.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![keep.as_str()]);
    // A deleted project takes no new assets.
    let r = app
        .create_asset_raw(&t, json!({"project_id": id, "size_bytes": 1000}))
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::NOT_FOUND, "project_not_found".to_owned())
    );
}

#[tokio::test]
async fn delete_project_deletes_its_assets_and_their_bytes() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let doomed = app.project(&t).await;
    let kept = app.project(&t).await;
    let bytes = wav(500, 8_000);
    // A ready asset (finished object), one mid-upload (staged bytes), one never started.
    let ready = app.ingest(&t, &doomed, &bytes).await;
    assert_eq!(ready["state"], "ready");
    let ready_id = ready["id"].as_str().unwrap().to_owned();
    let (partial, partial_url) = app.asset(&t, &doomed, bytes.len()).await;
    app.upload_all(&t, &partial_url, &bytes[..200], 200).await;
    let partial_id = partial["id"].as_str().unwrap().to_owned();
    let partial_upload = partial_url.rsplit('/').next().unwrap().to_owned();
    let (fresh, _) = app.asset(&t, &doomed, bytes.len()).await;
    let fresh_id = fresh["id"].as_str().unwrap().to_owned();
    let survivor = app.ingest(&t, &kept, &bytes).await;
    let survivor_id = survivor["id"].as_str().unwrap().to_owned();
    let download = ready["download_url"].as_str().unwrap().to_owned();

    assert!(
        !app.blob_files_named(&ready_id).is_empty(),
        "the ready asset's object is not under objects/"
    );
    assert!(
        !app.blob_files_named(&partial_upload).is_empty()
            || !app.blob_files_named(&partial_id).is_empty(),
        "the partial upload's bytes are not under uploads/"
    );

    let r = delete_project(&app, &t, &doomed).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    for id in [&ready_id, &partial_id, &fresh_id] {
        let r = app
            .req(Method::GET, &format!("/v1/assets/{id}"), &t.key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(r).await,
            (StatusCode::NOT_FOUND, "not_found".to_owned()),
            "asset {id} survived its project"
        );
    }
    for id in [&ready_id, &partial_id, &partial_upload] {
        assert_eq!(
            app.blob_files_named(id),
            Vec::<PathBuf>::new(),
            "bytes of {id} survived the project's deletion"
        );
    }
    let list: Value = app
        .req(Method::GET, "/v1/assets", &t.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![survivor_id.as_str()]);
    // The other project's asset and bytes are untouched.
    assert!(!app.blob_files_named(&survivor_id).is_empty());
    assert_eq!(app.get_asset(&t, &survivor_id).await["state"], "ready");
    // The deleted asset's download link no longer serves bytes.
    let r = app.client.get(&download).send().await.unwrap();
    assert!(
        r.status().is_client_error(),
        "download of a deleted asset: {}",
        r.status()
    );
    // Its upload is cancelled: no further PATCH is taken.
    let r = app
        .patch(&t, &partial_url, 200, bytes[200..].to_vec())
        .await;
    assert!(
        r.status().is_client_error(),
        "PATCH after project deletion: {}",
        r.status()
    );
    // Nothing is refunded: one top-up, two charges.
    assert_eq!(app.balance(&t).await, 8);
}

/// The create-project body is optional: no body, `{}` and `null` each make a project without a
/// name (the OpenAPI document declares the body optional and nullable).
#[tokio::test]
async fn a_create_project_body_may_be_absent_empty_or_null() {
    let app = TestApp::spawn().await;
    let t = app.tenant(0).await;
    for body in ["", "{}", "null", " null "] {
        let r = app
            .req(Method::POST, "/v1/projects", &t.key)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{body:?}");
        let project: Value = r.json().await.unwrap();
        assert_eq!(project["name"], Value::Null, "{body:?}");
    }
    // Any other non-object is still refused.
    let r = app
        .req(Method::POST, "/v1/projects", &t.key)
        .header("Content-Type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
