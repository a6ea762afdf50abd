//! What the tests that drive the real `roughy-server` binary share: a process with its own
//! data dir and port, the variables several processes share, an API client of one account, the
//! media they upload and the checks of what comes back.
//!
//! Each test binary uses only some of it.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers shared by several test binaries, each using a part; a failed expectation is the test's failure"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use roughy_media::synth::wav;

pub const ADMIN: &str = "process-test-admin";

/// One `roughy-server` process.
pub struct Server {
    child: Child,
    pub base: String,
    pub port: u16,
    pub data_dir: PathBuf,
}

/// What several processes share: a database, the blob store, the signing key.
#[derive(Clone)]
pub struct Shared {
    pub database_url: Option<String>,
    /// The blob store's variables: `ROUGHY_STORAGE_URL` and, for S3, the `AWS_*` ones.
    pub storage: Vec<(String, String)>,
}

/// A local blob directory.
pub fn file_storage(dir: &Path) -> Vec<(String, String)> {
    vec![(
        "ROUGHY_STORAGE_URL".to_owned(),
        format!("file://{}", dir.display()),
    )]
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts the binary with its own data dir and a free port; waits for `/readyz`.
    pub async fn start(shared: &Shared, data_dir: &Path, extra: &[(&str, &str)]) -> Self {
        Self::start_on(free_port(), shared, data_dir, extra).await
    }

    /// Starts the binary on `port` (a restarted process keeps its address); waits for
    /// `/readyz`.
    pub async fn start_on(
        port: u16,
        shared: &Shared,
        data_dir: &Path,
        extra: &[(&str, &str)],
    ) -> Self {
        let server = Self::spawn_on(port, shared, data_dir, extra);
        server.wait_ready().await;
        server
    }

    /// Starts the binary on `port` without waiting for it to be ready.
    pub fn spawn_on(port: u16, shared: &Shared, data_dir: &Path, extra: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(data_dir).unwrap();
        // Appended: the log of a restarted process keeps what its predecessors said.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("server.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_roughy-server"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("ROUGHY_BIND", format!("127.0.0.1:{port}"))
            .env("ROUGHY_DATA_DIR", data_dir)
            .env(
                "ROUGHY_SIGNING_KEY",
                "process-test-signing-key-of-32-bytes-at-least",
            )
            .env("ROUGHY_ADMIN_TOKEN", ADMIN)
            .env("ROUGHY_DB_POOL_SIZE", "4")
            .env("ROUGHY_HTTP_WORKERS", "2")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        if let Some(url) = &shared.database_url {
            command.env("DATABASE_URL", url);
        }
        for (k, v) in &shared.storage {
            command.env(k, v);
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().expect("roughy-server starts");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            data_dir: data_dir.to_owned(),
        }
    }

    pub async fn wait_ready(&self) {
        let client = Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("roughy-server did not become ready; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// `kill -9`: no shutdown of any kind.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "graceful exit; log:\n{}", self.log());
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "roughy-server did not stop after SIGTERM; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An API client of one account.
pub struct Api {
    pub client: Client,
    pub key: String,
}

impl Api {
    /// A new account with `credits` and its key, made through `server`'s operator API.
    pub async fn tenant(server: &Server, credits: i64) -> Self {
        Self::tenant_at(&server.base, ADMIN, credits).await
    }

    /// A new account with `credits` and its key, made through the operator API at `base`
    /// with the operator token `admin`.
    pub async fn tenant_at(base: &str, admin: &str, credits: i64) -> Self {
        let client = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let operator =
            |m: Method, p: String| client.request(m, format!("{base}{p}")).bearer_auth(admin);
        let account: Value = operator(Method::POST, "/admin/v1/accounts".into())
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let account_id = account["id"].as_str().unwrap().to_owned();
        let key: Value = operator(
            Method::POST,
            format!("/admin/v1/accounts/{account_id}/api-keys"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let r = operator(
            Method::POST,
            format!("/admin/v1/accounts/{account_id}/top-ups"),
        )
        .json(&json!({ "credits": credits }))
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        Self {
            client,
            key: key["key"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn json(
        &self,
        method: Method,
        url: String,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, url).bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// A project on `base`: its id.
    pub async fn project(&self, base: &str) -> String {
        let (status, project) = self
            .json(Method::POST, format!("{base}/v1/projects"), None)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{project}");
        project["id"].as_str().unwrap().to_owned()
    }

    /// An asset of `size` bytes in `project` on `base`: `(asset id, upload URL)`, or the
    /// transport error when the server did not answer.
    pub async fn try_asset_in(
        &self,
        base: &str,
        project: &str,
        size: usize,
    ) -> reqwest::Result<(String, String)> {
        let r = self
            .client
            .post(format!("{base}/v1/assets"))
            .bearer_auth(&self.key)
            .json(&json!({"project_id": project, "size_bytes": size}))
            .send()
            .await?;
        assert_eq!(r.status(), StatusCode::CREATED);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let asset: Value = r.json().await?;
        Ok((asset["id"].as_str().unwrap().to_owned(), location))
    }

    /// A project and an asset of `size` bytes on `server`: `(asset id, upload URL)`.
    pub async fn asset(&self, server: &Server, size: usize) -> (String, String) {
        let project = self.project(&server.base).await;
        self.try_asset_in(&server.base, &project, size)
            .await
            .unwrap()
    }

    /// The upload URL as served by another process (same path, other base).
    pub fn via(server: &Server, upload_url: &str) -> String {
        let path = upload_url.split_once("/v1/").map(|(_, p)| p).unwrap();
        format!("{}/v1/{path}", server.base)
    }

    /// A HEAD of the upload, whatever it answers.
    pub async fn try_head(&self, url: &str) -> reqwest::Result<reqwest::Response> {
        self.client
            .head(url)
            .bearer_auth(&self.key)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
    }

    pub async fn head(&self, url: &str) -> u64 {
        let r = self.try_head(url).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "HEAD {url}");
        upload_offset(&r).unwrap()
    }

    /// A PATCH of `bytes` at `offset`, whatever it answers.
    pub async fn try_patch(
        &self,
        url: &str,
        offset: u64,
        bytes: Vec<u8>,
    ) -> reqwest::Result<reqwest::Response> {
        self.client
            .patch(url)
            .bearer_auth(&self.key)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .body(bytes)
            .send()
            .await
    }

    pub async fn patch(&self, url: &str, offset: u64, bytes: Vec<u8>) -> StatusCode {
        self.try_patch(url, offset, bytes).await.unwrap().status()
    }

    /// Sends `bytes` through `url` in `chunk`-byte PATCHes from HEAD's offset until the
    /// upload is complete, racing whoever else PATCHes it. Returns the PATCHes accepted.
    pub async fn race_patches(&self, url: String, bytes: &[u8], chunk: usize) -> usize {
        let mut accepted = 0;
        loop {
            let offset = self.head(&url).await as usize;
            assert!(offset <= bytes.len());
            if offset == bytes.len() {
                return accepted;
            }
            let end = (offset + chunk).min(bytes.len());
            match self
                .patch(&url, offset as u64, bytes[offset..end].to_vec())
                .await
            {
                StatusCode::NO_CONTENT => accepted += 1,
                // Lost the race: the offset moved, the other request took over, or the lock
                // holder did not let go in time. HEAD and go on.
                StatusCode::CONFLICT | StatusCode::LOCKED => {}
                other => panic!("unexpected {other} for PATCH at {offset}"),
            }
        }
    }

    /// Uploads `bytes` from the server's offset on, in `chunk`-byte PATCHes.
    pub async fn upload(&self, url: &str, bytes: &[u8], chunk: usize) {
        loop {
            let offset = self.head(url).await;
            if offset as usize == bytes.len() {
                return;
            }
            let end = (offset as usize + chunk).min(bytes.len());
            let status = self
                .patch(url, offset, bytes[offset as usize..end].to_vec())
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "PATCH at {offset}");
        }
    }

    pub async fn asset_state(&self, server: &Server, id: &str) -> Value {
        let (status, asset) = self
            .json(Method::GET, format!("{}/v1/assets/{id}", server.base), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        asset
    }

    /// Waits (up to `within`) until the asset leaves `processing`.
    pub async fn settled(&self, server: &Server, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let asset = self.asset_state(server, id).await;
            if asset["state"] != "processing" && asset["state"] != "pending_upload" {
                return asset;
            }
            assert!(
                Instant::now() < deadline,
                "asset {id} still {} after {within:?}; log:\n{}",
                asset["state"],
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The account's `asset_charge` ledger entries (up to 100).
    pub async fn charges(&self, server: &Server) -> Vec<Value> {
        let (_, ledger) = self
            .json(
                Method::GET,
                format!("{}/v1/credits/ledger?limit=100", server.base),
                None,
            )
            .await;
        ledger["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "asset_charge")
            .cloned()
            .collect()
    }

    pub async fn balance(&self, server: &Server) -> i64 {
        let (status, balance) = self
            .json(Method::GET, format!("{}/v1/credits", server.base), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        balance["balance"].as_i64().unwrap()
    }

    /// Asserts that each of `assets` was charged exactly once, that no other asset was, and
    /// that the balance is `balance`.
    pub async fn assert_charged_once(&self, server: &Server, assets: &[&str], balance: i64) {
        let charges = self.charges(server).await;
        assert_eq!(
            charges.len(),
            assets.len(),
            "one charge per asset: {charges:?}"
        );
        for id in assets {
            assert_eq!(
                charges.iter().filter(|c| c["asset_id"] == *id).count(),
                1,
                "charges of {id}: {charges:?}"
            );
        }
        assert_eq!(self.balance(server).await, balance, "{charges:?}");
    }

    pub async fn download(&self, asset: &Value) -> Vec<u8> {
        let url = asset["download_url"]
            .as_str()
            .expect("ready assets have a download_url");
        let r = self.client.get(url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {url}");
        r.bytes().await.unwrap().to_vec()
    }
}

/// A response's `Upload-Offset`.
pub fn upload_offset(r: &reqwest::Response) -> Option<u64> {
    r.headers()
        .get("upload-offset")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A fresh database of the run's throwaway cluster and a blob directory in a new temp dir.
pub async fn shared_database() -> (tempfile::TempDir, Shared) {
    let root = tempfile::tempdir().unwrap();
    let shared = Shared {
        database_url: Some(roughy_postgres::testing::fresh_database_url().await),
        storage: file_storage(&root.path().join("blobs")),
    };
    (root, shared)
}

/// A WAV of `millis` ms at 8 kHz (16 000 bytes a second) whose samples carry their own
/// position every 4 KiB: a part or tail stored twice, dropped or out of order shows.
pub fn media(millis: u64) -> Vec<u8> {
    let mut bytes = wav(millis, 8_000);
    for at in (44..bytes.len().saturating_sub(8)).step_by(4096) {
        bytes[at..at + 8].copy_from_slice(&(at as u64).to_le_bytes());
    }
    bytes
}

/// The credits a WAV of `millis` ms costs: whole minutes, rounded up.
pub fn credits(millis: u64) -> i64 {
    i64::try_from(millis.div_ceil(60_000).max(1)).unwrap()
}

/// `actual == expected`, reported without printing megabytes.
pub fn assert_same(actual: &[u8], expected: &[u8], what: &str) {
    if actual != expected {
        let first = actual.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "{what}: {} bytes, expected {}; first differing byte at {first:?}",
            actual.len(),
            expected.len()
        );
    }
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A PATCH body of `bytes[..stop]` in 256 KiB chunks, then a stall; `sent` counts what it
/// handed to the connection (at least what the server received).
pub fn counted_body(bytes: &[u8], stop: usize, sent: &Arc<AtomicUsize>) -> reqwest::Body {
    use futures::StreamExt;
    let chunks: Vec<Vec<u8>> = bytes[..stop]
        .chunks(256 * 1024)
        .map(<[u8]>::to_vec)
        .collect();
    let sent = sent.clone();
    let stream = futures::stream::iter(chunks)
        .map(move |c| {
            sent.fetch_add(c.len(), Ordering::SeqCst);
            Ok::<_, std::io::Error>(c)
        })
        .chain(futures::stream::pending());
    reqwest::Body::wrap_stream(stream)
}

/// Starts a PATCH of `bytes[from..]` whose body stops after `bytes[from..stop]`.
pub fn patch_in_flight(
    api: &Api,
    url: &str,
    bytes: &[u8],
    from: usize,
    stop: usize,
    sent: &Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let pending = api
        .client
        .patch(url)
        .bearer_auth(&api.key)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", from.to_string())
        .header("Content-Length", (bytes.len() - from).to_string())
        .body(counted_body(&bytes[from..], stop - from, sent))
        .send();
    tokio::spawn(pending)
}

/// Polls `ok` every 2 ms until it holds; fails with `what` and the log after `within`.
pub async fn wait_for(
    what: &str,
    within: Duration,
    log: impl Fn() -> String,
    ok: impl Fn() -> bool,
) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}; log:\n{}", log());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// 6 MiB parts (the service takes no fewer than 10 000 parts cover its largest upload, so
/// 5 MiB is refused): more parts per upload than the 8 MiB default.
pub const PART: usize = 6 << 20;

/// A bucket of the run's S3 server (`scripts/s3s-fs run -- …`).
pub struct Bucket {
    pub name: String,
    pub prefix: String,
    /// The S3 server's root directory: a bucket is a directory in it, and in-progress
    /// multipart uploads are kept as files in it.
    pub root: PathBuf,
    pub endpoint: String,
}

impl Bucket {
    /// A new empty bucket.
    ///
    /// # Panics
    /// When no S3 server was started for the run: an S3 test fails, never skips.
    pub fn fresh() -> (Self, Vec<(String, String)>) {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: run the S3 tests through `scripts/s3s-fs run -- …` \
                     (as `make test` does)"
                )
            })
        };
        let root = PathBuf::from(var("ROUGHY_TEST_S3_ROOT"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("proc{:x}{nanos:x}", std::process::id());
        std::fs::create_dir_all(root.join(&name)).expect("create the bucket directory");
        let prefix = "ingest".to_owned();
        let endpoint = var("ROUGHY_TEST_S3_ENDPOINT");
        let env = [
            ("ROUGHY_STORAGE_URL", format!("s3://{name}/{prefix}")),
            ("AWS_ENDPOINT", endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", var("ROUGHY_TEST_S3_ACCESS_KEY")),
            ("AWS_SECRET_ACCESS_KEY", var("ROUGHY_TEST_S3_SECRET_KEY")),
            ("ROUGHY_STORAGE_PART_SIZE", PART.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        (
            Self {
                name,
                prefix,
                root,
                endpoint,
            },
            env,
        )
    }

    /// How many parts of in-progress multipart uploads of the asset's object the S3 server
    /// holds (s3s-fs keeps `.bucket-<b64>.object-<b64>.upload-<id>.*` and
    /// `.upload_id-<id>.part-<n>` files in its root).
    pub fn parts_of(&self, asset_id: &str) -> usize {
        let key = format!("{}/objects/{asset_id}", self.prefix);
        let mine = format!(
            ".bucket-{}.object-{}.upload-",
            b64(self.name.as_bytes()),
            b64(key.as_bytes())
        );
        let names: Vec<String> = std::fs::read_dir(&self.root)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let uploads: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_prefix(&mine))
            .filter_map(|rest| {
                rest.split_once('.')
                    .map(|(id, _)| format!(".upload_id-{id}.part-"))
            })
            .collect();
        names
            .iter()
            .filter(|n| uploads.iter().any(|u| n.starts_with(u.as_str())))
            .count()
    }
}

/// Base64, URL-safe alphabet, no padding (how s3s-fs spells names in its files).
fn b64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in input.chunks(3) {
        let byte = |i: usize| u32::from(c.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..=c.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A fresh database and a fresh bucket, shared by the processes of one test.
pub async fn shared_bucket() -> (tempfile::TempDir, Shared, Bucket) {
    let (bucket, storage) = Bucket::fresh();
    let root = tempfile::tempdir().unwrap();
    let shared = Shared {
        database_url: Some(roughy_postgres::testing::fresh_database_url().await),
        storage,
    };
    (root, shared, bucket)
}
