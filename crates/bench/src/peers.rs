//! The peers of `--peers` (`make bench PEERS=1`): other TUS servers measured in the same run
//! with the same client code and the same generated files, so every figure of the service
//! has a ratio to the best peer measured beside it.
//!
//! `scripts/bench-peers install` installs them once into the tools cache (never the
//! checkout) and says, per peer, where it is or why it could not be installed. Each round
//! starts each peer as a child process on a free loopback port with a fresh data directory
//! on the same disk as the service's, creates uploads with a TUS creation `POST`
//! (`Upload-Length`, `Tus-Resumable: 1.0.0`) and sends the same PATCHes. An upload counts
//! only once the file the peer stored (found by the upload's id in its data directory) has
//! the size and SHA-256 that was sent; the file is then deleted.
//!
//! Neither peer syncs what it writes (no `fsync`/`fdatasync` before answering): they are not
//! durable, the service is.

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use tokio::process::{Child, Command};

use crate::api::Api;
use crate::report::{Samples, SmallSamples};
use crate::service::log_tail;

/// How long a peer may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The path both peers create uploads at.
pub const CREATION_PATH: &str = "/files";

/// A kind of peer, and how to run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// `@tus/server` with `@tus/file-store` (Node.js), through `bench/peers/tus-node-server.mjs`.
    TusNode,
    /// `rustus` (Rust, actix-web), its file storage.
    Rustus,
}

impl PeerKind {
    /// The name `scripts/bench-peers` prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::TusNode => "tus-node",
            Self::Rustus => "rustus",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::TusNode, Self::Rustus]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// The command that serves `data_dir` on `port`: `installed` is the install directory
    /// (tus-node) or the binary (rustus). `max_patch` is the largest PATCH body it will get.
    fn command(self, installed: &Path, data_dir: &Path, port: u16, max_patch: u64) -> Command {
        match self {
            Self::TusNode => {
                let mut command = Command::new("node");
                command
                    .arg(installed.join("tus-node-server.mjs"))
                    .arg("--dir")
                    .arg(data_dir)
                    .args(["--port", &port.to_string(), "--host", "127.0.0.1"]);
                command
            }
            Self::Rustus => {
                let mut command = Command::new(installed);
                command
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--url", CREATION_PATH])
                    .arg("--data-dir")
                    .arg(data_dir)
                    .arg("--info-dir")
                    .arg(data_dir)
                    // rustus 0.5 reads a whole PATCH body into memory before writing it, and
                    // refuses bodies over --max-body-size (256 KiB by default): raised to the
                    // largest PATCH sent, so that it takes the same requests.
                    .args(["--max-body-size", &max_patch.to_string()])
                    .args(["--log-level", "WARN"]);
                command
            }
        }
    }
}

impl fmt::Display for PeerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `scripts/bench-peers install` said about one peer.
#[derive(Clone, Debug)]
pub struct PeerInstall {
    /// Which peer.
    pub kind: PeerKind,
    /// What it is, with versions (`rustus 0.5.10`).
    pub label: String,
    /// Its install directory or binary, or why it could not be installed here.
    pub installed: Result<PathBuf, String>,
}

/// Runs `script install` (progress on this process's stderr) and reads its verdict on each
/// peer.
///
/// # Errors
/// When the script cannot be run, fails, or prints something else.
pub fn install(script: &Path) -> anyhow::Result<Vec<PeerInstall>> {
    let output = std::process::Command::new(script)
        .arg("install")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} install", script.display()))?;
    ensure!(
        output.status.success(),
        "{} install failed ({})",
        script.display(),
        output.status
    );
    parse_install(&String::from_utf8_lossy(&output.stdout))
        .with_context(|| format!("reading what {} install printed", script.display()))
}

