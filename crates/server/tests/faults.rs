//! Fault injection (issue #9): the real `roughy-server` binary, driven by clients that behave
//! as TUS clients do (on a 5xx or a dropped connection: HEAD, then resume from HEAD's offset),
//! while faults are injected from outside the process: statements of the database that fail
//! (triggers), connections terminated under it, the database stopped and started, the process
//! killed (`kill -9`) and restarted, a client that stops sending, an asset deleted under its
//! PATCH.
//!
//! Every scenario checks what a client can see: each upload completes with identical bytes,
//! HEAD never reports less than the last 204 acknowledged (nor more than was sent), every asset
//! reaches `ready` within a bound and is charged exactly once.
//!
//! The kill loop is seeded: it prints its seed, and `ROUGHY_FAULTS_SEED=<seed>` replays the same
//! uploads, chunk sizes and kill delays (the moments the kills land at still depend on timing).

// The scenarios print what they counted (seen with `--no-capture`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "integration test: a failed expectation is the test's failure; the run's figures are printed"
)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use roughy_embedded_postgres::{EmbeddedOptions, EmbeddedPostgres};
use roughy_postgres::testing::execute_sql;

use common::{
    assert_same, credits, file_storage, files_under, media, patch_in_flight, shared_database,
    upload_offset, wait_for, Api, Server, Shared,
};

/// How long an asset may take to reach `ready` once its last byte was acknowledged.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// What a client saw of its uploads.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    /// PATCHes answered 204.
    accepted: usize,
    /// Bytes the 204s acknowledged.
    acknowledged: u64,
    /// 5xx answers and dropped connections (HEAD or PATCH).
    failures: usize,
    /// 409 and 423 answers (another request held or moved the upload).
    conflicts: usize,
    /// HEADs after a failure: each checked against the last 204.
    checked_heads: usize,
    /// Acknowledged bytes a later HEAD did not report. Must stay 0.
    lost: u64,
}

impl std::ops::AddAssign for Seen {
    fn add_assign(&mut self, o: Self) {
        self.accepted += o.accepted;
        self.acknowledged += o.acknowledged;
        self.failures += o.failures;
        self.conflicts += o.conflicts;
        self.checked_heads += o.checked_heads;
        self.lost += o.lost;
    }
}

/// A client that uploads as a TUS client does: HEAD, PATCH from HEAD's offset; on a 5xx or a
/// dropped connection, HEAD again (retrying while the server does not answer) and resume.
struct Resumer<'a> {
    api: &'a Api,
    url: String,
    bytes: &'a [u8],
    /// The offset the last 204 reported.
    acked: u64,
    /// The end of the furthest PATCH sent.
    sent: u64,
    /// Whether the last request failed (so the next HEAD is a check after a fault).
    after_failure: bool,
    seen: Seen,
    deadline: Instant,
    log: PathBuf,
    /// Counts the 204s of every client of a test (the kill loop kills by progress).
    progress: Option<Arc<AtomicUsize>>,
}

impl<'a> Resumer<'a> {
    fn new(api: &'a Api, url: &str, bytes: &'a [u8], server: &Server) -> Self {
        Self::logging_to(api, url, bytes, server.data_dir.join("server.log"))
    }

