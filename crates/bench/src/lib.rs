//! `roughy-bench`: measures uploads to roughy-server against this machine's own limits
//! (issue #5), in one run, and writes `bench/RESULTS.md`.
//!
//! Every figure is the median of [`Options::runs`] rounds. One round measures, in this order
//! (limits next to the figures they bound, so drift on a shared machine hits both alike):
//!
//! 1. the disk's limit: a sequential write of the big size to the directory the service stages
//!    uploads in, `fdatasync`ed at the end, through the page cache and with `O_DIRECT`, for
//!    each block size ([`disk`]);
//! 2. the HTTP client's limit: the same client PATCHing the big size to a loopback sink that
//!    discards ([`sink`]);
//! 3. a freshly started service ([`service`]): one big PATCH (its peak RSS sampled), the big
//!    size as 16 MiB PATCHes and as 5 MiB PATCHes, one huge PATCH, N concurrent uploads;
//! 4. the client's rate of create + 1 MiB PATCH against the sink, the filesystem steps of a
//!    durable small upload done directly, then the small uploads against the service; each
//!    with the keep-alive client, then with a new `curl` process per request ([`curl`]);
//! 5. with an S3 server (`scripts/s3s-fs run`, [`s3`]): the same `object_store` client
//!    uploading the big size in the service's part size straight to it (that server's limit),
//!    then a freshly started service with its blobs there: one big PATCH (its peak RSS
//!    sampled) and the big size as 16 MiB PATCHes;
//! 6. with `--peers` ([`peers`]): each other TUS server, freshly started, takes the same
//!    uploads with the same client (all but the S3 rows), so each figure has a ratio to the
//!    best peer of the same run.
//!
//! Every upload counts only once its asset is `ready` (the WAV was valid media) and its
//! stored object has the size and SHA-256 that was sent. Each asset is then deleted, so the
//! next write reuses what the previous one freed, as the limit's writes do.

#![allow(clippy::cast_precision_loss, reason = "byte counts as f64 rates")]

pub mod api;
pub mod curl;
pub mod disk;
pub mod peers;
mod report;
pub mod s3;
pub mod service;
pub mod sink;
pub mod wav;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;

use crate::api::{Api, Created};
use crate::disk::WriteMode;
use crate::peers::PeerFigures;
use crate::report::{Figures, Report};
use crate::s3::S3Env;
use crate::service::{proc_status_bytes, CpuMeter, RssSampler, ServerMode, Service, ADMIN_TOKEN};
use crate::sink::Sink;
use crate::wav::Wav;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// What to measure, how big and how often.
#[derive(Clone, Debug)]
pub struct Options {
    /// Rounds; each figure is the median over them.
    pub runs: usize,
    /// The big upload (1 GiB).
    pub big: u64,
    /// The huge upload, against which linearity is judged (4 GiB).
    pub huge: u64,
    /// The PATCH size of the chunked upload (16 MiB).
    pub patch: u64,
    /// The PATCH size of the second chunked upload (5 MiB: tus-js-client's and Uppy's
    /// typical chunk size).
    pub patch_small: u64,
    /// Small uploads per round (200).
    pub small_count: usize,
    /// The size of a small upload, sent in one PATCH (1 MiB).
    pub small_size: u64,
    /// Concurrent uploads (8).
    pub concurrent: usize,
    /// The size of each concurrent upload (128 MiB).
    pub concurrent_size: u64,
    /// The sequential writes of the disk's limit (how, block size); the best counts.
    pub disk_writes: Vec<(WriteMode, usize)>,
    /// Bytes written (and synced, then deleted) before the first round, so that measured
    /// writes land on blocks the (possibly thin-provisioned) disk has already allocated.
    pub warm_up: u64,
    /// How the service runs.
    pub server: ServerMode,
    /// Where to write the results (Markdown); `None`: only print them.
    pub out: Option<PathBuf>,
    /// Where the service's temporary data directory is created (the disk measured).
    pub data_parent: Option<PathBuf>,
    /// A smoke run: tiny sizes, and the targets are not judged.
    pub smoke: bool,
    /// The scenarios to run (all by default).
    pub scenarios: Vec<Scenario>,
    /// Keep the data directory (with the server's log) instead of deleting it.
    pub keep_data: bool,
    /// Install ([`peers::install`]) and measure the other TUS servers too.
    pub peers: bool,
}