/// The lines `scripts/bench-peers install` prints: name, label, `ok` or `failed`, and the
/// install path or the reason, tab-separated.
fn parse_install(stdout: &str) -> anyhow::Result<Vec<PeerInstall>> {
    let mut peers = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.splitn(4, '\t').collect();
        let [name, label, status, detail] = fields[..] else {
            bail!("unexpected line {line:?}");
        };
        let kind = PeerKind::parse(name).with_context(|| format!("unknown peer {name:?}"))?;
        let installed = match status {
            "ok" => Ok(PathBuf::from(detail)),
            "failed" => Err(detail.to_owned()),
            _ => bail!("unexpected status {status:?}"),
        };
        peers.push(PeerInstall {
            kind,
            label: label.to_owned(),
            installed,
        });
    }
    Ok(peers)
}

/// A running peer with its own data directory (deleted when it stops).
#[derive(Debug)]
pub struct PeerProcess {
    kind: PeerKind,
    base: String,
    pid: u32,
    child: Child,
    data: tempfile::TempDir,
    log: PathBuf,
}

impl PeerProcess {
    /// Starts `kind` (installed at `installed`) on a free loopback port with a fresh data
    /// directory in `parent`, logging to `log`, and waits until it answers HTTP; it is to
    /// take PATCH bodies up to `max_patch` bytes.
    ///
    /// # Errors
    /// When it cannot be started or does not answer in time.
    pub async fn start(
        kind: PeerKind,
        installed: &Path,
        parent: &Path,
        log: &Path,
        max_patch: u64,
    ) -> anyhow::Result<Self> {
        let data = tempfile::Builder::new()
            .prefix(&format!("peer-{kind}-"))
            .tempdir_in(parent)
            .context("creating the peer's data directory")?;
        let port = {
            // The peer binds the port itself; the race for a just-freed port is one the
            // benchmark can live with (as for the service).
            let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
            listener
                .local_addr()
                .context("reading the free port")?
                .port()
        };
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = kind
            .command(installed, data.path(), port, max_patch)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("duplicating the log file")?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {kind} ({})", installed.display()))?;
        let pid = child
            .id()
            .with_context(|| format!("{kind} exited at once"))?;
        let mut peer = Self {
            kind,
            base: format!("http://127.0.0.1:{port}"),
            pid,
            child,
            data,
            log: log.to_path_buf(),
        };
        peer.wait_ready().await?;
        Ok(peer)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("{}{CREATION_PATH}", self.base);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("polling the peer")? {
                bail!(
                    "{} exited during start-up ({status}):\n{}",
                    self.kind,
                    log_tail(&self.log)
                );
            }
            // Any HTTP answer will do: TUS servers answer OPTIONS on their path.
            if client
                .request(reqwest::Method::OPTIONS, &url)
                .header("Tus-Resumable", "1.0.0")
                .send()
                .await
                .is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                bail!(
                    "{} did not answer on {url} within {STARTUP_TIMEOUT:?}:\n{}",
                    self.kind,
                    log_tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The client of this peer: TUS creation at [`CREATION_PATH`], no authentication.
    pub fn api(&self, client: reqwest::Client) -> Api {
        Api::tus(client, &self.base, CREATION_PATH)
    }

    /// The peer's process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The file the peer stored upload `id` in: the file named `id` in its data directory,
    /// however deep.
    ///
    /// # Errors
    /// When there is none.
    pub fn stored_file(&self, id: &str) -> anyhow::Result<PathBuf> {
        find_file(self.data.path(), id)?.with_context(|| {
            format!(
                "{}: no file named {id} in its data directory {}",
                self.kind,
                self.data.path().display()
            )
        })
    }

    /// Whether it has exited, and the end of its log: for error messages.
    pub fn exit_report(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!("{} has exited ({status})", self.kind),
            Ok(None) => format!("{} is still running", self.kind),
            Err(e) => format!("{}'s state is unknown: {e}", self.kind),
        };
        format!("{status}\n{}", log_tail(&self.log))
    }

    /// Stops the peer (SIGTERM, then SIGKILL) and deletes its data directory.
    ///
    /// # Errors
    /// When it cannot be killed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if signalled
            && tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
                .await
                .is_ok()
        {
            return Ok(());
        }
        self.child.kill().await.context("killing the peer")
    }
}

