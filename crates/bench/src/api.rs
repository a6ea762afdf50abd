//! The service's public and operator HTTP API, as the benchmark uses it; and plain TUS
//! 1.0.0 creation, for the peers (other TUS servers) measured with the same client code.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::wav::Wav;

/// Credits for the benchmark's account: 1 credit per started minute, and a gibibyte of this
/// WAV is 94 minutes; this covers hundreds of gibibytes.
const CREDITS: i64 = 10_000_000;

/// A client of one service with an account, its key and a project; or of a plain TUS server.
#[derive(Clone, Debug)]
pub struct Api {
    client: Client,
    base: String,
    /// The API key (`None` for a plain TUS server: no `Authorization` header).
    key: Option<String>,
    project: String,
    /// A plain TUS server: uploads are created by `POST` to this path (TUS creation).
    tus_creation: Option<String>,
}

/// A created asset (or, on a plain TUS server, upload).
#[derive(Clone, Debug)]
pub struct Created {
    /// `ast_…`; on a plain TUS server the upload's id (the last segment of its URL).
    pub asset_id: String,
    /// The TUS upload URL (`Location`).
    pub upload_url: String,
}

impl Api {
    /// Creates an account with plenty of credits through the operator API, mints its key and
    /// creates a project.
    ///
    /// # Errors
    /// When a request fails or answers something unexpected.
    pub async fn provision(client: Client, base: &str, admin_token: &str) -> anyhow::Result<Self> {
        let admin = |method: Method, path: &str| {
            client
                .request(method, format!("{base}{path}"))
                .bearer_auth(admin_token)
        };
        let account = json_of(
            admin(Method::POST, "/admin/v1/accounts").json(&json!({"name": "roughy-bench"})),
            StatusCode::CREATED,
        )
        .await
        .context("creating an account")?;
        let account_id = str_field(&account, "id")?;
        json_of(
            admin(
                Method::POST,
                &format!("/admin/v1/accounts/{account_id}/top-ups"),
            )
            .json(&json!({ "credits": CREDITS })),
            StatusCode::CREATED,
        )
        .await
        .context("topping up")?;
        let key = json_of(
            admin(
                Method::POST,
                &format!("/admin/v1/accounts/{account_id}/api-keys"),
            ),
            StatusCode::CREATED,
        )
        .await
        .context("minting an API key")?;
        let key = str_field(&key, "key")?;
        let project = json_of(
            client
                .post(format!("{base}/v1/projects"))
                .bearer_auth(&key)
                .json(&json!({"name": "bench"})),
            StatusCode::CREATED,
        )
        .await
        .context("creating a project")?;
        Ok(Self {
            project: str_field(&project, "id")?,
            client,
            base: base.to_owned(),
            key: Some(key),
            tus_creation: None,
        })
    }

    /// An API against a server that answers anything (the discarding sink).
    pub fn unchecked(client: Client, base: &str) -> Self {
        Self {
            client,
            base: base.to_owned(),
            key: Some("sk_sink".to_owned()),
            project: "prj_sink".to_owned(),
            tus_creation: None,
        }
    }

