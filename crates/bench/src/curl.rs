//! Small uploads by a new `curl` process per request: what a script or a one-shot client
//! pays, with no connection reuse, next to the one keep-alive client of the other rows.
//!
//! One upload is two processes, one after the other: the creation (`POST /v1/assets` with the
//! API key and a JSON body on the service and the sink, a TUS creation `POST` with
//! `Upload-Length` on a plain TUS server) and one PATCH of the whole file from a file on disk
//! (`--data-binary @file`). `Expect: 100-continue` is turned off, as the keep-alive client
//! does not send it either.

use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, ensure, Context};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::api::{absolute_url, upload_id, Api, Created};

/// Whether a `curl` binary runs here.
pub async fn available() -> bool {
    Command::new("curl")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// One upload of the file at `body` (`size` bytes): a `curl` process for the creation, then
/// one for a PATCH of the whole file.
///
/// # Errors
/// When curl fails or an answer is not the expected 201 / 204 with `Upload-Offset: size`.
pub async fn upload(api: &Api, body: &Path, size: u64) -> anyhow::Result<Created> {
    let created = create(api, size).await?;
    let mut patch = curl(api);
    patch
        .args(["-X", "PATCH"])
        .args(["-H", "Tus-Resumable: 1.0.0"])
        .args(["-H", "Content-Type: application/offset+octet-stream"])
        .args(["-H", "Upload-Offset: 0"])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(&created.upload_url);
    let answer = run(patch).await.context("curl PATCH")?;
    ensure!(
        answer.status == 204,
        "curl PATCH {}: {} {}",
        created.upload_url,
        answer.status,
        answer.body
    );
    let offset = answer.header("upload-offset").and_then(|v| v.parse().ok());
    ensure!(
        offset == Some(size),
        "curl PATCH {}: Upload-Offset {offset:?}, expected {size}",
        created.upload_url
    );
    Ok(created)
}

async fn create(api: &Api, size: u64) -> anyhow::Result<Created> {
    let mut command = curl(api);
    command.args(["-X", "POST"]);
    let url = match api.tus_creation() {
        Some(path) => {
            command
                .args(["-H", "Tus-Resumable: 1.0.0"])
                .args(["-H", &format!("Upload-Length: {size}")])
                .args(["-H", "Content-Length: 0"]);
            format!("{}{path}", api.base())
        }
        None => {
            command
                .args(["-H", "Content-Type: application/json"])
                .arg("--data-binary")
                .arg(json!({"project_id": api.project(), "size_bytes": size}).to_string());
            format!("{}/v1/assets", api.base())
        }
    };
    command.arg(&url);
    let answer = run(command).await.context("curl POST")?;
    ensure!(
        answer.status == 201,
        "curl POST {url}: {} {}",
        answer.status,
        answer.body
    );
    let location = answer
        .header("location")
        .with_context(|| format!("curl POST {url}: no Location"))?;
    let upload_url = absolute_url(api.base(), location);
    let asset_id = if api.tus_creation().is_some() {
        upload_id(&upload_url)?
    } else {
        let body: Value = serde_json::from_str(&answer.body)
            .with_context(|| format!("curl POST {url}: not JSON: {}", answer.body))?;
        body["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("curl POST {url}: no id in {body}"))?
    };
    Ok(Created {
        asset_id,
        upload_url,
    })
}

/// `curl` with the options every request shares: quiet but for errors, the response's head
/// and body on stdout, no `Expect`, the API key when there is one.
fn curl(api: &Api) -> Command {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "-i", "--max-time", "120", "-H", "Expect:"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(key) = api.key() {
        command.args(["-H", &format!("Authorization: Bearer {key}")]);
    }
    command
}

/// A response as `curl -i` prints it.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    /// The value of the header `name` (lower case).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn run(mut command: Command) -> anyhow::Result<Answer> {
    let output = command.output().await.context("starting curl")?;
    if !output.status.success() {
        bail!(
            "curl exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// Parses `curl -i` output: the last response head (after any `100 Continue`), then the body.
fn parse(out: &str) -> anyhow::Result<Answer> {
    let mut rest = out;
    loop {
        let (head, body) = rest
            .split_once("\r\n\r\n")
            .with_context(|| format!("no response head in curl's output: {out:?}"))?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status line in curl's output: {out:?}"))?;
        if status == 100 {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        return Ok(Answer {
            status,
            headers,
            body: body.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads_past_a_continue() {
        let out = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nLocation: /files/abc\r\n\
                   Content-Length: 2\r\n\r\n{}";
        let answer = parse(out).unwrap();
        assert_eq!(answer.status, 201);
        assert_eq!(answer.header("location"), Some("/files/abc"));
        assert_eq!(answer.body, "{}");
        let answer = parse("HTTP/1.1 204 No Content\r\nUpload-Offset: 7\r\n\r\n").unwrap();
        assert_eq!(answer.header("upload-offset"), Some("7"));
    }
}
