//! Contract rules: interop. Real, unmodified TUS clients drive the upload URL handed out by
//! `POST /v1/assets` (§5): tus-js-client on Node and tuspy on Python. Each client is interrupted
//! midway, a brand-new client instance on the same URL must find the server's offset with HEAD
//! and finish, and the stored object must be byte-identical to the file.
//!
//! The clients live in `tests/interop/` and are installed with
//! `npm ci --prefix tests/interop` and `pip install -r tests/interop/requirements.txt`.
//! A missing toolchain or module fails the test (it is never skipped). `ROUGHY_INTEROP_NODE` and
//! `ROUGHY_INTEROP_PYTHON` override the `node` / `python3` executables.

use std::path::PathBuf;
use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use roughy_tests::media::wav;
use roughy_tests::TestApp;

const NPM_HINT: &str = "run `npm ci --prefix tests/interop` (from the workspace root)";
const PIP_HINT: &str =
    "run `pip install -r tests/interop/requirements.txt` (from the workspace root)";

/// `tests/interop/`, where the client scripts and their dependency manifests live.
fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

fn executable(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn run(program: &str, args: &[&str]) -> std::io::Result<Output> {
    Command::new(program)
        .args(args)
        .current_dir(interop_dir())
        .output()
}

/// Node and tus-js-client are there, or the test fails saying how to install them.
fn require_tus_js_client() -> String {
    let node = executable("ROUGHY_INTEROP_NODE", "node");
    match run(&node, &["--version"]) {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "tus-js-client interop needs Node.js 18+ as `{node}` ({other:?}); \
             install it, then {NPM_HINT}"
        ),
    }
    let manifest = interop_dir().join("node_modules/tus-js-client/package.json");
    assert!(
        manifest.is_file(),
        "tus-js-client is not installed ({} is missing): {NPM_HINT}",
        manifest.display()
    );
    node
}

/// Python and tuspy are there, or the test fails saying how to install them.
fn require_tuspy() -> String {
    let python = executable("ROUGHY_INTEROP_PYTHON", "python3");
    match run(&python, &["-c", "import tusclient.client"]) {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "tuspy (module `tusclient`) is not importable by `{python}`: {}\n{PIP_HINT}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => {
            panic!("tuspy interop needs Python 3 as `{python}` ({e}); install it, then {PIP_HINT}")
        }
    }
    python
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Creates a ~320 KB WAV asset, lets `program script <url> <key> <file>` upload it with an
/// interruption midway, checks the client's report, then that the asset becomes ready and its
/// download is byte-identical. Returns the client's JSON report.
async fn interrupted_upload_resumes_and_stores_identical_bytes(
    program: String,
    script: &str,
) -> Value {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    // 20 s of 8 kHz 16-bit mono: 320 044 bytes, five 64 KiB PATCHes.
    let bytes = wav(20_000, 8_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("interop.wav");
    std::fs::write(&file, &bytes).expect("write media file");
    let (asset, location) = app.asset(&t, &project, bytes.len()).await;
    let id = asset["id"].as_str().unwrap().to_owned();

    let script_path = interop_dir().join(script);
    let args = [
        script_path.to_string_lossy().into_owned(),
        location.clone(),
        t.key.clone(),
        file.to_string_lossy().into_owned(),
    ];
    let shown = format!("{program} {script} {location} <key> {}", file.display());
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&program, &args)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run `{shown}`: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    assert!(
        out.status.success() && report["ok"] == true,
        "`{shown}` failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let resumed_from = report["resumed_from"].as_u64().unwrap_or(0);
    assert!(
        resumed_from > 0 && resumed_from < bytes.len() as u64,
        "the second client must resume mid-file from HEAD: {report}"
    );
    assert!(report["patches"].as_u64().unwrap_or(0) >= 1, "{report}");

    let settled = app.settled(&t, &id).await;
    assert_eq!(settled["state"], "ready", "{settled}");
    assert_eq!(settled["size_bytes"], bytes.len(), "{settled}");
    assert_eq!(settled["type"], "audio", "{settled}");
    assert_eq!(settled["content_type"], "audio/wav", "{settled}");
    assert!(settled["upload_url"].is_null(), "{settled}");
    let url = settled["download_url"].as_str().expect("download_url");
    let got = app.client.get(url).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    let got = got.bytes().await.unwrap().to_vec();
    assert_eq!(got.len(), bytes.len(), "downloaded length");
    assert_eq!(sha256_hex(&got), sha256_hex(&bytes), "downloaded sha256");
    assert!(
        got == bytes,
        "downloaded bytes differ from the file the client uploaded"
    );
    report
}

#[tokio::test]
async fn tus_js_client_upload_aborted_midway_resumes_from_head_and_stores_identical_bytes() {
    let node = require_tus_js_client();
    let report =
        interrupted_upload_resumes_and_stores_identical_bytes(node, "tus_js_resume.mjs").await;
    eprintln!("tus-js-client: {report}");
}

#[tokio::test]
async fn tuspy_upload_interrupted_midway_resumes_from_head_and_stores_identical_bytes() {
    let python = require_tuspy();
    let report =
        interrupted_upload_resumes_and_stores_identical_bytes(python, "tuspy_resume.py").await;
    eprintln!("tuspy: {report}");
}

/// A file that is not media, uploaded by tus-js-client with the README's `onShouldRetry`
/// (`tests/interop/roughy_retry.mjs`): the refused first PATCH is not retried, and `onError`
/// gets the server's code, not tus-js-client's "unable to resume" of a retried 409.
#[tokio::test]
async fn tus_js_client_with_the_readme_retry_rule_shows_why_a_non_media_upload_was_rejected() {
    let node = require_tus_js_client();
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let bytes = b"This is a plain text file, not audio or video at all. ".repeat(40);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, &bytes).expect("write file");
    let (_, location) = app.asset(&t, &project, bytes.len()).await;
    let script = interop_dir().join("tus_js_rejected.mjs");
    let args = [
        script.to_string_lossy().into_owned(),
        location,
        t.key.clone(),
        file.to_string_lossy().into_owned(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&node, &args)
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    assert_eq!(
        report["ok"],
        true,
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["code"], "unsupported_media_type", "{report}");
    // One HEAD to resume the given URL, one PATCH refused; no HEAD of a retry after it.
    assert_eq!(report["patches"], 1, "the refusal is not retried: {report}");
    assert_eq!(report["heads"], 1, "the refusal is not retried: {report}");
}