    /// A plain TUS 1.0.0 server (a peer) whose uploads are created at `base` + `path`, without
    /// authentication: [`Api::create_asset`] then sends a TUS creation `POST`, and
    /// [`Api::patch`] the same PATCHes as to the service.
    pub fn tus(client: Client, base: &str, path: &str) -> Self {
        Self {
            client,
            base: base.to_owned(),
            key: None,
            project: String::new(),
            tus_creation: Some(path.to_owned()),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The API key, if any (for `Authorization: Bearer`).
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The project uploads are created in (empty for a plain TUS server).
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The creation path of a plain TUS server (`None`: the service's `POST /v1/assets`).
    pub fn tus_creation(&self) -> Option<&str> {
        self.tus_creation.as_deref()
    }

    fn request(&self, method: Method, path_or_url: &str) -> RequestBuilder {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let request = self.client.request(method, url);
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// `POST /v1/assets` for `size` bytes; on a plain TUS server, a TUS creation `POST` with
    /// `Upload-Length: size`.
    ///
    /// # Errors
    /// Unless the answer is 201 with a `Location` and an id.
    pub async fn create_asset(&self, size: u64) -> anyhow::Result<Created> {
        if let Some(path) = &self.tus_creation {
            return self.create_tus_upload(path, size).await;
        }
        let response = self
            .request(Method::POST, "/v1/assets")
            .json(&json!({"project_id": self.project, "size_bytes": size}))
            .send()
            .await
            .context("POST /v1/assets")?;
        let status = response.status();
        let location = location_of(&response);
        let body: Value = response.json().await.context("reading the created asset")?;
        ensure!(
            status == StatusCode::CREATED,
            "POST /v1/assets: {status} {body}"
        );
        let upload_url = location.context("POST /v1/assets: no Location")?;
        // The sink's Location is a path; the service's is absolute.
        let upload_url = absolute_url(&self.base, &upload_url);
        Ok(Created {
            asset_id: str_field(&body, "id")?,
            upload_url,
        })
    }

    /// TUS creation: `POST path` with `Upload-Length`, no body; 201 with a `Location`.
    async fn create_tus_upload(&self, path: &str, size: u64) -> anyhow::Result<Created> {
        let response = self
            .request(Method::POST, path)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", size.to_string())
            .header(CONTENT_LENGTH, "0")
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let location = location_of(&response);
        if status != StatusCode::CREATED {
            let body = response.text().await.unwrap_or_default();
            bail!("POST {path}: {status} {body}");
        }
        let location = location.with_context(|| format!("POST {path}: no Location"))?;
        let upload_url = absolute_url(&self.base, &location);
        Ok(Created {
            asset_id: upload_id(&upload_url)?,
            upload_url,
        })
    }

    /// One PATCH of `wav[range]` at `range.start`, streamed with a `Content-Length`.
    ///
    /// # Errors
    /// Unless the answer is 204 with `Upload-Offset` = `range.end`.
    pub async fn patch(
        &self,
        upload_url: &str,
        wav: &Wav,
        range: std::ops::Range<u64>,
    ) -> anyhow::Result<()> {
        let response = self
            .request(Method::PATCH, upload_url)
            .header("Tus-Resumable", "1.0.0")
            .header(CONTENT_TYPE, "application/offset+octet-stream")
            .header("Upload-Offset", range.start.to_string())
            .header(CONTENT_LENGTH, (range.end - range.start).to_string())
            .body(wav.body(range.clone()))
            .send()
            .await
            .with_context(|| format!("PATCH {upload_url} at {}", range.start))?;
        let status = response.status();
        let offset = response
            .headers()
            .get("Upload-Offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if status != StatusCode::NO_CONTENT {
            let body = response.text().await.unwrap_or_default();
            bail!("PATCH {upload_url} at {}: {status} {body}", range.start);
        }
        ensure!(
            offset == Some(range.end),
            "PATCH {upload_url}: Upload-Offset {offset:?}, expected {}",
            range.end
        );
        Ok(())
    }

    /// `GET /v1/assets/{id}`.
    ///
    /// # Errors
    /// Unless 200 with a JSON body.
    pub async fn asset(&self, id: &str) -> anyhow::Result<Value> {
        json_of(
            self.request(Method::GET, &format!("/v1/assets/{id}")),
            StatusCode::OK,
        )
        .await
    }

    /// Waits until the asset has been processed and is `ready`; returns it.
    ///
    /// # Errors
    /// When it ends in another state (the WAV was not valid media, or billing refused it) or
    /// is still processing after `timeout`.
    pub async fn ready(&self, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let asset = self.asset(id).await?;
            match asset["state"].as_str() {
                Some("ready") => return Ok(asset),
                Some("processing" | "pending_upload") if started.elapsed() < timeout => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => bail!("asset {id} did not become ready: {asset}"),
            }
        }
    }

    /// `DELETE /v1/assets/{id}`: frees its bytes, so the next upload reuses the same blocks.
    ///
    /// # Errors
    /// Unless 204.
    pub async fn delete_asset(&self, id: &str) -> anyhow::Result<()> {
        let response = self
            .request(Method::DELETE, &format!("/v1/assets/{id}"))
            .send()
            .await
            .context("DELETE /v1/assets")?;
        ensure!(
            response.status() == StatusCode::NO_CONTENT,
            "DELETE /v1/assets/{id}: {}",
            response.status()
        );
        Ok(())
    }

    /// Checks that the stored object of a ready asset is exactly `wav`: its size and SHA-256
    /// (`expected`). Reads the file under `objects_dir` when it is there (cheaper), else
    /// downloads it through the asset's `download_url`.
    ///
    /// # Errors
    /// When the bytes differ or cannot be read.
    pub async fn verify(
        &self,
        asset: &Value,
        objects_dir: &Path,
        wav: &Wav,
        expected: [u8; 32],
    ) -> anyhow::Result<()> {
        let id = str_field(asset, "id")?;
        let path = objects_dir.join(&id);
        let (size, hash) = if path.exists() {
            tokio::task::spawn_blocking(move || hash_file(&path))
                .await
                .context("the hashing task failed")??
        } else {
            let url = str_field(asset, "download_url")?;
            self.hash_download(&url).await?
        };
        ensure!(
            size == wav.size(),
            "asset {id}: {size} bytes stored, {} sent",
            wav.size()
        );
        ensure!(
            hash == expected,
            "asset {id}: stored SHA-256 {} differs from the sent {}",
            hex::encode(hash),
            hex::encode(expected)
        );
        Ok(())
    }

    async fn hash_download(&self, url: &str) -> anyhow::Result<(u64, [u8; 32])> {
        let response = self.client.get(url).send().await.context("download")?;
        ensure!(
            response.status() == StatusCode::OK,
            "download: {}",
            response.status()
        );
        let mut hasher = Sha256::new();
        let mut size = 0;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("download")?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((size, hasher.finalize().into()))
    }
}

/// `location` as an absolute URL: a path is taken relative to `base`.
pub fn absolute_url(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_owned()
    }
}

/// A TUS upload's id: the last segment of its URL's path.
///
/// # Errors
/// When the URL ends in a slash.
pub fn upload_id(upload_url: &str) -> anyhow::Result<String> {
    let path = upload_url.split(['?', '#']).next().unwrap_or_default();
    path.rsplit('/')
        .next()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("no upload id in {upload_url}"))
}

/// The size and SHA-256 of a file.
pub(crate) fn hash_file(path: &Path) -> anyhow::Result<(u64, [u8; 32])> {
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; 1 << 20];
    let mut size = 0;
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buffer[..n]);
    }
    Ok((size, hasher.finalize().into()))
}

/// Sends `request`, requires `status`, and parses the JSON body.
async fn json_of(request: RequestBuilder, status: StatusCode) -> anyhow::Result<Value> {
    let response = request.send().await?;
    let got = response.status();
    let text = response.text().await?;
    ensure!(got == status, "{got} (expected {status}): {text}");
    serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
}

fn str_field(value: &Value, field: &str) -> anyhow::Result<String> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no \"{field}\" in {value}"))
}

/// The `Location` header of a response, when it has a text one.
fn location_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_and_urls() {
        assert_eq!(
            absolute_url("http://127.0.0.1:1", "/files/abc"),
            "http://127.0.0.1:1/files/abc"
        );
        assert_eq!(
            absolute_url("http://127.0.0.1:1", "http://127.0.0.1:1/files/abc"),
            "http://127.0.0.1:1/files/abc"
        );
        assert_eq!(upload_id("http://h/files/abc?x=1").unwrap(), "abc");
        assert_eq!(upload_id("http://h/files/abc").unwrap(), "abc");
        assert!(upload_id("http://h/files/").is_err());
    }
}