/// The first file named `name` under `dir`, depth first.
fn find_file(dir: &Path, name: &str) -> anyhow::Result<Option<PathBuf>> {
    let direct = dir.join(name);
    if direct.is_file() {
        return Ok(Some(direct));
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if let Some(found) = find_file(&entry.path(), name)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

/// One peer's figures over the rounds, or why it was not measured.
#[derive(Clone, Debug)]
pub struct PeerFigures {
    /// Which peer.
    pub kind: PeerKind,
    /// What it is, with versions.
    pub label: String,
    /// Where it is installed; `None` once it could not be installed or started.
    pub(crate) installed: Option<PathBuf>,
    /// Why it was not (or no longer) measured: could not be built or started.
    pub(crate) unavailable: Option<String>,
    pub(crate) one_patch: Samples,
    pub(crate) chunked: Samples,
    pub(crate) chunked_small: Samples,
    pub(crate) huge: Samples,
    pub(crate) concurrent: Samples,
    pub(crate) small: SmallSamples,
    pub(crate) small_curl: SmallSamples,
    /// VmHWM after the big PATCH, bytes.
    pub(crate) rss_hwm: Samples,
    /// Measurements that failed (figure, error), e.g. an upload the peer refused or stored
    /// wrongly: such a round does not count.
    pub(crate) failures: Vec<(String, String)>,
}

impl PeerFigures {
    /// A peer as installed (or not).
    pub fn new(install: PeerInstall) -> Self {
        let (installed, unavailable) = match install.installed {
            Ok(path) => (Some(path), None),
            Err(reason) => (None, Some(format!("could not be installed here: {reason}"))),
        };
        Self {
            kind: install.kind,
            label: install.label,
            installed,
            unavailable,
            one_patch: Samples::default(),
            chunked: Samples::default(),
            chunked_small: Samples::default(),
            huge: Samples::default(),
            concurrent: Samples::default(),
            small: SmallSamples::default(),
            small_curl: SmallSamples::default(),
            rss_hwm: Samples::default(),
            failures: Vec::new(),
        }
    }
}

impl crate::Bench {
    /// One round of peer `index` of `figures.peers`: a fresh process, the same uploads as
    /// the service's (all but the S3 rows), each verified on disk. A peer that cannot be
    /// started is reported and left out of the later rounds; a measurement that fails is
    /// reported and does not count.
    pub(crate) async fn peer_round(&self, index: usize, figures: &mut crate::report::Figures) {
        let (kind, installed) = {
            let peer = &figures.peers[index];
            let Some(installed) = peer.installed.clone() else {
                return;
            };
            (peer.kind, installed)
        };
        let log = self.data_dir.join(format!("peer-{kind}.log"));
        let max_patch = [self.big.size(), self.huge.size(), self.concurrent.size()]
            .into_iter()
            .max()
            .unwrap_or(0);
        let started = PeerProcess::start(kind, &installed, &self.data_dir, &log, max_patch).await;
        let mut process = match started {
            Ok(process) => process,
            Err(e) => {
                let peer = &mut figures.peers[index];
                peer.installed = None;
                peer.unavailable = Some(format!("could not be started: {e:#}"));
                figures.note(format!("  peer {kind} could not be started: {e:#}"));
                return;
            }
        };
        let api = process.api(self.client.clone());
        // As for the service: the fresh process's first requests are not measured.
        let warm = async {
            let (_, created) = self.upload(&api, &self.small, self.small.size()).await?;
            self.verify_on_peer(&process, &created, &self.small).await
        }
        .await;
        if let Err(e) = warm {
            let report = process.exit_report();
            let peer = &mut figures.peers[index];
            peer.installed = None;
            peer.unavailable = Some(format!("failed its first upload: {e:#}"));
            figures.note(format!(
                "  peer {kind} failed its first upload: {e:#}\n{report}"
            ));
            let _ = process.stop().await;
            return;
        }
        for measurement in PeerMeasurement::ALL {
            if !self.options.runs_scenario(measurement.scenario()) {
                continue;
            }
            if measurement == PeerMeasurement::SmallCurl && self.small_file.is_none() {
                continue;
            }
            let outcome = self
                .peer_measurement(measurement, &process, &api, &mut figures.peers[index])
                .await;
            match outcome {
                Ok(line) => figures.note(format!("  peer {kind}: {line}")),
                Err(e) => {
                    let e = format!("{e:#}");
                    figures.note(format!(
                        "  peer {kind}: {} FAILED: {e}",
                        measurement.label(&self.options)
                    ));
                    figures.peers[index]
                        .failures
                        .push((measurement.label(&self.options), e));
                }
            }
        }
        if let Err(e) = process.stop().await {
            figures.note(format!("  peer {kind} could not be stopped: {e:#}"));
        }
    }

    /// One measurement on a peer; the line for the log.
    async fn peer_measurement(
        &self,
        measurement: PeerMeasurement,
        process: &PeerProcess,
        api: &Api,
        peer: &mut PeerFigures,
    ) -> anyhow::Result<String> {
        use crate::service::{proc_status_bytes, CpuMeter};
        let label = measurement.label(&self.options);
        let cpu = CpuMeter::start(process.pid());
        Ok(match measurement {
            PeerMeasurement::One
            | PeerMeasurement::Chunked
            | PeerMeasurement::ChunkedSmall
            | PeerMeasurement::Huge => {
                let (wav, patch) = match measurement {
                    PeerMeasurement::One => (&self.big, self.big.size()),
                    PeerMeasurement::Chunked => (&self.big, self.options.patch),
                    PeerMeasurement::ChunkedSmall => (&self.big, self.options.patch_small),
                    _ => (&self.huge, self.huge.size()),
                };
                let (took, created) = self.upload(api, wav, patch).await?;
                let cpu = cpu.stop();
                let hwm = proc_status_bytes(process.pid(), "VmHWM").unwrap_or(0);
                self.verify_on_peer(process, &created, wav).await?;
                let rate = crate::mb_per_s(wav.size(), took);
                match measurement {
                    PeerMeasurement::One => {
                        peer.one_patch.push(rate);
                        peer.rss_hwm.push(hwm as f64);
                        return Ok(format!(
                            "{label}: {rate:.0} MB/s ({cpu}); VmHWM {}",
                            crate::report::size(hwm)
                        ));
                    }
                    PeerMeasurement::Chunked => peer.chunked.push(rate),
                    PeerMeasurement::ChunkedSmall => peer.chunked_small.push(rate),
                    _ => peer.huge.push(rate),
                }
                format!("{label}: {rate:.0} MB/s ({cpu})")
            }
            PeerMeasurement::Concurrent => {
                let n = self.options.concurrent;
                let mut created = Vec::with_capacity(n);
                for _ in 0..n {
                    created.push(api.create_asset(self.concurrent.size()).await?);
                }
                let started = Instant::now();
                let mut uploads = tokio::task::JoinSet::new();
                for upload in &created {
                    let (api, wav, url) = (
                        api.clone(),
                        self.concurrent.clone(),
                        upload.upload_url.clone(),
                    );
                    uploads.spawn(async move { api.patch(&url, &wav, 0..wav.size()).await });
                }
                while let Some(done) = uploads.join_next().await {
                    done.context("an upload task failed")??;
                }
                let took = started.elapsed();
                let cpu = cpu.stop();
                for upload in &created {
                    self.verify_on_peer(process, upload, &self.concurrent)
                        .await?;
                }
                let rate = crate::mb_per_s(self.concurrent.size() * n as u64, took);
                peer.concurrent.push(rate);
                format!("{label}: {rate:.0} MB/s aggregate ({cpu})")
            }
            PeerMeasurement::Small | PeerMeasurement::SmallCurl => {
                let run = match (&self.small_file, measurement) {
                    (Some(file), PeerMeasurement::SmallCurl) => {
                        self.curl_small_uploads(api, file).await?
                    }
                    _ => self.small_uploads(api).await?,
                };
                let cpu = cpu.stop();
                for created in &run.created {
                    self.verify_on_peer(process, created, &self.small).await?;
                }
                if measurement == PeerMeasurement::SmallCurl {
                    peer.small_curl.push(&run);
                } else {
                    peer.small.push(&run);
                }
                format!(
                    "{label}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({cpu})",
                    run.rate, run.p50_ms, run.p99_ms
                )
            }
        })
    }

    /// Checks that the file the peer stored for `created` is exactly `wav`, then deletes it
    /// (so the next write reuses the blocks, as for the service).
    async fn verify_on_peer(
        &self,
        process: &PeerProcess,
        created: &crate::api::Created,
        wav: &crate::wav::Wav,
    ) -> anyhow::Result<()> {
        let path = process.stored_file(&created.asset_id)?;
        let expected = self.hash(wav)?;
        let hashed = path.clone();
        let (size, hash) = tokio::task::spawn_blocking(move || crate::api::hash_file(&hashed))
            .await
            .context("the hashing task failed")??;
        ensure!(
            size == wav.size(),
            "upload {}: {size} bytes stored, {} sent",
            created.asset_id,
            wav.size()
        );
        ensure!(
            hash == expected,
            "upload {}: stored SHA-256 {} differs from the sent {}",
            created.asset_id,
            hex::encode(hash),
            hex::encode(expected)
        );
        std::fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))
    }
}

