//! The black-box test harness: a real server on a loopback port, driven over HTTP.
//!
//! `TestApp::spawn()` starts the same `Application` the binary runs (memory repository,
//! local-disk blobs in a temp dir, the symphonia prober), with an admin token, a clock the
//! test can move forward, and a short reaper interval.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations,
    reason = "test harness: a failed expectation is the test's failure, and its types are never printed"
)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use roughy_app::ManualClock;
use roughy_server::{Application, Config, Overrides};

pub mod media;
pub mod scripts;

/// The admin token of test servers.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Which adapters the server under test runs on: `ROUGHY_TEST_WIRING=memory` (the default),
/// `postgres` (a fresh database per test in a throwaway cluster shared by the run), or
/// `postgres-s3` (PostgreSQL and a fresh bucket per test in the S3 server the run started:
/// `scripts/s3s-fs run -- …`). `make test` runs the contract suite once with each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wiring {
    /// The in-memory repository, local-disk blobs.
    Memory,
    /// PostgreSQL, local-disk blobs.
    Postgres,
    /// PostgreSQL, blobs in S3.
    PostgresS3,
}

impl Wiring {
    /// The wiring chosen by `ROUGHY_TEST_WIRING`.
    ///
    /// # Panics
    /// On an unknown value: a typo must not silently test the other wiring.
    pub fn from_env() -> Self {
        match std::env::var("ROUGHY_TEST_WIRING").as_deref() {
            Err(_) | Ok("") | Ok("memory") => Self::Memory,
            Ok("postgres") => Self::Postgres,
            Ok("postgres-s3") => Self::PostgresS3,
            Ok(other) => {
                panic!("ROUGHY_TEST_WIRING must be memory, postgres or postgres-s3, not {other:?}")
            }
        }
    }

    /// The `ROUGHY_REPOSITORY` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Postgres | Self::PostgresS3 => "postgres",
        }
    }

    /// Whether blobs live in S3.
    pub fn is_s3(self) -> bool {
        self == Self::PostgresS3
    }
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The S3 server of the run (started by `scripts/s3s-fs run`), with a fresh bucket.
#[derive(Clone, Debug)]
pub struct TestBucket {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The bucket's name.
    pub bucket: String,
    /// The bucket's directory (s3s-fs keeps a bucket as a directory under its root).
    pub dir: PathBuf,
    /// The server's root directory (in-progress multipart uploads live there).
    pub root: PathBuf,
    /// Access key.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

impl TestBucket {
    /// The server's files of in-progress multipart uploads to a key of this bucket that
    /// contains `needle`: the upload's metadata, info and parts (s3s-fs keeps them in its root
    /// as `.bucket-<b64>.object-<b64>.upload-<id>.metadata.json`, `.upload-<id>.json` and
    /// `.upload_id-<id>.part-<n>`).
    pub fn multipart_files(&self, needle: &str) -> Vec<PathBuf> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mine = format!(".bucket-{}.object-", b64.encode(&self.bucket));
        let names: Vec<String> = std::fs::read_dir(&self.root)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let mut uploads = Vec::new();
        let mut out = Vec::new();
        for name in &names {
            let Some(rest) = name.strip_prefix(&mine) else {
                continue;
            };
            let (key, rest) = rest.split_once('.').unwrap_or((rest, ""));
            let key = b64
                .decode(key)
                .map(|k| String::from_utf8_lossy(&k).into_owned());
            if !key.is_ok_and(|k| k.contains(needle)) {
                continue;
            }
            if let Some(id) = rest.strip_prefix("upload-").and_then(|r| r.split_once('.')) {
                out.push(self.root.join(name));
                uploads.push(id.0.to_owned());
            }
        }
        for id in uploads {
            let info = format!(".upload-{id}.json");
            let part = format!(".upload_id-{id}.part-");
            out.extend(
                names
                    .iter()
                    .filter(|n| **n == info || n.starts_with(&part))
                    .map(|n| self.root.join(n)),
            );
        }
        out
    }

