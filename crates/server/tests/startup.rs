//! Start-up of the real `roughy-server` binary: what it refuses and why.
//!
//! - Two servers on one `ROUGHY_DATA_DIR` with the embedded PostgreSQL: the second is refused
//!   (exit 2) with a message naming the first and the `DATABASE_URL` that shares its cluster;
//!   two started together initdb once and exactly one serves.
//! - Configuration out of bounds stops start-up with exit 2 naming the variable.
//! - The admin token from the environment is trimmed as the presented one is.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failed expectation is the test's failure"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};

mod common;
use common::Api;

const ADMIN: &str = "startup-test-admin-token";
const SIGNING_KEY: &str = "startup-test-signing-key-of-32-bytes-at-least";
/// What the embedded cluster logs the one time it runs initdb.
const INITDB_LOGGED: &str = "initialised the embedded PostgreSQL cluster";

/// One `roughy-server` process, its output in `<log>`.
struct Server {
    child: Option<Child>,
    base: String,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Spawns the binary on `data_dir` and a free port, with `extra` variables; does not wait.
    fn spawn(data_dir: &Path, log_name: &str, extra: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(data_dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = data_dir
            .parent()
            .unwrap_or(data_dir)
            .join(format!("{log_name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_roughy-server"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("ROUGHY_BIND", format!("127.0.0.1:{port}"))
            .env("ROUGHY_DATA_DIR", data_dir)
            .env("ROUGHY_SIGNING_KEY", SIGNING_KEY)
            .env("ROUGHY_ADMIN_TOKEN", ADMIN)
            .env("ROUGHY_DB_POOL_SIZE", "4")
            .env("ROUGHY_HTTP_WORKERS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().expect("roughy-server starts");
        Self {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_owned(),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status, if the process has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().unwrap().try_wait().unwrap()
    }

    async fn ready(&self, client: &Client) -> bool {
        client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    }

    /// Waits until `/readyz` answers 200.
    async fn wait_ready(&mut self) {
        let client = Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if self.ready(&client).await {
                return;
            }
            if let Some(status) = self.exited() {
                panic!("roughy-server exited ({status}); log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("roughy-server did not become ready; log:\n{}", self.log());
    }

    /// Waits for the process to exit, failing if it serves instead.
    async fn wait_refused(&mut self) -> ExitStatus {
        let client = Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                !self.ready(&client).await,
                "roughy-server started instead of refusing; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "roughy-server neither exited nor served; log:\n{}",
            self.log()
        );
    }

    /// SIGTERM, then a graceful exit.
    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "graceful exit; log:\n{}", self.log());
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!(
            "roughy-server did not stop after SIGTERM; log:\n{}",
            self.log()
        );
    }

    /// `kill -9`: no shutdown of any kind (the embedded PostgreSQL keeps running).
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A test that failed half-way must not leave a PostgreSQL server running on its
        // temporary directory.
        let pid_file = self.data_dir.join("pg/data/postmaster.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
        {
            let _ = Command::new("kill").args(["-INT", pid.trim()]).status();
        }
    }
}

/// The `DATABASE_URL=…` the refusal message prints.
fn shared_url(message: &str) -> String {
    let start = message
        .find("DATABASE_URL=")
        .unwrap_or_else(|| panic!("the message names DATABASE_URL: {message}"))
        + "DATABASE_URL=".len();
    message[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches([',', ';', ')'])
        .to_owned()
}

async fn create_account(client: &Client, base: &str) -> StatusCode {
    client
        .post(format!("{base}/admin/v1/accounts"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_a_running_servers_data_dir_is_refused_and_the_first_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut first = Server::spawn(&data, "first", &[]);
    first.wait_ready().await;

    let mut second = Server::spawn(&data, "second", &[]);
    let status = second.wait_refused().await;
    let message = second.log();
    assert_eq!(status.code(), Some(2), "exit 2; log:\n{message}");
    assert!(
        message.contains(&format!("pid {}", first.pid())),
        "the message names the running process: {message}"
    );
    let url = shared_url(&message);
    assert!(url.starts_with("postgres://"), "{url}");

    // The first is untouched: ready, and it serves requests.
    let client = Client::new();
    assert!(first.ready(&client).await, "log:\n{}", first.log());
    assert_eq!(
        create_account(&client, &first.base).await,
        StatusCode::CREATED
    );

    // The printed URL shares the cluster: a third process on it serves the same data.
    let mut third = Server::spawn(
        &root.path().join("third"),
        "third",
        &[
            ("DATABASE_URL", url.as_str()),
            (
                "ROUGHY_STORAGE_URL",
                &format!("file://{}", data.join("blobs").display()),
            ),
        ],
    );
    third.wait_ready().await;
    assert_eq!(
        create_account(&client, &third.base).await,
        StatusCode::CREATED
    );
    third.terminate();
    assert!(first.ready(&client).await, "log:\n{}", first.log());
    first.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_started_together_on_a_fresh_data_dir_initdb_once_and_one_serves() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut servers = [
        Server::spawn(&data, "a", &[]),
        Server::spawn(&data, "b", &[]),
    ];
    let client = Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Until one has exited and the other answers /readyz.
    let (winner, loser, status) = loop {
        assert!(
            Instant::now() < deadline,
            "no outcome; logs:\n{}\n---\n{}",
            servers[0].log(),
            servers[1].log()
        );
        let exits = [servers[0].exited(), servers[1].exited()];
        let ready = [
            servers[0].ready(&client).await,
            servers[1].ready(&client).await,
        ];
        assert!(
            !(ready[0] && ready[1]),
            "both servers started on one data dir; logs:\n{}\n---\n{}",
            servers[0].log(),
            servers[1].log()
        );
        assert!(
            exits[0].is_none() || exits[1].is_none(),
            "both exited; logs:\n{}\n---\n{}",
            servers[0].log(),
            servers[1].log()
        );
        match (exits, ready) {
            ([None, Some(status)], [true, _]) => break (0, 1, status),
            ([Some(status), None], [_, true]) => break (1, 0, status),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let message = servers[loser].log();
    assert_eq!(status.code(), Some(2), "the loser exits 2; log:\n{message}");
    assert!(
        message.contains(&format!("pid {}", servers[winner].pid())),
        "the loser names the winner: {message}"
    );
    let initdbs = servers
        .iter()
        .map(|s| s.log().matches(INITDB_LOGGED).count())
        .sum::<usize>();
    assert_eq!(
        initdbs,
        1,
        "exactly one initdb; logs:\n{}\n---\n{}",
        servers[0].log(),
        servers[1].log()
    );
    assert_eq!(
        create_account(&client, &servers[winner].base).await,
        StatusCode::CREATED
    );
    servers[winner].terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_restart_adopts_the_cluster_the_dead_server_left_running() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut first = Server::spawn(&data, "first", &[]);
    first.wait_ready().await;
    let client = Client::new();
    assert_eq!(
        create_account(&client, &first.base).await,
        StatusCode::CREATED
    );
    first.kill9();

    // Its lock died with it; its PostgreSQL did not.
    let mut again = Server::spawn(&data, "again", &[]);
    again.wait_ready().await;
    assert!(
        again.log().contains("adopting the embedded PostgreSQL"),
        "log:\n{}",
        again.log()
    );
    assert_eq!(
        create_account(&client, &again.base).await,
        StatusCode::CREATED
    );
    again.terminate();
    // Stopped with it: a plain restart starts it again.
    let mut third = Server::spawn(&data, "third", &[]);
    third.wait_ready().await;
    third.terminate();
}

/// A server on the in-memory repository (no database needed) with `extra` variables.
fn memory_server(root: &Path, name: &str, extra: &[(&str, &str)]) -> Server {
    let mut vars = vec![("ROUGHY_REPOSITORY", "memory")];
    vars.extend_from_slice(extra);
    Server::spawn(&root.join(name), name, &vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_bounds_configuration_exits_2_naming_the_variable() {
    let root = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        // `now + ttl` would overflow in the request handlers.
        ("ROUGHY_UPLOAD_TTL_SECS", "18446744073709551615"),
        ("ROUGHY_UPLOAD_TTL_SECS", "2592001"),
        ("ROUGHY_DOWNLOAD_TTL_SECS", "9223372036854775807"),
        ("ROUGHY_DOWNLOAD_TTL_SECS", "604801"),
        ("ROUGHY_JOB_LEASE_SECS", "18446744073709551615"),
        ("ROUGHY_BODY_IDLE_TIMEOUT_SECS", "18446744073709551615"),
        ("ROUGHY_REAPER_INTERVAL_SECS", "18446744073709551615"),
        ("ROUGHY_HTTP_WORKERS", "100000"),
        ("ROUGHY_ADMIN_TOKEN", "short"),
        ("ROUGHY_ADMIN_TOKEN", "   fifteen-bytes   "),
        ("ROUGHY_SIGNING_KEY", "only-thirty-one-bytes-long-key!"),
        ("ROUGHY_JOB_MAX_ATTEMPTS", "0"),
        ("ROUGHY_JOB_RETRY_MAX_DELAY_SECS", "86401"),
        ("ROUGHY_MAX_PENDING_UPLOADS", "1000001"),
        ("ROUGHY_FAILED_RETENTION_SECS", "59"),
    ];
    let mut servers: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (name, value))| memory_server(root.path(), &format!("s{i}"), &[(name, value)]))
        .collect();
    for ((name, value), server) in cases.iter().zip(&mut servers) {
        let status = server.wait_refused().await;
        let message = server.log();
        assert_eq!(
            status.code(),
            Some(2),
            "{name}={value}: exit 2; log:\n{message}"
        );
        assert!(
            message.contains(name),
            "{name}={value}: the message names the variable: {message}"
        );
        assert!(
            message.contains(" to ") || message.contains("at least"),
            "{name}={value}: the message gives the allowed range: {message}"
        );
        assert!(
            !message.contains("panicked"),
            "{name}={value}: no panic: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_from_the_environment_is_trimmed_like_the_presented_one() {
    let root = tempfile::tempdir().unwrap();
    let padded = format!("  {ADMIN}\n");
    let mut server = memory_server(
        root.path(),
        "padded",
        &[("ROUGHY_ADMIN_TOKEN", padded.as_str())],
    );
    server.wait_ready().await;
    let client = Client::new();
    assert_eq!(
        create_account(&client, &server.base).await,
        StatusCode::CREATED,
        "the trimmed token is the token"
    );
    // The presented one was trimmed already.
    let padded_presented = client
        .post(format!("{}/admin/v1/accounts", server.base))
        .header("Authorization", format!("Bearer   {ADMIN}  "))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(padded_presented, StatusCode::CREATED);
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_ttls_allowed_serve_requests_without_overflow() {
    let root = tempfile::tempdir().unwrap();
    let mut server = memory_server(
        root.path(),
        "largest",
        &[
            ("ROUGHY_UPLOAD_TTL_SECS", "2592000"),
            ("ROUGHY_DOWNLOAD_TTL_SECS", "604800"),
            ("ROUGHY_JOB_LEASE_SECS", "86400"),
            ("ROUGHY_REAPER_INTERVAL_SECS", "86400"),
        ],
    );
    server.wait_ready().await;
    let api = Api::tenant_at(&server.base, ADMIN, 10).await;
    let project = api.project(&server.base).await;
    let (_, upload) = api
        .try_asset_in(&server.base, &project, 1000)
        .await
        .unwrap();
    let head = api.try_head(&upload).await.unwrap();
    assert_eq!(head.status(), StatusCode::OK, "log:\n{}", server.log());
    assert!(head.headers().contains_key("upload-expires"));
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_on_the_lines_logged_inside_a_request() {
    let root = tempfile::tempdir().unwrap();
    let mut server = memory_server(root.path(), "json", &[("ROUGHY_LOG_FORMAT", "json")]);
    server.wait_ready().await;
    let api = Api::tenant_at(&server.base, ADMIN, 10).await;
    let project = api.project(&server.base).await;
    let (_, upload_url) = api
        .try_asset_in(&server.base, &project, 1000)
        .await
        .unwrap();
    // Not media: the use case logs the rejection inside the request.
    let rejected = api
        .client
        .patch(&upload_url)
        .bearer_auth(&api.key)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("X-Request-Id", "json-log-request-1")
        .body(vec![0u8; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = rejected.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "json-log-request-1");
    server.terminate();

    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let rejection = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("upload rejected"))
        })
        .unwrap_or_else(|| panic!("no rejection line in:\n{log}"));
    assert_eq!(rejection["span"]["name"], "request", "{rejection}");
    assert_eq!(
        rejection["span"]["request_id"], "json-log-request-1",
        "{rejection}"
    );
    assert_eq!(rejection["span"]["method"], "PATCH", "{rejection}");

    let mut refused = memory_server(root.path(), "badformat", &[("ROUGHY_LOG_FORMAT", "xml")]);
    let status = refused.wait_refused().await;
    assert_eq!(status.code(), Some(2));
    assert!(
        refused.log().contains("ROUGHY_LOG_FORMAT"),
        "{}",
        refused.log()
    );
}