/// What is measured on a peer: the service's figures but the S3 rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerMeasurement {
    One,
    Chunked,
    ChunkedSmall,
    Huge,
    Concurrent,
    Small,
    SmallCurl,
}

impl PeerMeasurement {
    const ALL: [Self; 7] = [
        Self::One,
        Self::Chunked,
        Self::ChunkedSmall,
        Self::Huge,
        Self::Concurrent,
        Self::Small,
        Self::SmallCurl,
    ];

    fn scenario(self) -> crate::Scenario {
        use crate::Scenario;
        match self {
            Self::One => Scenario::One,
            Self::Chunked | Self::ChunkedSmall => Scenario::Chunked,
            Self::Huge => Scenario::Huge,
            Self::Concurrent => Scenario::Concurrent,
            Self::Small | Self::SmallCurl => Scenario::Small,
        }
    }

    fn label(self, options: &crate::Options) -> String {
        use crate::report::size;
        let big = size(options.big);
        match self {
            Self::One => format!("one {big} PATCH"),
            Self::Chunked => format!("{big} as {} PATCHes", size(options.patch)),
            Self::ChunkedSmall => format!("{big} as {} PATCHes", size(options.patch_small)),
            Self::Huge => format!("one {} PATCH", size(options.huge)),
            Self::Concurrent => format!(
                "{} concurrent {} uploads",
                options.concurrent,
                size(options.concurrent_size)
            ),
            Self::Small => format!("{} small uploads, keep-alive", options.small_count),
            Self::SmallCurl => format!("{} small uploads, curl per request", options.small_count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_install_verdicts() {
        let peers = parse_install(
            "tus-node\t@tus/server 2.4.5 + @tus/file-store 2.1.1\tok\t/cache/tus-node-2.4.5\n\
             rustus\trustus 0.5.10\tfailed\terror[E0282]: type annotations needed\n",
        )
        .unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].kind, PeerKind::TusNode);
        assert_eq!(
            peers[0].installed.as_deref().ok(),
            Some(Path::new("/cache/tus-node-2.4.5"))
        );
        assert_eq!(peers[1].kind, PeerKind::Rustus);
        assert_eq!(
            peers[1].installed.as_ref().err().map(String::as_str),
            Some("error[E0282]: type annotations needed")
        );
        assert!(parse_install("nginx\tx\tok\t/x\n").is_err());
        assert!(parse_install("rustus\tok\n").is_err());
    }

    #[test]
    fn finds_stored_files_at_any_depth() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("2026/12")).unwrap();
        std::fs::write(dir.path().join("2026/12/abc"), b"x").unwrap();
        std::fs::write(dir.path().join("abc.info"), b"{}").unwrap();
        assert_eq!(
            find_file(dir.path(), "abc").unwrap(),
            Some(dir.path().join("2026/12/abc"))
        );
        assert_eq!(find_file(dir.path(), "nope").unwrap(), None);
    }
}
