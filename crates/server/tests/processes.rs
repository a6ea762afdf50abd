//! The real `roughy-server` binary as separate processes: several processes on one database
//! and one blob store, crashes (`kill -9`) and restarts.
//!
//! Each test gets its own database in the throwaway PostgreSQL cluster of the test run, except
//! the restart test, which runs the service on its embedded defaults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use roughy_media::synth::wav;

const ADMIN: &str = "process-test-admin";

/// One `roughy-server` process.
struct Server {
    child: Child,
    base: String,
    data_dir: PathBuf,
}

/// What several processes share: a database, the blob store, the signing key.
#[derive(Clone)]
struct Shared {
    database_url: Option<String>,
    blobs: PathBuf,
}

impl Server {
    /// Starts the binary with its own data dir and a free port; waits for `/readyz`.
    async fn start(shared: &Shared, data_dir: &Path, extra: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(data_dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(data_dir.join("server.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_roughy-server"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("ROUGHY_BIND", format!("127.0.0.1:{port}"))
            .env("ROUGHY_DATA_DIR", data_dir)
            .env(
                "ROUGHY_STORAGE_URL",
                format!("file://{}", shared.blobs.display()),
            )
            .env("ROUGHY_SIGNING_KEY", "process-test-signing-key")
            .env("ROUGHY_ADMIN_TOKEN", ADMIN)
            .env("ROUGHY_DB_POOL_SIZE", "4")
            .env("ROUGHY_HTTP_WORKERS", "2")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        if let Some(url) = &shared.database_url {
            command.env("DATABASE_URL", url);
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().expect("roughy-server starts");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_owned(),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let client = Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("roughy-server did not become ready; log:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// `kill -9`: no shutdown of any kind.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for a graceful exit.
    fn terminate(mut self) {
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
struct Api {
    client: Client,
    key: String,
}

impl Api {
    /// A new account with `credits` and its key, made through `server`'s operator API.
    async fn tenant(server: &Server, credits: i64) -> Self {
        let client = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let admin = |m: Method, p: String| {
            client
                .request(m, format!("{}{p}", server.base))
                .bearer_auth(ADMIN)
        };
        let account: Value = admin(Method::POST, "/admin/v1/accounts".into())
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let account_id = account["id"].as_str().unwrap().to_owned();
        let key: Value = admin(
            Method::POST,
            format!("/admin/v1/accounts/{account_id}/api-keys"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let r = admin(
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

    async fn json(&self, method: Method, url: String, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, url).bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// A project and an asset of `size` bytes on `server`: `(asset id, upload URL)`.
    async fn asset(&self, server: &Server, size: usize) -> (String, String) {
        let (status, project) = self
            .json(Method::POST, format!("{}/v1/projects", server.base), None)
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let r = self
            .client
            .post(format!("{}/v1/assets", server.base))
            .bearer_auth(&self.key)
            .json(&json!({"project_id": project["id"], "size_bytes": size}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let asset: Value = r.json().await.unwrap();
        (asset["id"].as_str().unwrap().to_owned(), location)
    }

    /// The upload URL as served by another process (same path, other base).
    fn via(server: &Server, upload_url: &str) -> String {
        let path = upload_url.split_once("/v1/").map(|(_, p)| p).unwrap();
        format!("{}/v1/{path}", server.base)
    }

    async fn head(&self, url: &str) -> u64 {
        let r = self
            .client
            .head(url)
            .bearer_auth(&self.key)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "HEAD {url}");
        r.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    async fn patch(&self, url: &str, offset: u64, bytes: Vec<u8>) -> StatusCode {
        self.client
            .patch(url)
            .bearer_auth(&self.key)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .body(bytes)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Uploads `bytes` from the server's offset on, in `chunk`-byte PATCHes.
    async fn upload(&self, url: &str, bytes: &[u8], chunk: usize) {
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

    async fn asset_state(&self, server: &Server, id: &str) -> Value {
        let (status, asset) = self
            .json(Method::GET, format!("{}/v1/assets/{id}", server.base), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        asset
    }

    /// Waits (up to `within`) until the asset leaves `processing`.
    async fn settled(&self, server: &Server, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let asset = self.asset_state(server, id).await;
            if asset["state"] != "processing" && asset["state"] != "pending_upload" {
                return asset;
            }
            assert!(
                Instant::now() < deadline,
                "asset {id} still {}; log:\n{}",
                asset["state"],
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn charges(&self, server: &Server) -> Vec<Value> {
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

    async fn download(&self, asset: &Value) -> Vec<u8> {
        let url = asset["download_url"]
            .as_str()
            .expect("ready assets have a download_url");
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }
}

async fn shared_database() -> (tempfile::TempDir, Shared) {
    let root = tempfile::tempdir().unwrap();
    let shared = Shared {
        database_url: Some(roughy_postgres::testing::fresh_database_url().await),
        blobs: root.path().join("blobs"),
    };
    (root, shared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_racing_patches_to_one_upload_never_corrupt_the_bytes_or_the_offset() {
    let (root, shared) = shared_database().await;
    let a = Server::start(&shared, &root.path().join("a"), &[]).await;
    let b = Server::start(&shared, &root.path().join("b"), &[]).await;
    let api = Api::tenant(&a, 100).await;
    let bytes = wav(20_000, 8_000);
    let (asset_id, url) = api.asset(&a, bytes.len()).await;
    // The first chunk through A, then two clients race the rest, one through each process,
    // each HEADing and PATCHing the same upload until it is complete.
    assert_eq!(
        api.patch(&url, 0, bytes[..4096].to_vec()).await,
        StatusCode::NO_CONTENT
    );
    let race = |url: String| {
        let (api, bytes) = (&api, &bytes);
        async move {
            let mut accepted = 0;
            loop {
                let offset = api.head(&url).await as usize;
                assert!(offset <= bytes.len());
                if offset == bytes.len() {
                    return accepted;
                }
                let end = (offset + 8192).min(bytes.len());
                match api
                    .patch(&url, offset as u64, bytes[offset..end].to_vec())
                    .await
                {
                    StatusCode::NO_CONTENT => accepted += 1,
                    // Lost the race: the offset moved, the other request took over, or the
                    // lock holder did not let go in time. HEAD and go on.
                    StatusCode::CONFLICT | StatusCode::LOCKED => {}
                    other => panic!("unexpected {other} for PATCH at {offset}"),
                }
            }
        }
    };
    let (via_a, via_b) = tokio::join!(race(url.clone()), race(Api::via(&b, &url)));
    assert!(
        via_a + via_b >= (bytes.len() - 4096) / 8192,
        "{via_a} + {via_b} chunks"
    );
    let asset = api.settled(&a, &asset_id, Duration::from_secs(30)).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_eq!(asset["size_bytes"], bytes.len());
    assert_eq!(
        api.download(&asset).await,
        bytes,
        "the stored object is byte-identical"
    );
    assert_eq!(api.charges(&b).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_jobs_raced_by_the_workers_of_two_processes_are_each_settled_once() {
    let (root, shared) = shared_database().await;
    let a = Server::start(&shared, &root.path().join("a"), &[]).await;
    let b = Server::start(&shared, &root.path().join("b"), &[]).await;
    let api = Api::tenant(&a, 1_000).await;
    let mut assets = Vec::new();
    for i in 0..8u64 {
        // Alternate the finalising process, so both workers are woken and both poll.
        let server = if i % 2 == 0 { &a } else { &b };
        let bytes = wav(61_000 + i * 1_000, 8_000); // 2 credits each
        let (id, url) = api.asset(server, bytes.len()).await;
        api.upload(&Api::via(server, &url), &bytes, 1 << 20).await;
        assets.push(id);
    }
    for id in &assets {
        let asset = api.settled(&a, id, Duration::from_secs(60)).await;
        assert_eq!(asset["state"], "ready", "{asset}");
    }
    let charges = api.charges(&a).await;
    assert_eq!(
        charges.len(),
        assets.len(),
        "one charge per asset: {charges:?}"
    );
    for id in &assets {
        assert_eq!(
            charges
                .iter()
                .filter(|c| c["asset_id"] == id.as_str())
                .count(),
            1,
            "{id}"
        );
    }
    let (_, balance) = api
        .json(Method::GET, format!("{}/v1/credits", b.base), None)
        .await;
    assert_eq!(balance["balance"], 1_000 - 2 * assets.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_processing_then_restart_reaches_ready_and_charges_once() {
    let (root, shared) = shared_database().await;
    let lease = [("ROUGHY_JOB_LEASE_SECS", "2")];
    let a = Server::start(&shared, &root.path().join("a"), &lease).await;
    let api = Api::tenant(&a, 1_000).await;
    // 40 minutes of 8 kHz audio: measuring it (scan and decode) takes a moment.
    let bytes = wav(40 * 60 * 1_000, 8_000);
    let (id, url) = api.asset(&a, bytes.len()).await;
    api.upload(&url, &bytes, 8 << 20).await;
    // The last 204 means: finalised and the job durably queued. Crash at once.
    a.kill9();
    let again = Server::start(&shared, &root.path().join("a"), &lease).await;
    let asset = api.settled(&again, &id, Duration::from_secs(60)).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_eq!(asset["duration_seconds"], "2400.000");
    assert_eq!(api.charges(&again).await.len(), 1);
    assert_eq!(api.download(&asset).await.len(), bytes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_loses_no_acknowledged_byte_and_the_upload_resumes_identically() {
    let (root, shared) = shared_database().await;
    let a = Server::start(&shared, &root.path().join("a"), &[]).await;
    let api = Api::tenant(&a, 100).await;
    let bytes = wav(120_000, 8_000);
    let (id, url) = api.asset(&a, bytes.len()).await;
    let acknowledged = 64 * 1024;
    for start in (0..acknowledged).step_by(16 * 1024) {
        assert_eq!(
            api.patch(&url, start as u64, bytes[start..start + 16 * 1024].to_vec())
                .await,
            StatusCode::NO_CONTENT
        );
    }
    // A PATCH that sends 256 KiB and then stalls; the server is killed while it hangs.
    let sent = 256 * 1024;
    let head = bytes[acknowledged..acknowledged + sent].to_vec();
    let body = stalling_body(head);
    let pending = api
        .client
        .patch(&url)
        .bearer_auth(&api.key)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", acknowledged.to_string())
        .header("Content-Length", (bytes.len() - acknowledged).to_string())
        .body(body)
        .send();
    let in_flight = tokio::spawn(pending);
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.kill9();
    let _ = in_flight.await;
    let again = Server::start(&shared, &root.path().join("a"), &[]).await;
    let url = Api::via(&again, &url);
    let offset = api.head(&url).await as usize;
    assert!(
        offset >= acknowledged,
        "HEAD {offset} < acknowledged {acknowledged}"
    );
    assert!(
        offset <= acknowledged + sent,
        "HEAD {offset} > sent {}",
        acknowledged + sent
    );
    api.upload(&url, &bytes, 1 << 20).await;
    let asset = api.settled(&again, &id, Duration::from_secs(30)).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_eq!(
        api.download(&asset).await,
        bytes,
        "resumed to a byte-identical object"
    );
}

/// A body that yields `head` and then never ends (a client that stalls mid-PATCH).
fn stalling_body(head: Vec<u8>) -> reqwest::Body {
    use futures::StreamExt;
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(head) })
        .chain(futures::stream::pending());
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_defaults_keep_assets_and_bytes_across_a_restart() {
    let root = tempfile::tempdir().unwrap();
    // No DATABASE_URL: the service starts its own cluster under <data dir>/pg.
    let shared = Shared {
        database_url: None,
        blobs: root.path().join("data/blobs"),
    };
    let data = root.path().join("data");
    let first = Server::start(&shared, &data, &[]).await;
    let api = Api::tenant(&first, 10).await;
    let bytes = wav(3_000, 8_000);
    let (id, url) = api.asset(&first, bytes.len()).await;
    api.upload(&url, &bytes, 1 << 20).await;
    let asset = api.settled(&first, &id, Duration::from_secs(30)).await;
    assert_eq!(asset["state"], "ready");
    first.terminate();

    let second = Server::start(&shared, &data, &[]).await;
    let asset = api.asset_state(&second, &id).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_eq!(asset["duration_seconds"], "3.000");
    assert_eq!(api.download(&asset).await, bytes);
    second.terminate();
}
