//! TUS clients in a real browser (issue #10): headless Chromium from the machine's `chromium`
//! package, driven by Playwright (`tests/browser/tus_pages.py`), runs tus-js-client and Uppy
//! from their npm browser bundles on a test page of our own (`tests/browser/page/`). The page is
//! served on a port of its own, so it is another origin than the API and every upload request
//! goes through the browser's CORS checks. The stored bytes are checked from here, through the
//! asset's `download_url`.
//!
//! Installed with `npm ci --prefix tests/interop`, `pip install -r tests/browser/requirements.txt`
//! (`make test-deps`) and `apt-get install chromium` (`.ci/run`); never `playwright install`.
//! A missing part fails the test (it is never skipped).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use roughy_tests::media::wav;
use roughy_tests::scripts::{python_with, run_reporting, PLAYWRIGHT_HINT};
use roughy_tests::{header_str, Tenant, TestApp};

const NPM_HINT: &str = "run `npm ci --prefix tests/interop` (from the workspace root)";
const JS: &str = "text/javascript; charset=utf-8";

/// What the page server answers: path → (content type, body).
type Served = HashMap<&'static str, (&'static str, Vec<u8>)>;

/// The test page, its script, the README's retry rule and the clients' browser bundles,
/// served on their own 127.0.0.1 port: another origin than the API.
struct PageServer {
    origin: String,
    handle: actix_web::dev::ServerHandle,
}

impl PageServer {
    async fn start() -> Self {
        let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let interop = tests.join("interop");
        let files: [(&'static str, PathBuf, &'static str); 5] = [
            (
                "/index.html",
                tests.join("browser/page/index.html"),
                "text/html; charset=utf-8",
            ),
            ("/page.mjs", tests.join("browser/page/page.mjs"), JS),
            ("/roughy_retry.mjs", interop.join("roughy_retry.mjs"), JS),
            (
                "/vendor/tus.min.js",
                interop.join("node_modules/tus-js-client/dist/tus.min.js"),
                JS,
            ),
            (
                "/vendor/uppy.min.mjs",
                interop.join("node_modules/uppy/dist/uppy.min.mjs"),
                JS,
            ),
        ];
        let mut served = Served::new();
        for (path, file, content_type) in files {
            let body = std::fs::read(&file).unwrap_or_else(|e| {
                panic!(
                    "{} cannot be read ({e}); for tus-js-client's and Uppy's bundles, {NPM_HINT}",
                    file.display()
                )
            });
            served.insert(path, (content_type, body));
        }
        let served = web::Data::new(served);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(served.clone())
                .default_service(web::to(serve))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { origin, handle }
    }

    fn page(&self) -> String {
        format!("{}/index.html", self.origin)
    }
}

async fn serve(req: HttpRequest, served: web::Data<Served>) -> HttpResponse {
    match served.get(req.path()) {
        Some((content_type, body)) => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header(("Cache-Control", "no-store"))
            .body(body.clone()),
        None => HttpResponse::NotFound().finish(),
    }
}

/// Runs `tus_pages.py` with `job` and returns its JSON report (panics unless it is `ok`).
async fn drive(job: Value) -> Value {
    let python = python_with("playwright.sync_api", PLAYWRIGHT_HINT);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/tus_pages.py");
    let mut command = Command::new(&python);
    command.arg(script).arg(job.to_string());
    let report = run_reporting(command).await;
    assert!(
        report.ok(),
        "the browser scenario {} failed ({})",
        job["scenario"],
        report.explain()
    );
    eprintln!("{}", report.json);
    report.json
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to `name` in `dir`; returns the path as a string.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write the file");
    path.to_string_lossy().into_owned()
}

/// The asset becomes ready and its download (local, or a presigned object-store URL) is
/// byte-identical to `bytes`.
async fn assert_stored(app: &TestApp, t: &Tenant, id: &str, bytes: &[u8]) {
    let settled = app.settled(t, id).await;
    assert_eq!(settled["state"], "ready", "{settled}");
    assert_eq!(settled["size_bytes"], bytes.len(), "{settled}");
    assert_eq!(settled["content_type"], "audio/wav", "{settled}");
    let url = settled["download_url"].as_str().expect("download_url");
    let got = app.client.get(url).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK, "GET {url}");
    let got = got.bytes().await.unwrap();
    assert_eq!(got.len(), bytes.len(), "downloaded length");
    assert_eq!(sha256_hex(&got), sha256_hex(bytes), "downloaded sha256");
}

/// 20 s of 8 kHz 16-bit mono: 320 044 bytes, five 64 KiB PATCHes.
fn media() -> Vec<u8> {
    wav(20_000, 8_000)
}

/// What every scenario starts from: a server, a tenant with a project, the page server on
/// another origin, and the file the page uploads (kept in a temp dir for the test's length).
struct Stage {
    app: TestApp,
    t: Tenant,
    project: String,
    pages: PageServer,
    bytes: Vec<u8>,
    file: String,
    dir: tempfile::TempDir,
}