/// A group of measurements, for running only some of them (`--only`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// The disk's and the client's limits for the big size.
    Limits,
    /// One big PATCH (and the server's peak RSS).
    One,
    /// The big size in 16 MiB PATCHes, and in 5 MiB PATCHes.
    Chunked,
    /// One huge PATCH.
    Huge,
    /// Concurrent uploads.
    Concurrent,
    /// Small uploads, and the client's rate against the sink: with the keep-alive client
    /// and with a new `curl` process per request.
    Small,
    /// The service with its blobs in S3, beside the direct `put_part` limit: one big PATCH
    /// (and the server's peak RSS), the big size in 16 MiB PATCHes. Needs the
    /// `ROUGHY_TEST_S3_*` variables of `scripts/s3s-fs run`; on by default when they are set.
    S3,
}

impl Scenario {
    /// Every scenario, in the order of a round.
    pub const ALL: [Self; 7] = [
        Self::Limits,
        Self::One,
        Self::Chunked,
        Self::Huge,
        Self::Concurrent,
        Self::Small,
        Self::S3,
    ];

    /// The scenarios run by default: all, [`Scenario::S3`] only when an S3 server's
    /// variables are set ([`S3Env::present`]).
    pub fn defaults() -> Vec<Self> {
        let s3 = S3Env::present();
        Self::ALL
            .into_iter()
            .filter(|s| *s != Self::S3 || s3)
            .collect()
    }

    /// The scenario named `name` (`limits`, `one`, `chunked`, `huge`, `concurrent`, `small`,
    /// `s3`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Limits => "limits",
            Self::One => "one",
            Self::Chunked => "chunked",
            Self::Huge => "huge",
            Self::Concurrent => "concurrent",
            Self::Small => "small",
            Self::S3 => "s3",
        }
    }
}

impl Options {
    /// The benchmark of issue #5: 5 rounds, 1 GiB, 4 GiB, 200 small uploads, 8 × 128 MiB,
    /// against the release binary; results to `bench/RESULTS.md`.
    pub fn full(server: PathBuf) -> Self {
        Self {
            runs: 5,
            big: GIB,
            huge: 4 * GIB,
            patch: 16 * MIB,
            patch_small: 5 * MIB,
            small_count: 200,
            small_size: MIB,
            concurrent: 8,
            concurrent_size: 128 * MIB,
            disk_writes: vec![
                (WriteMode::Buffered, 256 * KIB as usize),
                (WriteMode::Buffered, MIB as usize),
                (WriteMode::Buffered, 8 * MIB as usize),
                (WriteMode::Direct, MIB as usize),
                (WriteMode::Direct, 2 * MIB as usize),
            ],
            warm_up: 5 * GIB,
            server: ServerMode::Binary(server),
            out: Some(workspace_root().join("bench").join("RESULTS.md")),
            data_parent: None,
            smoke: false,
            scenarios: Scenario::defaults(),
            keep_data: false,
            peers: false,
        }
    }

    /// Every scenario once, tiny, with the service in-process: a few seconds.
    pub fn smoke() -> Self {
        Self {
            runs: 1,
            big: 8 * MIB,
            huge: 32 * MIB,
            patch: MIB,
            patch_small: 5 * MIB,
            small_count: 5,
            small_size: MIB,
            concurrent: 2,
            concurrent_size: 4 * MIB,
            disk_writes: vec![
                (WriteMode::Buffered, 256 * KIB as usize),
                (WriteMode::Direct, MIB as usize),
            ],
            warm_up: 0,
            server: ServerMode::InProcess,
            out: None,
            data_parent: None,
            smoke: true,
            scenarios: Scenario::defaults(),
            keep_data: false,
            peers: false,
        }
    }

    /// Whether `scenario` is to be run.
    pub fn runs_scenario(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }
}

/// The workspace root (where `bench/RESULTS.md` lives), as known at build time.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // `crates/bench` → the workspace root.
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// The release `roughy-server`: next to this executable (both live in `target/release/`
/// under `make bench`), else under the workspace's `target/release/`.
///
/// # Errors
/// When neither exists.
pub fn find_server_binary() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("roughy-server"));
        }
    }
    candidates.push(workspace_root().join("target/release/roughy-server"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "no roughy-server binary at {candidates:?}: build it first with \
                 `cargo build --release -p roughy-server` (`make bench` does)"
            )
        })
}