    /// A client whose failures show the log at `log` (that of whichever process serves).
    fn logging_to(api: &'a Api, url: &str, bytes: &'a [u8], log: PathBuf) -> Self {
        Self {
            api,
            url: url.to_owned(),
            bytes,
            acked: 0,
            sent: 0,
            after_failure: false,
            seen: Seen::default(),
            deadline: Instant::now() + Duration::from_secs(120),
            log,
            progress: None,
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what} (upload {}, acknowledged {}, sent {}); log:\n{}",
            self.url,
            self.acked,
            self.sent,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    fn check_deadline(&self) {
        if Instant::now() > self.deadline {
            self.fail("the upload did not complete in time");
        }
    }

    /// HEAD until the server answers it; checks the offset against what was acknowledged and
    /// sent.
    async fn head(&mut self) -> u64 {
        loop {
            self.check_deadline();
            match self.api.try_head(&self.url).await {
                Ok(r) if r.status() == StatusCode::OK => {
                    let offset = upload_offset(&r).unwrap();
                    if self.after_failure {
                        self.seen.checked_heads += 1;
                        self.after_failure = false;
                    }
                    if offset < self.acked {
                        self.seen.lost += self.acked - offset;
                        eprintln!(
                            "LOST: HEAD {offset} < acknowledged {} for {}",
                            self.acked, self.url
                        );
                    }
                    if offset > self.sent {
                        self.fail(&format!("HEAD {offset} > sent {}", self.sent));
                    }
                    return offset;
                }
                Ok(r) if r.status().is_server_error() => self.failed().await,
                Ok(r) => self.fail(&format!("HEAD answered {}", r.status())),
                Err(_) => self.failed().await,
            }
        }
    }

    async fn failed(&mut self) {
        self.seen.failures += 1;
        self.after_failure = true;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// One PATCH of `len` bytes at `offset`.
    async fn patch(&mut self, offset: u64, len: usize) {
        let from = usize::try_from(offset).unwrap();
        self.sent = self.sent.max(offset + len as u64);
        let sent = self
            .api
            .try_patch(&self.url, offset, self.bytes[from..from + len].to_vec())
            .await;
        match sent {
            Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                let to = upload_offset(&r).unwrap();
                if to != offset + len as u64 {
                    self.fail(&format!("204 at {offset} + {len} reported {to}"));
                }
                self.seen.accepted += 1;
                self.seen.acknowledged += len as u64;
                self.acked = to;
                if let Some(progress) = &self.progress {
                    progress.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(r) if matches!(r.status(), StatusCode::CONFLICT | StatusCode::LOCKED) => {
                self.seen.conflicts += 1;
            }
            Ok(r) if r.status().is_server_error() => {
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let code = body["error"]["code"].as_str().unwrap_or_default();
                if !["service_unavailable", "internal_error"].contains(&code) {
                    self.fail(&format!(
                        "PATCH answered {status} without the error body: {body}"
                    ));
                }
                self.failed().await;
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                self.fail(&format!("PATCH at {offset} answered {status}: {body}"));
            }
            Err(_) => self.failed().await,
        }
    }

    /// Uploads every byte, each PATCH `next_chunk()` bytes long (at least the first-chunk
    /// minimum at offset 0).
    async fn run(mut self, mut next_chunk: impl FnMut() -> usize) -> Seen {
        loop {
            let offset = self.head().await;
            let remaining = self.bytes.len() - usize::try_from(offset).unwrap();
            if remaining == 0 {
                return self.seen;
            }
            let floor = if offset == 0 { 64 } else { 1 };
            let len = next_chunk().max(floor).min(remaining);
            self.patch(offset, len).await;
        }
    }
}

/// An asset's state as GET answers it, or `None` while the service answers 5xx (a fault may
/// still be under way).
async fn state_of(api: &Api, server: &Server, id: &str) -> Option<Value> {
    let (status, asset) = api
        .json(Method::GET, format!("{}/v1/assets/{id}", server.base), None)
        .await;
    if status.is_server_error() {
        return None;
    }
    assert_eq!(status, StatusCode::OK, "GET {id}: {asset}");
    Some(asset)
}

/// Waits until every asset left `processing` (within [`READY_WITHIN`] of the call); fails
/// naming each asset that did not reach `ready`, with the service's warnings.
async fn all_ready(api: &Api, server: &Server, ids: &[String]) -> Vec<Value> {
    let deadline = Instant::now() + READY_WITHIN;
    let mut last: Vec<Option<Value>> = vec![None; ids.len()];
    let settled = |a: &Option<Value>| {
        a.as_ref()
            .is_some_and(|a| a["state"] != "processing" && a["state"] != "pending_upload")
    };
    loop {
        for (id, slot) in ids.iter().zip(last.iter_mut()) {
            if !settled(slot) {
                if let Some(asset) = state_of(api, server, id).await {
                    *slot = Some(asset);
                }
            }
        }
        if last.iter().all(settled) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wrong: Vec<String> = ids
        .iter()
        .zip(&last)
        .filter(|(_, a)| !a.as_ref().is_some_and(|a| a["state"] == "ready"))
        .map(|(id, a)| match a {
            Some(a) if settled(&Some(a.clone())) => format!("{id}: {a}"),
            Some(a) => format!("{id}: still {} after {READY_WITHIN:?}", a["state"]),
            None => format!("{id}: GET answered 5xx until the end"),
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} assets did not reach ready:\n{}\nthe service's warnings:\n{}",
        wrong.len(),
        ids.len(),
        wrong.join("\n"),
        server
            .log()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    last.into_iter().flatten().collect()
}

/// The upload id in an upload URL.
fn upload_id(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. The database failing at each step of a PATCH and of processing.
// ---------------------------------------------------------------------------------------------

/// The trigger function of every injected fault: the statement fails while the fault's
/// sequence (`TG_ARGV[0]`, advanced by every hit, outside any transaction) has not passed the
/// number of failures asked for (`TG_ARGV[1]`), then lets everything through.
const FAULT_FUNCTION: &str = "
    CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF nextval(TG_ARGV[0]::regclass) <= TG_ARGV[1]::bigint THEN
        RAISE EXCEPTION 'injected fault % (% on %)', TG_ARGV[0], TG_OP, TG_TABLE_NAME;
      END IF;
      RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END $$;";

/// A step of the service that writes to the database, and the rows of one asset it writes.
struct Step {
    name: &'static str,
    table: &'static str,
    op: &'static str,
    /// The trigger's `WHEN`, with `{asset}` and `{upload}` for the ids.
    when: &'static str,
    failures: u32,
}

impl Step {
    /// Makes this step fail `failures` times for `asset` and `upload`.
    async fn inject(&self, db: &str, asset: &str, upload: &str) {
        let name = format!("fault_{}_{}", self.name, asset.to_ascii_lowercase());
        let when = self
            .when
            .replace("{asset}", asset)
            .replace("{upload}", upload);
        execute_sql(
            db,
            &format!(
                "CREATE SEQUENCE {name};
                 CREATE TRIGGER {name} BEFORE {op} ON {table} FOR EACH ROW WHEN ({when})
                 EXECUTE FUNCTION injected_fault('{name}', '{failures}');",
                op = self.op,
                table = self.table,
                failures = self.failures,
            ),
        )
        .await;
    }

    /// Fails unless the fault was hit at least as often as it was to fail (a fault never hit
    /// tested nothing).
    async fn assert_hit(&self, db: &str, asset: &str) {
        let name = format!("fault_{}_{}", self.name, asset.to_ascii_lowercase());
        execute_sql(
            db,
            &format!(
                "DO $$ BEGIN
                   IF (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {name})
                      < {failures} THEN
                     RAISE EXCEPTION 'the fault {step} was never hit';
                   END IF;
                 END $$;",
                failures = self.failures,
                step = self.name,
            ),
        )
        .await;
    }
}

/// Each of `steps` fails for an asset of its own; the uploads run at once, by resuming
/// clients. Every asset must reach ready with identical bytes and be charged once.
async fn survive(steps: &[Step]) {
    let (root, shared) = shared_database().await;
    let db = shared.database_url.clone().unwrap();
    execute_sql(&db, FAULT_FUNCTION).await;
    let server = Server::start(&shared, &root.path().join("a"), &[]).await;
    let api = Api::tenant(&server, 1_000).await;
    let project = api.project(&server.base).await;
    let mut uploads = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let millis = 3_000 + 500 * i as u64;
        let bytes = media(millis);
        let (asset, url) = api
            .try_asset_in(&server.base, &project, bytes.len())
            .await
            .unwrap();
        step.inject(&db, &asset, upload_id(&url)).await;
        uploads.push((asset, url, bytes, millis));
    }
    let seen: Vec<Seen> = futures::future::join_all(uploads.iter().map(|(_, url, bytes, _)| {
        // A first chunk, then PATCHes of 5000 bytes and one of the rest.
        let mut n = 0;
        Resumer::new(&api, url, bytes, &server).run(move || {
            n += 1;
            if n < 6 {
                5_000
            } else {
                usize::MAX
            }
        })
    }))
    .await;
    let ids: Vec<String> = uploads.iter().map(|(id, ..)| id.clone()).collect();
    let ready = all_ready(&api, &server, &ids).await;
    for ((step, (id, _, bytes, _)), asset) in steps.iter().zip(&uploads).zip(&ready) {
        step.assert_hit(&db, id).await;
        assert_same(&api.download(asset).await, bytes, step.name);
    }
    for (step, s) in steps.iter().zip(&seen) {
        println!("{:>16}: {s:?}", step.name);
        assert_eq!(s.lost, 0, "{}: acknowledged bytes lost", step.name);
    }
    let spent: i64 = uploads.iter().map(|(.., m)| credits(*m)).sum();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    api.assert_charged_once(&server, &ids, 1_000 - spent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_failing_at_each_step_of_a_patch_is_survived_by_resuming_clients() {
    survive(&[
        Step {
            name: "lock",
            table: "upload_locks",
            op: "INSERT",
            when: "NEW.upload_id = '{upload}'",
            failures: 2,
        },
        Step {
            name: "identify_asset",
            table: "assets",
            op: "UPDATE",
            when: "OLD.id = '{asset}' AND OLD.format IS NULL AND NEW.format IS NOT NULL",
            failures: 1,
        },
        // On local disk the sink stages nothing before the bytes, so the format is recorded
        // by the first chunk's progress, in one commit with it.
        Step {
            name: "first_progress",
            table: "uploads",
            op: "UPDATE",
            when: "OLD.id = '{upload}' AND OLD.upload_offset = 0 AND NEW.upload_offset > 0",
            failures: 1,
        },
        Step {
            name: "progress",
            table: "uploads",
            op: "UPDATE",
            when: "OLD.id = '{upload}' AND NEW.state = 'active' \
                   AND NEW.upload_offset > OLD.upload_offset",
            failures: 2,
        },
        Step {
            name: "finalise_upload",
            table: "uploads",
            op: "UPDATE",
            when: "OLD.id = '{upload}' AND NEW.state = 'completed'",
            failures: 1,
        },
        Step {
            name: "finalise_asset",
            table: "assets",
            op: "UPDATE",
            when: "OLD.id = '{asset}' AND NEW.state = 'processing'",
            failures: 1,
        },
        Step {
            name: "queue_job",
            table: "jobs",
            op: "INSERT",
            when: "NEW.asset_id = '{asset}'",
            failures: 2,
        },
        Step {
            name: "unlock",
            table: "upload_locks",
            op: "DELETE",
            when: "OLD.upload_id = '{upload}'",
            failures: 1,
        },
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_failing_at_each_step_of_processing_still_settles_every_asset_once() {
    survive(&[
        Step {
            name: "claim",
            table: "jobs",
            op: "UPDATE",
            when: "OLD.asset_id = '{asset}' AND NEW.lease_token IS NOT NULL",
            failures: 1,
        },
        Step {
            name: "settle_asset",
            table: "assets",
            op: "UPDATE",
            when: "OLD.id = '{asset}' AND NEW.state = 'ready'",
            failures: 1,
        },
        Step {
            name: "charge",
            table: "ledger_entries",
            op: "INSERT",
            when: "NEW.asset_id = '{asset}'",
            failures: 1,
        },
        Step {
            name: "dequeue",
            table: "jobs",
            op: "DELETE",
            when: "OLD.asset_id = '{asset}'",
            failures: 1,
        },
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_terminated_mid_upload_are_survived_by_resuming_clients() {
    let (root, shared) = shared_database().await;
    let db = shared.database_url.clone().unwrap();
    let server = Server::start(&shared, &root.path().join("a"), &[]).await;
    let api = Api::tenant(&server, 1_000).await;
    let project = api.project(&server.base).await;
    execute_sql(
        &db,
        "CREATE TABLE injected_terminations (n bigint NOT NULL);",
    )
    .await;
    let mut uploads = Vec::new();
    for i in 0..4u64 {
        let millis = 8_000 + 1_000 * i;
        let bytes = media(millis);
        let (asset, url) = api
            .try_asset_in(&server.base, &project, bytes.len())
            .await
            .unwrap();
        uploads.push((asset, url, bytes, millis));
    }
    // Every 100 ms, every connection of the service to its database is terminated.
    let done = Arc::new(AtomicBool::new(false));
    let terminator = tokio::spawn({
        let (db, done) = (db.clone(), done.clone());
        async move {
            while !done.load(Ordering::SeqCst) {
                execute_sql(
                    &db,
                    "INSERT INTO injected_terminations
                     SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid();",
                )
                .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let seen: Vec<Seen> = futures::future::join_all(
        uploads
            .iter()
            .map(|(_, url, bytes, _)| Resumer::new(&api, url, bytes, &server).run(|| 4_096)),
    )
    .await;
    let ids: Vec<String> = uploads.iter().map(|(id, ..)| id.clone()).collect();
    let ready = all_ready(&api, &server, &ids).await;
    done.store(true, Ordering::SeqCst);
    terminator.await.unwrap();
    execute_sql(
        &db,
        "DO $$ BEGIN
           IF (SELECT coalesce(sum(n), 0) FROM injected_terminations) = 0 THEN
             RAISE EXCEPTION 'no connection was ever terminated';
           END IF;
         END $$;",
    )
    .await;
    let mut total = Seen::default();
    for ((_, _, bytes, _), (asset, s)) in uploads.iter().zip(ready.iter().zip(&seen)) {
        assert_same(&api.download(asset).await, bytes, "a terminated upload");
        total += *s;
    }
    println!("terminated connections: {total:?}");
    assert_eq!(total.lost, 0, "acknowledged bytes lost");
    let spent: i64 = uploads.iter().map(|(.., m)| credits(*m)).sum();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    api.assert_charged_once(&server, &ids, 1_000 - spent).await;
}

// ---------------------------------------------------------------------------------------------
// 2. An external PostgreSQL stopped and started mid-upload.
// ---------------------------------------------------------------------------------------------

/// A PATCH body of `bytes` in `chunk`-byte pieces, one every `every`; `sent` counts what it
/// handed to the connection.
fn paced_body(
    bytes: Vec<u8>,
    chunk: usize,
    every: Duration,
    sent: &Arc<AtomicUsize>,
) -> reqwest::Body {
    let sent = sent.clone();
    let pieces: Vec<Vec<u8>> = bytes.chunks(chunk).map(<[u8]>::to_vec).collect();
    let stream = futures::stream::unfold(pieces.into_iter(), move |mut pieces| {
        let sent = sent.clone();
        async move {
            let piece = pieces.next()?;
            tokio::time::sleep(every).await;
            sent.fetch_add(piece.len(), Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(piece), pieces))
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// Starts a PATCH of `bytes[from..to]` sent at a pace (see [`paced_body`]).
fn paced_patch(
    api: &Api,
    url: &str,
    bytes: &[u8],
    (from, to): (usize, usize),
    (chunk, every): (usize, Duration),
    sent: &Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let pending = api
        .client
        .patch(url)
        .bearer_auth(&api.key)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", from.to_string())
        .header("Content-Length", (to - from).to_string())
        .body(paced_body(bytes[from..to].to_vec(), chunk, every, sent))
        .send();
    tokio::spawn(pending)
}

/// A response's status and error code.
async fn error_of(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_postgresql_stopped_mid_upload_answers_503_then_the_upload_resumes_identically()
{
    let root = tempfile::tempdir().unwrap();
    let pg = root.path().join("pg");
    let options = EmbeddedOptions { durable: false };
    // The test's own cluster (the run's shared one serves other tests): it must start.
    let cluster = EmbeddedPostgres::start_with(&pg, options)
        .await
        .unwrap_or_else(|e| panic!("the test's PostgreSQL cluster must start: {e}"));
    let shared = Shared {
        database_url: Some(cluster.url()),
        storage: file_storage(&root.path().join("blobs")),
    };
    let server = Server::start(&shared, &root.path().join("a"), &[]).await;
    let api = Api::tenant(&server, 100).await;
    let millis = 10_000;
    let bytes = media(millis);
    let (id, url) = api.asset(&server, bytes.len()).await;
    let acknowledged = 32 * 1024;
    assert_eq!(
        api.patch(&url, 0, bytes[..acknowledged].to_vec()).await,
        StatusCode::NO_CONTENT
    );

    // A PATCH of 64 KiB at 4 KiB every 50 ms; the database stops once a quarter of it is out.
    let sent = Arc::new(AtomicUsize::new(0));
    let end = acknowledged + 64 * 1024;
    let in_flight = paced_patch(
        &api,
        &url,
        &bytes,
        (acknowledged, end),
        (4096, Duration::from_millis(50)),
        &sent,
    );
    wait_for(
        "16 KiB of the PATCH sent",
        Duration::from_secs(10),
        || server.log(),
        || sent.load(Ordering::SeqCst) >= 16 * 1024,
    )
    .await;
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .unwrap()
        .expect("pg_ctl stop -m fast");
    let stopped = Instant::now();

    // While it is down: the PATCH in flight ends without an acknowledgement, and every request
    // that needs the database answers 503 service_unavailable.
    match tokio::time::timeout(Duration::from_secs(20), in_flight)
        .await
        .expect("the PATCH in flight ends while the database is down")
        .unwrap()
    {
        Ok(r) => {
            let (status, code) = error_of(r).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
                "the PATCH in flight"
            );
        }
        Err(e) => panic!("the PATCH in flight got no answer: {e}"),
    }
    for _ in 0..3 {
        let r = api.try_head(&url).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "HEAD while down"
        );
        let r = api
            .try_patch(&url, acknowledged as u64, bytes[acknowledged..end].to_vec())
            .await
            .unwrap();
        assert_eq!(
            error_of(r).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable".to_owned()
            ),
            "PATCH while down"
        );
        let r = api
            .client
            .get(format!("{}/v1/assets/{id}", server.base))
            .bearer_auth(&api.key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_of(r).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable".to_owned()
            ),
            "GET asset while down"
        );
        let r = api
            .client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "readyz while down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("the database was down for {:?}", stopped.elapsed());

    // Back up: the client resumes from HEAD's offset, which kept the acknowledged bytes.
    let cluster = EmbeddedPostgres::start_with(&pg, options)
        .await
        .unwrap_or_else(|e| panic!("the test's PostgreSQL cluster must start again: {e}"));
    let mut resumer = Resumer::new(&api, &url, &bytes, &server);
    resumer.acked = acknowledged as u64;
    resumer.sent = end as u64;
    let seen = resumer.run(|| 20_000).await;
    println!("after the restart of the database: {seen:?}");
    assert_eq!(seen.lost, 0, "acknowledged bytes lost");
    let asset = api.settled(&server, &id, READY_WITHIN).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_same(&api.download(&asset).await, &bytes, "the object");
    api.assert_charged_once(&server, &[&id], 100 - credits(millis))
        .await;
    drop(server);
    cluster.stop().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 3. kill -9 at random moments.
// ---------------------------------------------------------------------------------------------

/// The chunk sizes the kill loop's clients pick from (`usize::MAX`: the rest in one PATCH).
const CHUNKS: [usize; 7] = [64, 700, 2_000, 4_096, 10_000, 32_773, usize::MAX];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_over_many_uploads_loses_no_acknowledged_byte() {
    const UPLOADS: usize = 60;
    const CLIENTS: usize = 4;
    let seed: u64 = std::env::var("ROUGHY_FAULTS_SEED")
        .ok()
        .map(|s| s.parse().expect("ROUGHY_FAULTS_SEED is a u64"))
        .unwrap_or_else(rand::random);
    println!("kill loop seed: {seed} (ROUGHY_FAULTS_SEED={seed} replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let (root, shared) = shared_database().await;
    let dir = root.path().join("a");
    // A job claimed by a killed process is taken over once its lease runs out.
    let env = [("ROUGHY_JOB_LEASE_SECS", "2")];
    let port = common::free_port();
    let mut server = Server::start_on(port, &shared, &dir, &env).await;
    let api = Arc::new(Api::tenant(&server, 10_000).await);
    let project = api.project(&server.base).await;
    let base = server.base.clone();

    // The uploads: 1 to 8 s of audio (16 to 128 kB), each with its own chunk sizes.
    let plans: Vec<(u64, u64)> = (0..UPLOADS)
        .map(|_| (rng.gen_range(1_000..=8_000), rng.gen()))
        .collect();
    let queue = Arc::new(Mutex::new(plans.into_iter()));
    let finished = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (api, queue, finished) = (api.clone(), queue.clone(), finished.clone());
        let progress = progress.clone();
        let (project, base) = (project.clone(), base.clone());
        let log = dir.join("server.log");
        clients.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let mut seen = Seen::default();
            loop {
                let Some((millis, chunk_seed)) = queue.lock().unwrap().next() else {
                    return (done, seen);
                };
                let bytes = media(millis);
                // Created again until the server answers (a kill may eat the answer; the
                // asset it made then stays pending, never charged).
                let (id, url) = loop {
                    if let Ok(made) = api.try_asset_in(&base, &project, bytes.len()).await {
                        break made;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                let mut chunks = rand::rngs::StdRng::seed_from_u64(chunk_seed);
                let mut resumer = Resumer::logging_to(&api, &url, &bytes, log.clone());
                resumer.progress = Some(progress.clone());
                seen += resumer
                    .run(|| CHUNKS[chunks.gen_range(0..CHUNKS.len())])
                    .await;
                finished.fetch_add(1, Ordering::SeqCst);
                done.push((id, millis, bytes));
            }
        }));
    }

    // Kill at random moments until every upload is finalised, restarting at once: after 3 to
    // 11 more 204s (of any client) and 0 to 40 ms, so the kills keep pace with the uploads
    // however fast the machine is, and land anywhere in a request.
    let started = Instant::now();
    let mut kills = 0;
    let all_done = || finished.load(Ordering::SeqCst) == UPLOADS;
    while !all_done() {
        let target = progress.load(Ordering::SeqCst) + rng.gen_range(3..12);
        let after = Duration::from_millis(rng.gen_range(0..40));
        while progress.load(Ordering::SeqCst) < target && !all_done() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(after).await;
        if all_done() {
            break;
        }
        server.kill9();
        kills += 1;
        server = Server::start_on(port, &shared, &dir, &env).await;
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "the kill loop did not finish: {} of {UPLOADS} uploads after {kills} kills",
            finished.load(Ordering::SeqCst)
        );
    }
    let mut done = Vec::new();
    let mut seen = Seen::default();
    for client in clients {
        let (d, s) = client.await.unwrap();
        done.extend(d);
        seen += s;
    }
    let ids: Vec<String> = done.iter().map(|(id, ..)| id.clone()).collect();
    let ready = all_ready(&api, &server, &ids).await;
    for ((id, _, bytes), asset) in done.iter().zip(&ready) {
        assert_same(&api.download(asset).await, bytes, id);
    }
    println!(
        "kill loop (seed {seed}): {} uploads, {kills} kills, {} bytes acknowledged by {} PATCHes, \
         {} bytes lost, {} failed requests, {} HEADs checked after a failure, {} conflicts, {:?}",
        done.len(),
        seen.acknowledged,
        seen.accepted,
        seen.lost,
        seen.failures,
        seen.checked_heads,
        seen.conflicts,
        started.elapsed()
    );
    assert_eq!(done.len(), UPLOADS);
    assert!(kills >= 15, "only {kills} kills landed");
    assert_eq!(seen.lost, 0, "acknowledged bytes lost (seed {seed})");
    let spent: i64 = done.iter().map(|(_, m, _)| credits(*m)).sum();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    api.assert_charged_once(&server, &ids, 10_000 - spent).await;
}

// ---------------------------------------------------------------------------------------------
// 4. A client that stops sending while another resumes.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_is_cut_by_the_idle_timeout_or_by_a_resume() {
    let (root, shared) = shared_database().await;
    let idle = Duration::from_secs(3);
    let server = Server::start(
        &shared,
        &root.path().join("a"),
        &[("ROUGHY_BODY_IDLE_TIMEOUT_SECS", "3")],
    )
    .await;
    let stalled = Api::tenant(&server, 100).await;
    // The resuming client: the same account, its own connections.
    let resuming = Api {
        client: reqwest::Client::new(),
        key: stalled.key.clone(),
    };
    let millis = 6_000;
    let (first, second) = (24 * 1024, 24 * 1024 + 40 * 1024);
    let mut ids = Vec::new();
    // First the stalled PATCH is left to the idle timeout, then a resume interrupts it.
    for (cut_by, answer) in [
        (
            "the idle timeout",
            (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
        ),
        ("the resume", (StatusCode::CONFLICT, "upload_interrupted")),
    ] {
        let bytes = media(millis);
        let (id, url) = stalled.asset(&server, bytes.len()).await;
        assert_eq!(
            stalled.patch(&url, 0, bytes[..first].to_vec()).await,
            StatusCode::NO_CONTENT
        );
        // 40 KiB more, then nothing: the client stops sending but keeps the connection.
        let sent = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let in_flight = patch_in_flight(&stalled, &url, &bytes, first, second, &sent);
        wait_for(
            "the 40 KiB sent",
            Duration::from_secs(10),
            || server.log(),
            || sent.load(Ordering::SeqCst) == second - first,
        )
        .await;
        // Long enough for the server to have stored them.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let by_timeout = cut_by == "the idle timeout";
        let in_flight = if by_timeout {
            let r = tokio::time::timeout(idle * 3, in_flight)
                .await
                .expect("the idle PATCH is cut by the idle timeout")
                .unwrap();
            let cut_after = started.elapsed();
            assert!(
                cut_after >= idle && cut_after < idle * 2,
                "cut after {cut_after:?}"
            );
            if let Ok(r) = r {
                let (status, code) = error_of(r).await;
                assert_eq!((status, code.as_str()), answer, "the idle PATCH");
            }
            None
        } else {
            Some(in_flight)
        };
        let resumed = Instant::now();
        let mut resumer = Resumer::new(&resuming, &url, &bytes, &server);
        resumer.acked = first as u64;
        resumer.sent = second as u64;
        assert_eq!(
            resumer.head().await,
            second as u64,
            "after {cut_by}, HEAD reports every byte that arrived"
        );
        let seen = resumer.run(|| 30_000).await;
        assert_eq!(seen.lost, 0);
        if let Some(in_flight) = in_flight {
            assert!(
                resumed.elapsed() < idle,
                "the resume waited {:?} for the stalled PATCH",
                resumed.elapsed()
            );
            let r = tokio::time::timeout(Duration::from_secs(5), in_flight)
                .await
                .expect("the stalled PATCH is answered once interrupted")
                .unwrap();
            if let Ok(r) = r {
                let (status, code) = error_of(r).await;
                assert_eq!((status, code.as_str()), answer, "the interrupted PATCH");
            }
        }
        let asset = stalled.settled(&server, &id, READY_WITHIN).await;
        assert_eq!(asset["state"], "ready", "{asset}");
        assert_same(&stalled.download(&asset).await, &bytes, cut_by);
        ids.push(id);
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    stalled
        .assert_charged_once(&server, &ids, 100 - 2 * credits(millis))
        .await;
}

// ---------------------------------------------------------------------------------------------
// 5. An asset deleted while its PATCH runs.
// ---------------------------------------------------------------------------------------------

/// Where a test's blobs live, and what of them is left.
enum Blobs {
    Disk(PathBuf),
    S3(common::Bucket),
}

impl Blobs {
    /// Every stored byte's file: under the blob directory, or the bucket's objects and the
    /// parts of its multipart uploads for `asset`.
    fn left(&self, asset: &str) -> Vec<String> {
        let files = |dir: &std::path::Path| -> Vec<String> {
            files_under(dir)
                .iter()
                .map(|p| p.display().to_string())
                .collect()
        };
        match self {
            Self::Disk(dir) => files(dir),
            Self::S3(bucket) => {
                let mut left = files(&bucket.root.join(&bucket.name));
                let parts = bucket.parts_of(asset);
                if parts > 0 {
                    left.push(format!("{parts} parts of a multipart upload"));
                }
                left
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_deleted_while_its_patch_streams_stops_the_patch_and_purges_its_bytes() {
    let (root, shared) = shared_database().await;
    let blobs = Blobs::Disk(root.path().join("blobs"));
    delete_under_a_streaming_patch(root, shared, blobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_an_asset_deleted_while_its_patch_streams_stops_the_patch_and_purges_its_bytes() {
    let (root, shared, bucket) = common::shared_bucket().await;
    delete_under_a_streaming_patch(root, shared, Blobs::S3(bucket)).await;
}

/// DELETE /v1/assets/{id} while a slow PATCH of it streams.
async fn delete_under_a_streaming_patch(root: tempfile::TempDir, shared: Shared, blobs: Blobs) {
    let server = Server::start(&shared, &root.path().join("a"), &[]).await;
    let api = Api::tenant(&server, 100).await;
    let bytes = media(30_000); // 480 kB
    let (id, url) = api.asset(&server, bytes.len()).await;
    let first = 16 * 1024;
    assert_eq!(
        api.patch(&url, 0, bytes[..first].to_vec()).await,
        StatusCode::NO_CONTENT
    );
    // All but the last 4 KiB (so it is not the finalising PATCH), 4 KiB every 100 ms: about
    // 11 s of body.
    let sent = Arc::new(AtomicUsize::new(0));
    let end = bytes.len() - 4096;
    let in_flight = paced_patch(
        &api,
        &url,
        &bytes,
        (first, end),
        (4096, Duration::from_millis(100)),
        &sent,
    );
    wait_for(
        "32 KiB of the PATCH sent",
        Duration::from_secs(10),
        || server.log(),
        || sent.load(Ordering::SeqCst) >= 32 * 1024,
    )
    .await;
    let (status, body) = api
        .json(
            Method::DELETE,
            format!("{}/v1/assets/{id}", server.base),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let deleted = Instant::now();

    // The PATCH stops: answered (or its connection closed) long before its body would end.
    // Whatever happens, it is waited for, so every check below runs and reports.
    let mut wrong = Vec::new();
    let answer = tokio::time::timeout(Duration::from_secs(30), in_flight)
        .await
        .expect("the PATCH ends once its body does")
        .unwrap();
    let (ended_after, sent_by_then) = (deleted.elapsed(), sent.load(Ordering::SeqCst));
    if ended_after > Duration::from_secs(3) || sent_by_then == end - first {
        wrong.push(format!(
            "the PATCH of the deleted asset ran on for {ended_after:?} after the DELETE, \
             until {sent_by_then} of its {} bytes were sent",
            end - first
        ));
    }
    if let Ok(r) = answer {
        let (status, code) = error_of(r).await;
        if !status.is_client_error() {
            wrong.push(format!(
                "the PATCH of the deleted asset answered {status} {code}"
            ));
        }
    }
    // The asset is gone, its upload too, and no byte of it is left.
    let (status, _) = api
        .json(Method::GET, format!("{}/v1/assets/{id}", server.base), None)
        .await;
    if status != StatusCode::NOT_FOUND {
        wrong.push(format!("GET of the deleted asset answered {status}"));
    }
    let status = api.try_head(&url).await.unwrap().status();
    if status != StatusCode::GONE {
        wrong.push(format!("HEAD of its upload answered {status}"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = blobs.left(&id);
    if !left.is_empty() {
        wrong.push(format!("bytes of the deleted asset left: {left:?}"));
    }
    assert!(
        wrong.is_empty(),
        "{}\nlog:\n{}",
        wrong.join("\n"),
        server.log()
    );
    assert!(api.charges(&server).await.is_empty());
}

/// A webhook event survives a `kill -9` between its commit and its delivery: the process is
/// killed while its attempt is on the wire (the receiver has read the request and not
/// answered), and the restarted process sends the same event again once the dead attempt's
/// claim runs out; the receiver then takes it, and the delivery is listed as delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_event_survives_a_kill_9_between_its_commit_and_its_delivery() {
    use roughy_webhooks::testing::Receiver;
    use tokio::io::AsyncReadExt;

    let (root, shared) = shared_database().await;
    let dir = root.path().join("server");
    let extra = [
        ("ROUGHY_WEBHOOK_ALLOW_PRIVATE", "1"),
        ("ROUGHY_WEBHOOK_TIMEOUT_SECS", "5"),
        ("ROUGHY_WEBHOOK_RETRY_DELAY_SECS", "1"),
    ];
    let server = Server::start(&shared, &dir, &extra).await;
    let port = server.port;
    let api = Api::tenant(&server, 10).await;

    // A receiver that reads the request and never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_port = hung.local_addr().unwrap().port();
    let (status, hook) = api
        .json(
            Method::POST,
            format!("{}/v1/webhooks", server.base),
            Some(serde_json::json!({
                "url": format!("http://127.0.0.1:{hook_port}/hook"),
                "events": ["asset.deleted"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let webhook = hook["id"].as_str().unwrap().to_owned();
    let secret = roughy_domain::WebhookSecret::from_stored(hook["secret"].as_str().unwrap().into());
    let (asset, _) = api.asset(&server, 1_000).await;
    let (status, _) = api
        .json(
            Method::DELETE,
            format!("{}/v1/assets/{asset}", server.base),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (mut on_the_wire, _) = tokio::time::timeout(Duration::from_secs(20), hung.accept())
        .await
        .expect("the delivery is attempted")
        .unwrap();
    let mut first = Vec::new();
    let mut chunk = [0_u8; 4096];
    while !String::from_utf8_lossy(&first).contains("evt_") {
        let n = on_the_wire.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the request arrives");
        first.extend_from_slice(&chunk[..n]);
    }
    server.kill9();
    drop(on_the_wire);
    drop(hung);

    let receiver = Receiver::start_on(hook_port).await;
    let restarted = Server::start_on(port, &shared, &dir, &extra).await;
    // The dead attempt's claim (2 × 5 s + 5 s) runs out, then the event is sent again.
    let got = receiver.wait_for(1, Duration::from_secs(60)).await;
    let event: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(event["type"], "asset.deleted");
    assert_eq!(event["asset"]["id"], asset.as_str());
    assert!(
        String::from_utf8_lossy(&first).contains(event["id"].as_str().unwrap()),
        "the same event as the attempt that was cut"
    );
    assert!(secret.verify(got[0].header("roughy-signature").unwrap(), &got[0].body));
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let (_, list) = api
            .json(
                Method::GET,
                format!("{}/v1/webhooks/{webhook}/deliveries", restarted.base),
                None,
            )
            .await;
        if list["data"][0]["state"] == "delivered" {
            break list;
        }
        assert!(Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(got.len(), 1, "sent again once");
    restarted.terminate();
}