    /// A new empty bucket in the run's S3 server.
    ///
    /// # Panics
    /// When no S3 server was started for the run: a test that needs S3 fails, never skips.
    pub fn fresh() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the S3 tests through `scripts/s3s-fs run -- …` (as `make test` does)")
            })
        };
        let root = PathBuf::from(var("ROUGHY_TEST_S3_ROOT"));
        let bucket = format!(
            "t{}",
            roughy_domain::ids::random_base62(12).to_ascii_lowercase()
        );
        let dir = root.join(&bucket);
        std::fs::create_dir_all(&dir).expect("create the bucket directory");
        Self {
            endpoint: var("ROUGHY_TEST_S3_ENDPOINT"),
            bucket,
            dir,
            root,
            access_key: var("ROUGHY_TEST_S3_ACCESS_KEY"),
            secret_key: var("ROUGHY_TEST_S3_SECRET_KEY"),
        }
    }

    /// The service's variables for this bucket under `prefix`.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        [
            (
                "ROUGHY_STORAGE_URL",
                format!("s3://{}/{prefix}", self.bucket),
            ),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// A running server.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A keep-alive client.
    pub client: Client,
    /// The server's clock.
    pub clock: Arc<ManualClock>,
    /// The data dir (blobs live under it, unless in S3).
    pub data_dir: tempfile::TempDir,
    /// The bucket, when blobs live in S3.
    pub bucket: Option<TestBucket>,
    /// The server's database, when it runs on PostgreSQL.
    pub database_url: Option<String>,
    /// `http://<metrics address>/metrics`, when `ROUGHY_METRICS_BIND` was set.
    pub metrics_url: Option<String>,
    handle: actix_web::dev::ServerHandle,
}

/// An account with a key and credits.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// `acc_…`.
    pub account_id: String,
    /// `sk_…`.
    pub key: String,
}

