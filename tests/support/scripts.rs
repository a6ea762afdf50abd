//! The tests that drive a real client written in another language (Playwright in Python,
//! Schemathesis, tus-js-client under Node) run it as a child process that prints one JSON
//! report line. A missing interpreter or module fails the test, never skips it.

use std::process::{Command, Output};

use serde_json::Value;

/// How to install Playwright for the browser tests (the machine's `chromium` is the browser).
pub const PLAYWRIGHT_HINT: &str =
    "run `pip install -r tests/browser/requirements.txt` (never `playwright install`; the browser is the machine's `chromium`)";

/// The Python the script-driven tests run: `ROUGHY_INTEROP_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("ROUGHY_INTEROP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// [`python()`], once `import {module}` works in it.
///
/// # Panics
/// When it does not, naming `install`: the test fails rather than skips.
pub fn python_with(module: &str, install: &str) -> String {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "`import {module}` fails in `{python}` ({probe:?}): {install}"
    );
    python
}

/// What a script run gave: its output and the last line of its stdout that is JSON (`Null`
/// when none is).
#[derive(Debug)]
pub struct Report {
    /// The exit status and both streams.
    pub output: Output,
    /// The report line.
    pub json: Value,
}

impl Report {
    /// stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Whether the script exited 0 and reported `"ok": true`.
    pub fn ok(&self) -> bool {
        self.output.status.success() && self.json["ok"] == true
    }

    /// Status, stdout and stderr, for a failure message.
    pub fn explain(&self) -> String {
        format!(
            "{}:\nstdout: {}\nstderr: {}",
            self.output.status,
            self.stdout(),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }
}

/// Runs `command` off the async runtime and reads its report line.
///
/// # Panics
/// When the program cannot be started.
pub async fn run_reporting(mut command: Command) -> Report {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the script's thread")
        .expect("the script starts");
    let json = String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    Report { output, json }
}
