//! Generated clients (issue #10): SDKs a user would generate from `openapi/openapi.json` —
//! Python by openapi-python-client, TypeScript by openapi-typescript + openapi-fetch — are
//! generated fresh, type-checked strictly (an always-present field typed optional fails the
//! check: `tests/clients/*/quickstart.*` assign those fields to non-optional types), and run
//! the quickstart flow against a real server: project, asset, upload, ready, download, delete.
//!
//! Installed with `pip install -r tests/clients/python/requirements.txt` and
//! `npm ci --prefix tests/clients/typescript` (`make test-deps`); a missing tool fails the
//! test (it is never skipped).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use roughy_tests::media::wav;
use roughy_tests::scripts::python_with;
use roughy_tests::TestApp;

const PIP_HINT: &str = "run `pip install -r tests/clients/python/requirements.txt`";
const NPM_HINT: &str = "run `npm ci --prefix tests/clients/typescript`";

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients")
}

fn openapi_document() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json")
}

/// Runs `program args` in `dir`; panics with its output unless it succeeds.
fn run_ok(dir: &Path, program: &str, args: &[&str], what: &str) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run `{program}`: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): `{program} {}`\nstdout: {}\nstderr: {}",
        out.status,
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The last JSON line a client printed.
fn report(out: &Output) -> Value {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null)
}

/// A server, a tenant with 100 credits, and a 2.5 s WAV on disk: `(app, key, file)`.
async fn quickstart_setup(dir: &Path) -> (TestApp, String, PathBuf) {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let file = dir.join("quickstart.wav");
    std::fs::write(&file, wav(2_500, 8_000)).expect("write the media file");
    (app, t.key, file)
}

fn assert_quickstart(report: &Value) {
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["project_name"], "generated sdk", "{report}");
    assert_eq!(report["duration_seconds"], "2.500", "{report}");
    assert_eq!(
        report["balance"], 99,
        "one started minute charged: {report}"
    );
}

#[tokio::test]
async fn a_python_client_generated_by_openapi_python_client_type_checks_and_runs_the_quickstart() {
    let python = python_with("openapi_python_client, mypy", PIP_HINT);
    let dir = tempfile::tempdir().expect("temp dir");
    let document = openapi_document();
    let package = dir.path().join("roughy_client");
    run_ok(
        dir.path(),
        &python,
        &[
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            &document.to_string_lossy(),
            "--output-path",
            &package.to_string_lossy(),
            "--meta",
            "none",
        ],
        "generating the Python client",
    );
    std::fs::copy(
        clients_dir().join("python/quickstart.py"),
        dir.path().join("quickstart.py"),
    )
    .expect("copy quickstart.py");
    run_ok(
        dir.path(),
        &python,
        &[
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--no-incremental",
            "quickstart.py",
        ],
        "type-checking the Python quickstart against the generated client",
    );

    let (app, key, file) = quickstart_setup(dir.path()).await;
    let (base, cwd) = (app.base.clone(), dir.path().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        run_ok(
            &cwd,
            &python,
            &["quickstart.py", &base, &key, &file.to_string_lossy()],
            "the Python quickstart",
        )
    })
    .await
    .unwrap();
    assert_quickstart(&report(&out));
}

#[tokio::test]
async fn a_typescript_client_generated_by_openapi_typescript_type_checks_and_runs_the_quickstart() {
    let node = std::env::var("ROUGHY_INTEROP_NODE").unwrap_or_else(|_| "node".into());
    let sources = clients_dir().join("typescript");
    let modules = sources.join("node_modules");
    assert!(
        modules.join("openapi-typescript/package.json").is_file()
            && modules.join("typescript/package.json").is_file(),
        "openapi-typescript and typescript are not installed under {}: {NPM_HINT}",
        modules.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    for file in ["package.json", "tsconfig.json", "quickstart.ts"] {
        std::fs::copy(sources.join(file), dir.path().join(file)).expect("copy the client files");
    }
    std::os::unix::fs::symlink(&modules, dir.path().join("node_modules")).expect("link modules");
    let document = openapi_document();
    run_ok(
        dir.path(),
        &node,
        &[
            "node_modules/openapi-typescript/bin/cli.js",
            &document.to_string_lossy(),
            "-o",
            "schema.d.ts",
        ],
        "generating the TypeScript types",
    );
    run_ok(
        dir.path(),
        &node,
        &["node_modules/typescript/bin/tsc", "-p", "."],
        "type-checking and compiling the TypeScript quickstart",
    );

    let (app, key, file) = quickstart_setup(dir.path()).await;
    let (base, cwd) = (app.base.clone(), dir.path().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        run_ok(
            &cwd,
            &node,
            &["build/quickstart.js", &base, &key, &file.to_string_lossy()],
            "the TypeScript quickstart",
        )
    })
    .await
    .unwrap();
    assert_quickstart(&report(&out));
}