/// Runs the benchmark: prints progress to stderr, the table to stdout, and writes
/// [`Options::out`]. Returns the report.
///
/// # Errors
/// When anything fails, in particular when an upload is not stored exactly as sent.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let load_before = report::load_average();
    let data = match &options.data_parent {
        Some(parent) => tempfile::Builder::new()
            .prefix("roughy-bench-")
            .tempdir_in(parent),
        None => tempfile::Builder::new().prefix("roughy-bench-").tempdir(),
    }
    .context("creating the data directory")?;
    // Deleted at the end unless asked to keep it (with the server's log), even after a failure.
    let (data_dir, _cleanup) = if options.keep_data {
        let kept = data.keep();
        eprintln!("the data directory is kept: {}", kept.display());
        (kept, None)
    } else {
        (data.path().to_path_buf(), Some(data))
    };
    let bench = Bench::prepare(options, &data_dir).await?;

    let mut figures = Figures::default();
    if options.peers {
        let script = workspace_root().join("scripts").join("bench-peers");
        let installed = tokio::task::spawn_blocking(move || peers::install(&script))
            .await
            .context("the peer install task failed")??;
        figures.peers = installed.into_iter().map(PeerFigures::new).collect();
        let unavailable: Vec<String> = figures
            .peers
            .iter()
            .filter_map(|p| {
                let why = p.unavailable.as_ref()?;
                Some(format!("peer {} ({}) {why}", p.kind, p.label))
            })
            .collect();
        for line in unavailable {
            figures.note(line);
        }
    }
    if options.warm_up > 0 {
        let (path, wav, size) = (bench.seq_write_path(), bench.big.clone(), options.warm_up);
        let took = tokio::task::spawn_blocking(move || {
            disk::sequential_write(&path, &wav, size, MIB as usize, WriteMode::Buffered)
        })
        .await??;
        figures.note(format!(
            "warm-up: {} written (buffered) and synced at {:.0} MB/s",
            report::size(options.warm_up),
            mb_per_s(options.warm_up, took)
        ));
    }
    let sink = Sink::start().await.context("starting the sink")?;
    for round in 1..=options.runs {
        figures.note(format!("round {round}/{}", options.runs));
        if options.runs_scenario(Scenario::Limits) {
            bench.disk_limit(&mut figures).await?;
            bench.sink_limit(&sink, &mut figures).await?;
        }
        // A fresh process each round: its VmHWM then covers this round's big PATCH.
        let service = Service::start(&options.server, &data_dir).await?;
        let measured = async {
            bench.service_round(&service, &mut figures).await?;
            if options.runs_scenario(Scenario::Small) {
                bench.small_round(&service, &sink, &mut figures).await?;
            }
            anyhow::Ok(())
        }
        .await;
        service.stop().await?;
        measured?;
        if let Some(s3) = &bench.s3 {
            bench.s3_round(s3, round, &mut figures).await?;
        }
        for i in 0..figures.peers.len() {
            bench.peer_round(i, &mut figures).await;
        }
    }
    drop(sink);

    let report = Report::new(
        options,
        figures,
        &data_dir,
        load_before,
        report::load_average(),
        started.elapsed(),
    );
    report.print()?;
    if let Some(out) = &options.out {
        report.write(out)?;
        eprintln!("written to {}", out.display());
    }
    Ok(report)
}

/// The fixed parts of a run: the client, the content, the expected hashes.
#[derive(Debug)]
struct Bench {
    options: Options,
    data_dir: PathBuf,
    /// One keep-alive client for everything.
    client: reqwest::Client,
    big: Wav,
    huge: Wav,
    small: Wav,
    concurrent: Wav,
    /// The small file on disk, for `curl --data-binary @file`; `None` without curl (smoke
    /// runs only: a full run needs it).
    small_file: Option<PathBuf>,
    /// SHA-256 by size: every content of a size is the same.
    hashes: BTreeMap<u64, [u8; 32]>,
    /// The S3 server, when [`Scenario::S3`] is run.
    s3: Option<S3Bench>,
}

/// The S3 server of the S3 rows and the direct client to it.
#[derive(Debug)]
struct S3Bench {
    env: S3Env,
    store: std::sync::Arc<object_store::aws::AmazonS3>,
}