impl Stage {
    async fn new(name: &str, bytes: Vec<u8>) -> Self {
        let app = TestApp::spawn().await;
        let t = app.tenant(100).await;
        let project = app.project(&t).await;
        let pages = PageServer::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let file = write_file(dir.path(), name, &bytes);
        Self {
            app,
            t,
            project,
            pages,
            bytes,
            file,
            dir,
        }
    }
}

#[tokio::test]
async fn tus_js_client_in_chromium_is_aborted_midway_resumes_from_head_and_stores_identical_bytes()
{
    let Stage {
        app,
        t,
        project,
        pages,
        bytes,
        file,
        dir: _dir,
    } = Stage::new("browser.wav", media()).await;
    let (asset, location) = app.asset(&t, &project, bytes.len()).await;

    let report = drive(json!({
        "scenario": "tus-resume",
        "page": pages.page(),
        "upload_url": location,
        "key": t.key,
        "file": file,
    }))
    .await;
    let resumed_from = report["resumed_from"].as_u64().unwrap();
    assert!(
        resumed_from > 0 && resumed_from < bytes.len() as u64,
        "the new Upload resumes mid-file: {report}"
    );
    assert_eq!(report["head_offset"], resumed_from, "{report}");
    assert!(report["run2_patches"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["progress_events"].as_u64().unwrap() >= 2, "{report}");
    assert_stored(&app, &t, asset["id"].as_str().unwrap(), &bytes).await;
    pages.handle.stop(false).await;
}

#[tokio::test]
async fn uppy_in_chromium_uploads_to_a_pre_created_upload_url_and_stores_identical_bytes() {
    let Stage {
        app,
        t,
        project,
        pages,
        bytes,
        file,
        dir: _dir,
    } = Stage::new("uppy.wav", media()).await;
    let (asset, location) = app.asset(&t, &project, bytes.len()).await;

    let report = drive(json!({
        "scenario": "uppy",
        "page": pages.page(),
        "upload_url": location,
        "key": t.key,
        "file": file,
    }))
    .await;
    // Uppy's Tus plugin was given the 64 KiB chunk size: five PATCHes at least.
    assert!(report["patches"].as_u64().unwrap() >= 5, "{report}");
    assert!(report["progress_events"].as_u64().unwrap() >= 1, "{report}");
    assert_stored(&app, &t, asset["id"].as_str().unwrap(), &bytes).await;
    pages.handle.stop(false).await;
}

/// A direct upload asset bound to `origin`: `(asset, upload URL with its token)`.
async fn direct_asset(
    app: &TestApp,
    t: &Tenant,
    project: &str,
    size: usize,
    origin: &str,
) -> (Value, String) {
    let r = app
        .create_asset_raw(
            t,
            json!({
                "project_id": project,
                "size_bytes": size,
                "direct_upload": true,
                "cors_origin": origin,
            }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "create a direct upload");
    let location = header_str(&r, "location");
    assert!(location.contains("?token="), "{location}");
    (r.json().await.unwrap(), location)
}

#[tokio::test]
async fn a_page_without_the_api_key_uploads_through_a_direct_upload_url_in_chromium_and_cors_refuses_another_origins_url(
) {
    let Stage {
        app,
        t,
        project,
        pages,
        bytes,
        file,
        dir: _dir,
    } = Stage::new("direct.wav", media()).await;
    let (asset, location) = direct_asset(&app, &t, &project, bytes.len(), &pages.origin).await;
    let (refused, refused_url) =
        direct_asset(&app, &t, &project, bytes.len(), "https://app.example.com").await;

    let report = drive(json!({
        "scenario": "direct",
        "page": pages.page(),
        "upload_url": location,
        "key": null,
        "file": file,
        "refused_url": refused_url,
    }))
    .await;
    assert!(report["patches"].as_u64().unwrap() >= 5, "{report}");
    assert_stored(&app, &t, asset["id"].as_str().unwrap(), &bytes).await;
    // Nothing of the refused upload reached the service.
    let head = app
        .client
        .request(Method::HEAD, &refused_url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header_str(&head, "upload-offset"), "0");
    let refused = app.get_asset(&t, refused["id"].as_str().unwrap()).await;
    assert_eq!(refused["state"], "pending_upload", "{refused}");
    pages.handle.stop(false).await;
}

#[tokio::test]
async fn tus_js_client_in_chromium_with_the_readme_retry_rule_shows_unsupported_media_type_after_one_patch(
) {
    let mut text = b"This is a plain text file, not audio or video at all.\n".repeat(2_000);
    text.truncate(100_000);
    let Stage {
        app,
        t,
        project,
        pages,
        bytes,
        file,
        dir: _dir,
    } = Stage::new("notes.txt", text).await;
    let (_, location) = app.asset(&t, &project, bytes.len()).await;

    let report = drive(json!({
        "scenario": "rejected",
        "page": pages.page(),
        "upload_url": location,
        "key": t.key,
        "file": file,
    }))
    .await;
    assert_eq!(
        report["network_requests"],
        json!(["HEAD", "PATCH"]),
        "{report}"
    );
    let head = app.head(&t, &location).await;
    assert_eq!(head.status(), StatusCode::GONE);
    assert_eq!(
        header_str(&head, "upload-gone-reason"),
        "unsupported_media_type"
    );
    pages.handle.stop(false).await;
}
