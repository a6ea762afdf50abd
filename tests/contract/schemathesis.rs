//! The OpenAPI document against the service (issue #10): Schemathesis 4 generates requests
//! from the served `/openapi.json` (examples, coverage, fuzzing and stateful phases) and runs
//! every check it has (`--checks all`) on the answers. Zero failures is the bar.
//!
//! Its configuration is `tests/schemathesis/schemathesis.toml`: every check that is turned off
//! for an operation, or every status it is told to accept, is named there with the contract
//! rule that makes it so. `tests/schemathesis/hooks.py` gives Schemathesis a generator for the
//! TUS PATCH body (`application/offset+octet-stream`).
//!
//! Installed with `pip install -r tests/schemathesis/requirements.txt` (`make test-deps`); a
//! missing Schemathesis fails the test, never skips it. `ROUGHY_SCHEMATHESIS_SEED` replays a
//! run with another seed (the default is fixed, so a red run is reproducible);
//! `ROUGHY_SCHEMATHESIS_EXAMPLES` sets the examples per operation (default 50);
//! `ROUGHY_SCHEMATHESIS_ARGS` adds options (`--report har --report-dir DIR` keeps every exchange).

use std::path::PathBuf;
use std::process::Command;

use reqwest::Url;

use roughy_tests::media::wav;
use roughy_tests::scripts::python_with;
use roughy_tests::{upload_id, Tenant, TestApp, ADMIN_TOKEN};

/// `tests/schemathesis/`.
fn schemathesis_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemathesis")
}

/// Values Schemathesis cannot find by itself, handed to `schemathesis.toml` as variables: an
/// upload id (upload URLs are links, not ids, so no response names one) and a download link's
/// parameters (signed, so no generated value is ever valid).
#[derive(Default)]
struct Seeds {
    upload_id: Option<String>,
    download: Option<Url>,
}

impl Seeds {
    /// A pending upload and a ready asset of `t`'s.
    async fn of(app: &TestApp, t: &Tenant) -> Self {
        let project = app.project(t).await;
        let (_, upload_url) = app.asset(t, &project, 100_000).await;
        let ready = app.ingest(t, &project, &wav(2_000, 8_000)).await;
        let download = ready["download_url"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            // On S3 the link is a presigned object-store URL, not an operation of this API.
            .filter(|u| u.path().starts_with("/v1/downloads/"));
        Self {
            upload_id: Some(upload_id(&upload_url)),
            download,
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let query = |name: &str| {
            self.download.as_ref().and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            })
        };
        let asset = self
            .download
            .as_ref()
            .and_then(|u| u.path().rsplit('/').next().map(str::to_owned));
        [
            ("ROUGHY_ST_UPLOAD_ID", self.upload_id.clone()),
            ("ROUGHY_ST_DOWNLOAD_ASSET", asset),
            ("ROUGHY_ST_DOWNLOAD_EXT", query("ext")),
            ("ROUGHY_ST_DOWNLOAD_EXPIRES", query("expires")),
            ("ROUGHY_ST_DOWNLOAD_SIG", query("sig")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.unwrap_or_else(|| "none".to_owned())))
        .collect()
    }
}

/// Runs `st run` on the operations whose path matches `paths`, authenticated with `token`;
/// panics with Schemathesis' report unless it ends with no failure.
async fn schemathesis(app: &TestApp, paths: &str, token: &str, seeds: &Seeds) {
    let python = python_with(
        "schemathesis",
        "run `pip install -r tests/schemathesis/requirements.txt`",
    );
    let seed = std::env::var("ROUGHY_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261207".into());
    let examples = std::env::var("ROUGHY_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "50".into());
    let dir = schemathesis_dir();
    let config = dir.join("schemathesis.toml");
    let mut args = vec![
        "-m".to_owned(),
        "schemathesis.cli".to_owned(),
        "--no-color".to_owned(),
        "--config-file".to_owned(),
        config.to_string_lossy().into_owned(),
        "run".to_owned(),
        app.url("/openapi.json"),
        "--checks".to_owned(),
        "all".to_owned(),
        "--max-examples".to_owned(),
        examples,
        "--seed".to_owned(),
        seed.clone(),
        // One worker: Hypothesis' generation is not thread-safe (two workers end in runtime
        // errors from its source inspection).
        "--workers".to_owned(),
        "1".to_owned(),
        "--include-path-regex".to_owned(),
        paths.to_owned(),
        "--header".to_owned(),
        format!("Authorization: Bearer {token}"),
    ];
    // More options for a run by hand, e.g. `--report har --report-dir /tmp/st`.
    if let Ok(extra) = std::env::var("ROUGHY_SCHEMATHESIS_ARGS") {
        args.extend(extra.split_whitespace().map(str::to_owned));
    }
    // Schemathesis keeps a cache of earlier failures under its working directory: each run
    // starts from a clean one, so the seed alone decides what is sent.
    let work = tempfile::tempdir().expect("temp dir");
    let cwd = work.path().to_owned();
    let env = seeds.env();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .args(&args)
            .envs(env)
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", &dir)
            .current_dir(&cwd)
            .output()
    })
    .await
    .unwrap()
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Schemathesis found failures on {paths} (seed {seed}; {}):\n{stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // "Test cases: N generated, N passed": every generated case passed, and there were some.
    let counts = stdout
        .lines()
        .find_map(|l| l.trim().split_once(" generated, "))
        .map(|(generated, rest)| (generated.to_owned(), rest.to_owned()));
    assert!(
        counts
            .as_ref()
            .is_some_and(|(generated, rest)| generated != "0"
                && rest.starts_with(&format!("{generated} passed"))),
        "Schemathesis did not pass every case it generated on {paths} ({counts:?}):\n{stdout}"
    );
}

#[tokio::test]
async fn schemathesis_finds_no_failure_in_the_api_with_every_check() {
    let app = TestApp::spawn().await;
    let t = app.tenant(1_000_000).await;
    let seeds = Seeds::of(&app, &t).await;
    schemathesis(&app, "^/(v1|healthz|readyz)", &t.key, &seeds).await;
}

#[tokio::test]
async fn schemathesis_finds_no_failure_in_the_operator_api_with_every_check() {
    let app = TestApp::spawn().await;
    schemathesis(&app, "^/admin/", ADMIN_TOKEN, &Seeds::default()).await;
}