impl Bench {
    async fn prepare(options: &Options, data_dir: &Path) -> anyhow::Result<Self> {
        let big = Wav::new(options.big)?;
        let huge = Wav::new(options.huge)?;
        let small = Wav::new(options.small_size)?;
        let concurrent = Wav::new(options.concurrent_size)?;
        let mut hashing = JoinSet::new();
        for wav in [&big, &huge, &small, &concurrent] {
            let wav = wav.clone();
            hashing.spawn_blocking(move || (wav.size(), wav.sha256()));
        }
        let mut hashes = BTreeMap::new();
        while let Some(done) = hashing.join_next().await {
            let (size, hash) = done.context("hashing the content")?;
            hashes.insert(size, hash);
        }
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        std::fs::create_dir_all(data_dir.join("blobs").join("uploads"))
            .context("creating the upload directory")?;
        let small_file = if !options.runs_scenario(Scenario::Small) {
            None
        } else if curl::available().await {
            let path = data_dir.join("small.wav");
            let bytes: Vec<u8> = small.chunks(0..small.size()).flatten().collect();
            std::fs::write(&path, bytes).context("writing the small file for curl")?;
            Some(path)
        } else if options.smoke {
            eprintln!("note: no curl here: the smoke run leaves out the curl small uploads");
            None
        } else {
            anyhow::bail!(
                "the small uploads by a new client process per request need curl: install \
                 it, or leave them out with --only"
            );
        };
        // Asked for without an S3 server: an error, never a silent skip.
        let s3 = if options.runs_scenario(Scenario::S3) {
            let env = S3Env::from_env()?;
            env.create_bucket()?;
            let store = env.store()?;
            Some(S3Bench { env, store })
        } else {
            None
        };
        Ok(Self {
            options: options.clone(),
            data_dir: data_dir.to_path_buf(),
            client,
            big,
            huge,
            small,
            concurrent,
            small_file,
            hashes,
            s3,
        })
    }

    /// Where the disk's limit is measured: the directory the service stages uploads in.
    fn seq_write_path(&self) -> PathBuf {
        self.data_dir
            .join("blobs")
            .join("uploads")
            .join(".roughy-bench-seqwrite")
    }

    fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("blobs").join("objects")
    }

    fn hash(&self, wav: &Wav) -> anyhow::Result<[u8; 32]> {
        self.hashes
            .get(&wav.size())
            .copied()
            .context("no expected hash for this size")
    }

    /// How long processing may take: decoding runs at hundreds of MB/s at least.
    fn ready_timeout(size: u64) -> Duration {
        Duration::from_secs(120 + 60 * size.div_ceil(GIB))
    }

    async fn disk_limit(&self, figures: &mut Figures) -> anyhow::Result<()> {
        for &(mode, block) in &self.options.disk_writes {
            let path = self.seq_write_path();
            let wav = self.big.clone();
            let written = tokio::task::spawn_blocking(move || {
                disk::sequential_write(&path, &wav, wav.size(), block, mode)
            })
            .await?;
            let took = match written {
                Ok(took) => took,
                // The service falls back to the page cache there too.
                Err(e) if mode == WriteMode::Direct => {
                    figures.note(format!("  O_DIRECT write not available here: {e}"));
                    continue;
                }
                Err(e) => return Err(e).context("the sequential write"),
            };
            let rate = mb_per_s(self.big.size(), took);
            figures.disk.entry((mode, block)).or_default().push(rate);
            figures.note(format!(
                "  sequential write + fdatasync, {}, {} blocks: {rate:.0} MB/s",
                mode.label(),
                report::size(block as u64)
            ));
        }
        Ok(())
    }

    async fn sink_limit(&self, sink: &Sink, figures: &mut Figures) -> anyhow::Result<()> {
        let api = Api::unchecked(self.client.clone(), &sink.base());
        let created = api.create_asset(self.big.size()).await?;
        let started = Instant::now();
        api.patch(&created.upload_url, &self.big, 0..self.big.size())
            .await?;
        let rate = mb_per_s(self.big.size(), started.elapsed());
        figures.sink_big.push(rate);
        figures.note(format!(
            "  client → discarding sink, one PATCH: {rate:.0} MB/s"
        ));
        Ok(())
    }

    /// The large-upload figures against a freshly started service.
    async fn service_round(&self, service: &Service, figures: &mut Figures) -> anyhow::Result<()> {
        let api = Api::provision(self.client.clone(), service.base(), ADMIN_TOKEN).await?;
        let big = report::size(self.big.size());
        // One small upload first, so that the measured PATCH does not also pay for the fresh
        // process's first requests (connections to open, caches to fill). The peak RSS still
        // covers the big PATCH: a small upload needs far less.
        let (_, created) = self.upload(&api, &self.small, self.small.size()).await?;
        self.settle(&api, &created, &self.small).await?;

        if self.options.runs_scenario(Scenario::One) {
            // One big PATCH, with the server's memory watched.
            let sampler = RssSampler::start(service.pid());
            let cpu = CpuMeter::start(service.pid());
            let (took, created) = self.upload(&api, &self.big, self.big.size()).await?;
            let cpu = cpu.stop();
            let sampled = sampler.stop();
            let hwm = proc_status_bytes(service.pid(), "VmHWM").unwrap_or(0);
            self.settle(&api, &created, &self.big).await?;
            let rate = mb_per_s(self.big.size(), took);
            figures.one_patch.push(rate);
            figures.rss_hwm.push(hwm as f64);
            figures.rss_sampled.push(sampled as f64);
            figures.rss_is_server = service.is_child();
            figures.note(format!(
                "  one {big} PATCH: {rate:.0} MB/s ({cpu}); server VmHWM {}, sampled VmRSS peak {}",
                report::size(hwm),
                report::size(sampled)
            ));
        }

        if self.options.runs_scenario(Scenario::Chunked) {
            for small_chunks in [false, true] {
                let patch = if small_chunks {
                    self.options.patch_small
                } else {
                    self.options.patch
                };
                let cpu = CpuMeter::start(service.pid());
                let (took, created) = self.upload(&api, &self.big, patch).await?;
                let cpu = cpu.stop();
                self.settle(&api, &created, &self.big).await?;
                let rate = mb_per_s(self.big.size(), took);
                if small_chunks {
                    figures.chunked_small.push(rate);
                } else {
                    figures.chunked.push(rate);
                }
                figures.note(format!(
                    "  {big} as {} PATCHes: {rate:.0} MB/s ({cpu})",
                    report::size(patch)
                ));
            }
        }

        if self.options.runs_scenario(Scenario::Huge) {
            let cpu = CpuMeter::start(service.pid());
            let (took, created) = self.upload(&api, &self.huge, self.huge.size()).await?;
            let cpu = cpu.stop();
            self.settle(&api, &created, &self.huge).await?;
            let rate = mb_per_s(self.huge.size(), took);
            figures.huge.push(rate);
            figures.note(format!(
                "  one {} PATCH: {rate:.0} MB/s ({cpu})",
                report::size(self.huge.size())
            ));
        }

        if self.options.runs_scenario(Scenario::Concurrent) {
            let cpu = CpuMeter::start(service.pid());
            let rate = self.concurrent_uploads(&api).await?;
            figures.concurrent.push(rate);
            figures.note(format!(
                "  {} concurrent {} uploads: {rate:.0} MB/s aggregate ({}, incl. verification)",
                self.options.concurrent,
                report::size(self.concurrent.size()),
                cpu.stop()
            ));
        }
        Ok(())
    }

    /// Creates an asset for `wav` and uploads it in PATCHes of `patch` bytes; the time of the
    /// PATCHes.
    async fn upload(
        &self,
        api: &Api,
        wav: &Wav,
        patch: u64,
    ) -> anyhow::Result<(Duration, Created)> {
        let created = api.create_asset(wav.size()).await?;
        let started = Instant::now();
        let mut offset = 0;
        while offset < wav.size() {
            let end = (offset + patch).min(wav.size());
            api.patch(&created.upload_url, wav, offset..end).await?;
            offset = end;
        }
        Ok((started.elapsed(), created))
    }

    /// Waits for the asset to be processed, verifies its bytes, and deletes it.
    async fn settle(&self, api: &Api, created: &Created, wav: &Wav) -> anyhow::Result<()> {
        self.settle_in(api, created, wav, &self.objects_dir()).await
    }

    /// [`Bench::settle`] for a service whose finished objects are files in `objects_dir`
    /// (else downloaded through the asset's `download_url`).
    async fn settle_in(
        &self,
        api: &Api,
        created: &Created,
        wav: &Wav,
        objects_dir: &Path,
    ) -> anyhow::Result<()> {
        let asset = api
            .ready(&created.asset_id, Self::ready_timeout(wav.size()))
            .await?;
        api.verify(&asset, objects_dir, wav, self.hash(wav)?)
            .await?;
        api.delete_asset(&created.asset_id).await
    }

    /// The S3 rows of one round: the direct `put_part` limit, then a fresh service with its
    /// blobs in the same bucket.
    async fn s3_round(
        &self,
        s3: &S3Bench,
        round: usize,
        figures: &mut Figures,
    ) -> anyhow::Result<()> {
        let big = report::size(self.big.size());
        let parts = report::size(s3::PART_SIZE as u64);
        let direct = s3::put_parts_directly(
            &s3.store,
            &format!("direct/round-{round}"),
            &self.big,
            s3::PART_SIZE,
            s3::PARTS_IN_FLIGHT,
        )
        .await
        .context("the direct put_part upload to S3")?;
        let rate = mb_per_s(self.big.size(), direct.parts);
        figures.s3_direct.push(rate);
        figures.note(format!(
            "  S3: object_store put_part of {big} in {parts} parts, {} in flight, straight to \
             the server: {rate:.0} MB/s (complete_multipart after it: {:.2} s)",
            s3::PARTS_IN_FLIGHT,
            direct.complete.as_secs_f64()
        ));

        let service =
            Service::start_with(&self.options.server, &self.data_dir, &s3.env.service_env())
                .await
                .context("starting the service on S3")?;
        let mut service = service;
        let measured = match self.s3_service_round(s3, &service, figures).await {
            // A server that died mid-round: say so, with its log.
            Err(e) => Err(e.context(service.exit_report())),
            ok => ok,
        };
        service.stop().await?;
        measured
    }

    async fn s3_service_round(
        &self,
        s3: &S3Bench,
        service: &Service,
        figures: &mut Figures,
    ) -> anyhow::Result<()> {
        let api = Api::provision(self.client.clone(), service.base(), ADMIN_TOKEN).await?;
        let big = report::size(self.big.size());
        // The smoke run downloads through the presigned `download_url` (no such directory),
        // so that path is exercised too; the full run reads the bucket's files (cheaper).
        let objects_dir = if self.options.smoke {
            self.data_dir.join("no-objects-dir: download")
        } else {
            s3.env.objects_dir()
        };
        // As in `service_round`: the fresh process's first requests are not measured.
        let (_, created) = self.upload(&api, &self.small, self.small.size()).await?;
        self.settle_in(&api, &created, &self.small, &objects_dir)
            .await?;

        let sampler = RssSampler::start(service.pid());
        let cpu = CpuMeter::start(service.pid());
        let (took, created) = self.upload(&api, &self.big, self.big.size()).await?;
        let cpu = cpu.stop();
        let sampled = sampler.stop();
        let hwm = proc_status_bytes(service.pid(), "VmHWM").unwrap_or(0);
        self.settle_in(&api, &created, &self.big, &objects_dir)
            .await?;
        let rate = mb_per_s(self.big.size(), took);
        figures.s3_one.push(rate);
        figures.s3_rss_hwm.push(hwm as f64);
        figures.s3_rss_sampled.push(sampled as f64);
        figures.rss_is_server = service.is_child();
        figures.note(format!(
            "  S3: one {big} PATCH: {rate:.0} MB/s ({cpu}); server VmHWM {}, sampled VmRSS peak {}",
            report::size(hwm),
            report::size(sampled)
        ));

        let cpu = CpuMeter::start(service.pid());
        let (took, created) = self.upload(&api, &self.big, self.options.patch).await?;
        let cpu = cpu.stop();
        self.settle_in(&api, &created, &self.big, &objects_dir)
            .await?;
        let rate = mb_per_s(self.big.size(), took);
        figures.s3_chunked.push(rate);
        figures.note(format!(
            "  S3: {big} as {} PATCHes: {rate:.0} MB/s ({cpu})",
            report::size(self.options.patch)
        ));
        Ok(())
    }

    /// N uploads at once, each one PATCH on its own connection; the aggregate MB/s.
    async fn concurrent_uploads(&self, api: &Api) -> anyhow::Result<f64> {
        let mut created = Vec::with_capacity(self.options.concurrent);
        for _ in 0..self.options.concurrent {
            created.push(api.create_asset(self.concurrent.size()).await?);
        }
        let started = Instant::now();
        let mut uploads = JoinSet::new();
        for asset in &created {
            let (api, wav, url) = (
                api.clone(),
                self.concurrent.clone(),
                asset.upload_url.clone(),
            );
            uploads.spawn(async move { api.patch(&url, &wav, 0..wav.size()).await });
        }
        while let Some(done) = uploads.join_next().await {
            done.context("an upload task failed")??;
        }
        let took = started.elapsed();
        for asset in &created {
            self.settle(api, asset, &self.concurrent).await?;
        }
        Ok(mb_per_s(
            self.concurrent.size() * self.options.concurrent as u64,
            took,
        ))
    }

    /// Small uploads, one after the other on one keep-alive client: against the sink (the
    /// limit), then against the service.
    async fn small_round(
        &self,
        service: &Service,
        sink: &Sink,
        figures: &mut Figures,
    ) -> anyhow::Result<()> {
        let limit = self
            .small_uploads(&Api::unchecked(self.client.clone(), &sink.base()))
            .await?;
        figures.sink_small.push(&limit);
        figures.note(format!(
            "  client → discarding sink, create + {} PATCH: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
            report::size(self.small.size()),
            limit.rate,
            limit.p50_ms,
            limit.p99_ms
        ));

        let (dir, wav, count) = (
            self.data_dir.join("bench-small-files"),
            self.small.clone(),
            self.options.small_count,
        );
        let floor =
            tokio::task::spawn_blocking(move || disk::durable_small_files(&dir, &wav, count))
                .await?
                .context("the durable small-file writes")?;
        figures.small_floor.push(floor);
        figures.note(format!(
            "  filesystem steps of a durable {} upload, done directly: {floor:.0}/s",
            report::size(self.small.size())
        ));

        let api = Api::provision(self.client.clone(), service.base(), ADMIN_TOKEN).await?;
        let small = self.small_uploads(&api).await?;
        for created in &small.created {
            self.settle(&api, created, &self.small).await?;
        }
        figures.small.push(&small);
        figures.note(format!(
            "  {} small uploads (create + {} PATCH): {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
            self.options.small_count,
            report::size(self.small.size()),
            small.rate,
            small.p50_ms,
            small.p99_ms
        ));

        if let Some(file) = &self.small_file {
            let sink_api = Api::unchecked(self.client.clone(), &sink.base());
            let limit = self.curl_small_uploads(&sink_api, file).await?;
            figures.sink_small_curl.push(&limit);
            figures.note(format!(
                "  curl per request → discarding sink, create + {} PATCH: {:.0}/s, p50 {:.2} \
                 ms, p99 {:.2} ms",
                report::size(self.small.size()),
                limit.rate,
                limit.p50_ms,
                limit.p99_ms
            ));
            let small = self.curl_small_uploads(&api, file).await?;
            for created in &small.created {
                self.settle(&api, created, &self.small).await?;
            }
            figures.small_curl.push(&small);
            figures.note(format!(
                "  {} small uploads, curl per request: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
                self.options.small_count, small.rate, small.p50_ms, small.p99_ms
            ));
        }
        Ok(())
    }

    /// [`Bench::small_uploads`] with a new `curl` process for each request.
    async fn curl_small_uploads(&self, api: &Api, file: &Path) -> anyhow::Result<SmallRun> {
        let n = self.options.small_count;
        let mut latencies = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            created.push(curl::upload(api, file, self.small.size()).await?);
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(SmallRun::new(latencies, started.elapsed(), created))
    }

    async fn small_uploads(&self, api: &Api) -> anyhow::Result<SmallRun> {
        let n = self.options.small_count;
        let mut latencies = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            let asset = api.create_asset(self.small.size()).await?;
            api.patch(&asset.upload_url, &self.small, 0..self.small.size())
                .await?;
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            created.push(asset);
        }
        Ok(SmallRun::new(latencies, started.elapsed(), created))
    }
}

/// One round of small uploads.
#[derive(Debug)]
struct SmallRun {
    /// Uploads per second.
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    created: Vec<Created>,
}

impl SmallRun {
    /// From each upload's latency (ms) and the time all took.
    fn new(mut latencies: Vec<f64>, took: Duration, created: Vec<Created>) -> Self {
        latencies.sort_by(f64::total_cmp);
        Self {
            rate: latencies.len() as f64 / took.as_secs_f64().max(1e-9),
            p50_ms: percentile(&latencies, 50.0),
            p99_ms: percentile(&latencies, 99.0),
            created,
        }
    }
}

/// The `p`-th percentile (nearest rank) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Decimal megabytes per second, as `dd` reports them.
fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64().max(1e-9) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 100.0);
        assert_eq!(percentile(&values, 99.0), 198.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