impl TestApp {
    /// Starts a server with the test defaults.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a server after `tweak` adjusted the configuration.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_wired(Wiring::from_env(), tweak).await
    }

    /// Starts a server on `wiring` (not the run's) after `tweak` adjusted the configuration.
    pub async fn spawn_wired(wiring: Wiring, tweak: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let dir = data_dir.path().to_string_lossy().into_owned();
        let database_url = match wiring {
            Wiring::Memory => None,
            Wiring::Postgres | Wiring::PostgresS3 => {
                Some(roughy_postgres::testing::fresh_database_url().await)
            }
        };
        let bucket = wiring.is_s3().then(TestBucket::fresh);
        let s3_env = bucket.as_ref().map(|b| b.env("media")).unwrap_or_default();
        let mut config = Config::from_lookup(|k| match k {
            _ if s3_env.iter().any(|(name, _)| name == k) => s3_env
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone()),
            "ROUGHY_DATA_DIR" => Some(dir.clone()),
            "ROUGHY_ADMIN_TOKEN" => Some(ADMIN_TOKEN.to_owned()),
            "ROUGHY_REAPER_INTERVAL_SECS" => Some("1".to_owned()),
            "ROUGHY_HTTP_WORKERS" => Some("1".to_owned()),
            "ROUGHY_DB_POOL_SIZE" => Some("4".to_owned()),
            // Every test webhook receiver listens on 127.0.0.1.
            "ROUGHY_WEBHOOK_ALLOW_PRIVATE" => Some("1".to_owned()),
            "ROUGHY_REPOSITORY" => Some(wiring.name().to_owned()),
            "DATABASE_URL" => database_url.clone(),
            _ => None,
        })
        .expect("test config");
        tweak(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let clock = Arc::new(ManualClock::new());
        let app = Application::build(
            config,
            Overrides {
                clock: Some(clock.clone()),
                listener: Some(listener),
            },
        )
        .await
        .expect("application builds");
        let base = format!("http://{}", app.addr());
        let metrics_url = app.metrics_addr().map(|a| format!("http://{a}/metrics"));
        let handle = app.server_handle();
        tokio::spawn(app.run());
        let client = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Self {
            base,
            client,
            clock,
            data_dir,
            bucket,
            database_url,
            metrics_url,
            handle,
        }
    }

    /// Whether blobs live in S3 (downloads are presigned object-store URLs).
    pub fn is_s3(&self) -> bool {
        self.bucket.is_some()
    }

    /// Stops the server gracefully.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// The absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the caller's bearer key.
    pub fn req(&self, method: Method, path_or_url: &str, key: &str) -> RequestBuilder {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.url(path_or_url)
        };
        self.client.request(method, url).bearer_auth(key)
    }

    /// A TUS request (`Tus-Resumable: 1.0.0`) with the caller's key.
    pub fn tus(&self, method: Method, url: &str, key: &str) -> RequestBuilder {
        self.req(method, url, key).header("Tus-Resumable", "1.0.0")
    }

    /// An operator request.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// A new account with a key and `credits` (0 for none).
    pub async fn tenant(&self, credits: i64) -> Tenant {
        let account: Value = self
            .admin(Method::POST, "/admin/v1/accounts")
            .json(&json!({"name": "test"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let account_id = account["id"].as_str().unwrap().to_owned();
        let key: Value = self
            .admin(
                Method::POST,
                &format!("/admin/v1/accounts/{account_id}/api-keys"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if credits > 0 {
            self.top_up(&account_id, credits).await;
        }
        Tenant {
            account_id,
            key: key["key"].as_str().unwrap().to_owned(),
        }
    }

    /// Tops an account up.
    pub async fn top_up(&self, account_id: &str, credits: i64) -> Value {
        let r = self
            .admin(
                Method::POST,
                &format!("/admin/v1/accounts/{account_id}/top-ups"),
            )
            .json(&json!({ "credits": credits }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    /// A new project; returns its id.
    pub async fn project(&self, t: &Tenant) -> String {
        let r = self
            .req(Method::POST, "/v1/projects", &t.key)
            .json(&json!({"name": "p"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `POST /v1/assets`, raw.
    pub async fn create_asset_raw(&self, t: &Tenant, body: Value) -> Response {
        self.req(Method::POST, "/v1/assets", &t.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A new asset of `size` bytes; returns `(asset json, Location)`.
    pub async fn asset(&self, t: &Tenant, project: &str, size: usize) -> (Value, String) {
        let r = self
            .create_asset_raw(t, json!({"project_id": project, "size_bytes": size}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "create asset");
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        (r.json().await.unwrap(), location)
    }

    /// One PATCH of `bytes` at `offset`.
    pub async fn patch(&self, t: &Tenant, url: &str, offset: u64, bytes: Vec<u8>) -> Response {
        self.tus(Method::PATCH, url, &t.key)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// HEAD of an upload.
    pub async fn head(&self, t: &Tenant, url: &str) -> Response {
        self.tus(Method::HEAD, url, &t.key).send().await.unwrap()
    }

    /// Uploads `bytes` in chunks of `chunk` bytes; asserts every PATCH is 204.
    pub async fn upload_all(&self, t: &Tenant, url: &str, bytes: &[u8], chunk: usize) {
        let mut offset = 0;
        for part in bytes.chunks(chunk) {
            let r = self.patch(t, url, offset as u64, part.to_vec()).await;
            assert_eq!(
                r.status(),
                StatusCode::NO_CONTENT,
                "PATCH at {offset}: {:?}",
                r.text().await
            );
            offset += part.len();
        }
    }

    /// A `GET` of `path` with the caller's key, its JSON body (any status).
    pub async fn get_json(&self, t: &Tenant, path: &str) -> Value {
        self.req(Method::GET, path, &t.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET /v1/assets/{id}`.
    pub async fn get_asset(&self, t: &Tenant, id: &str) -> Value {
        let r = self
            .req(Method::GET, &format!("/v1/assets/{id}"), &t.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// Polls the asset until it leaves `processing` (10 s at most).
    pub async fn settled(&self, t: &Tenant, id: &str) -> Value {
        for _ in 0..200 {
            let a = self.get_asset(t, id).await;
            if a["state"] != "processing" && a["state"] != "pending_upload" {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("asset {id} did not settle");
    }

    /// Creates, uploads and settles an asset from `bytes`; returns the settled asset.
    pub async fn ingest(&self, t: &Tenant, project: &str, bytes: &[u8]) -> Value {
        let (asset, url) = self.asset(t, project, bytes.len()).await;
        self.upload_all(t, &url, bytes, 1 << 20).await;
        self.settled(t, asset["id"].as_str().unwrap()).await
    }

    /// The balance.
    pub async fn balance(&self, t: &Tenant) -> i64 {
        let v: Value = self
            .req(Method::GET, "/v1/credits", &t.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["balance"].as_i64().unwrap()
    }

    /// Where the blob store keeps finished objects and staged uploads.
    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.path().join("blobs")
    }

    /// Runs the reaper now (after moving the clock).
    pub async fn wait_reaper(&self) {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }

    /// Stored files of the blob store whose name (or, in S3, key) contains `needle` (an asset
    /// or upload id). On local disk: files under `objects/` and `uploads/`. In S3: the bucket's
    /// objects, plus the server's files of in-progress multipart uploads to such a key (their
    /// parts and metadata), so staged parts count as stored bytes.
    pub fn blob_files_named(&self, needle: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        match &self.bucket {
            None => {
                for sub in ["objects", "uploads"] {
                    out.extend(
                        files_under(&self.blob_dir().join(sub))
                            .into_iter()
                            .filter(|p| {
                                p.file_name()
                                    .is_some_and(|n| n.to_string_lossy().contains(needle))
                            }),
                    );
                }
            }
            Some(bucket) => {
                out.extend(files_under(&bucket.dir).into_iter().filter(|p| {
                    p.strip_prefix(&bucket.dir)
                        .is_ok_and(|r| r.to_string_lossy().contains(needle))
                }));
                out.extend(bucket.multipart_files(needle));
            }
        }
        out
    }

    /// `GET /v1/credits/ledger` (first page, up to 100 entries): the `data` array.
    pub async fn ledger(&self, t: &Tenant) -> Vec<Value> {
        let r = self
            .req(Method::GET, "/v1/credits/ledger?limit=100", &t.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "ledger");
        let v: Value = r.json().await.unwrap();
        v["data"].as_array().cloned().unwrap_or_default()
    }

    /// `GET /v1/assets/{id}`, raw.
    pub async fn get_asset_raw(&self, t: &Tenant, id: &str) -> Response {
        self.req(Method::GET, &format!("/v1/assets/{id}"), &t.key)
            .send()
            .await
            .unwrap()
    }

    /// The `Upload-Offset` a HEAD reports (panics unless the HEAD is 200).
    pub async fn offset(&self, t: &Tenant, url: &str) -> u64 {
        let r = self.head(t, url).await;
        assert_eq!(r.status(), StatusCode::OK, "HEAD {url}");
        header_str(&r, "upload-offset").parse().unwrap()
    }

    /// Uploads `bytes[from..]` in chunks of `chunk` bytes, starting at offset `from`; asserts
    /// every PATCH is 204.
    pub async fn upload_from(
        &self,
        t: &Tenant,
        url: &str,
        bytes: &[u8],
        from: usize,
        chunk: usize,
    ) {
        let mut offset = from;
        for part in bytes[from..].chunks(chunk) {
            let r = self.patch(t, url, offset as u64, part.to_vec()).await;
            assert_eq!(
                r.status(),
                StatusCode::NO_CONTENT,
                "PATCH at {offset}: {:?}",
                r.text().await
            );
            offset += part.len();
        }
    }
}

/// The last path segment of an upload URL: the upload id.
pub fn upload_id(url: &str) -> String {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// An error body without its `request_id` (each response has its own), for comparing two
/// answers; other bodies are returned unchanged.
pub fn without_request_id(mut body: Value) -> Value {
    if let Some(error) = body.get_mut("error").and_then(Value::as_object_mut) {
        error.remove("request_id");
    }
    body
}

/// A header's value as a string (panics when absent).
pub fn header_str(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("header {name} missing: {:?}", r.headers()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Parses an RFC 9110 IMF-fixdate (`Wed, 25 Jun 2014 16:00:00 GMT`); panics otherwise.
pub fn parse_imf_fixdate(s: &str) -> time::OffsetDateTime {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s, &format)
        .unwrap_or_else(|e| panic!("not an IMF-fixdate: {s:?}: {e}"))
        .assume_utc()
}

/// The error code of a JSON error response.
/// How a refused download answered: the status and the error code. Our `/v1/downloads`
/// route answers the error envelope; a presigned object-store URL answers S3's XML error,
/// whose `<Code>` is taken.
pub async fn download_refusal(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let code = match serde_json::from_str::<Value>(&body) {
        Ok(v) => v["error"]["code"].as_str().map(str::to_owned),
        Err(_) => body
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(code, _)| code.to_owned()),
    };
    (status, code.unwrap_or_else(|| "<none>".to_owned()))
}

/// The error code of an error response.
pub async fn error_code(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or("<none>")
            .to_owned(),
    )
}
