//! The web console at `/console` (issue #10), in a real browser: headless Chromium from the
//! machine's `chromium` package, driven by Playwright (`tests/browser/console.py`). The flow:
//! key by keyboard, project, upload with progress, pause, reload and resume, ready with its
//! duration and charge, download byte-identical, delete, cancel.
//!
//! Installed with `pip install -r tests/browser/requirements.txt` (`make test-deps`) and
//! `apt-get install chromium` (`.ci/run`); never `playwright install`. A missing part fails
//! the test (it is never skipped). `ROUGHY_CONSOLE_SCREENSHOT=<png>` keeps the screenshot of
//! the finished upload (the README's).

use std::path::PathBuf;
use std::process::Command;

use reqwest::StatusCode;
use roughy_tests::media::wav;
use roughy_tests::scripts::{python_with, run_reporting, PLAYWRIGHT_HINT};
use roughy_tests::{header_str, TestApp};

#[tokio::test]
async fn the_console_page_is_served_with_a_strict_content_security_policy() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/console")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_str(&r, "content-type"), "text/html; charset=utf-8");
    let csp = header_str(&r, "content-security-policy");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("<title>Roughy console</title>"));
    assert!(
        !page.contains("<script src"),
        "no third-party or external script"
    );
}

#[tokio::test]
async fn the_console_uploads_pauses_resumes_after_a_reload_downloads_and_deletes_in_chromium() {
    let python = python_with("playwright.sync_api", PLAYWRIGHT_HINT);
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let media = dir.path().join("console.wav");
    std::fs::write(&media, wav(60_000, 8_000)).expect("write the media file");
    let screenshot = std::env::var("ROUGHY_CONSOLE_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("console.png"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/console.py");
    let args = [
        script.to_string_lossy().into_owned(),
        app.base.clone(),
        t.key.clone(),
        media.to_string_lossy().into_owned(),
        screenshot.to_string_lossy().into_owned(),
    ];
    let mut command = Command::new(&python);
    command.args(&args);
    let report = run_reporting(command).await;
    assert!(
        report.ok(),
        "the console flow failed ({})",
        report.explain()
    );
    assert!(screenshot.is_file(), "the screenshot was taken");
}
