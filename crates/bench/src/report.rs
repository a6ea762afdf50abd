//! The results: medians, ratios to the limits, the machine, as one Markdown document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::disk::WriteMode;
use crate::peers::PeerFigures;
use crate::service::ServerMode;
use crate::{s3, workspace_root, Options, Scenario, SmallRun};

/// The memory bound of issue #5: peak RSS during the big PATCH.
const RSS_LIMIT: u64 = 64 * 1024 * 1024;

/// The values of one figure, one per round.
#[derive(Clone, Debug, Default)]
pub struct Samples(Vec<f64>);

impl Samples {
    pub(crate) fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    /// The median (the mean of the middle two for an even count); NaN when empty.
    pub fn median(&self) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    /// Every value, formatted with `decimals`.
    fn list(&self, decimals: usize) -> String {
        self.0
            .iter()
            .map(|v| format!("{v:.decimals$}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Rate and latency percentiles of small-upload rounds.
#[derive(Clone, Debug, Default)]
pub struct SmallSamples {
    rate: Samples,
    p50_ms: Samples,
    p99_ms: Samples,
}

impl SmallSamples {
    pub(crate) fn push(&mut self, run: &SmallRun) {
        self.rate.push(run.rate);
        self.p50_ms.push(run.p50_ms);
        self.p99_ms.push(run.p99_ms);
    }
}

/// Everything measured, one value per round, and the log of the rounds.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Sequential write + fdatasync, MB/s, by how and block size.
    pub(crate) disk: BTreeMap<(WriteMode, usize), Samples>,
    /// Client → discarding sink, one big PATCH, MB/s.
    pub(crate) sink_big: Samples,
    pub(crate) one_patch: Samples,
    pub(crate) chunked: Samples,
    /// The big size in PATCHes of [`Options::patch_small`], MB/s.
    pub(crate) chunked_small: Samples,
    pub(crate) huge: Samples,
    pub(crate) concurrent: Samples,
    pub(crate) small: SmallSamples,
    pub(crate) sink_small: SmallSamples,
    /// Small uploads with a new `curl` process per request.
    pub(crate) small_curl: SmallSamples,
    /// The same against the sink.
    pub(crate) sink_small_curl: SmallSamples,
    /// VmHWM after the big PATCH, bytes.
    pub(crate) rss_hwm: Samples,
    /// The largest VmRSS sampled every 10 ms during the big PATCH, bytes.
    pub(crate) rss_sampled: Samples,
    /// Whether the RSS is the server's own (a child process) rather than this process's.
    pub(crate) rss_is_server: bool,
    /// The filesystem steps of durable small uploads, done directly, per second.
    pub(crate) small_floor: Samples,
    /// The same `object_store` client's `put_part`s of the big size straight to S3, MB/s.
    pub(crate) s3_direct: Samples,
    /// The service on S3: one big PATCH, MB/s.
    pub(crate) s3_one: Samples,
    /// The service on S3: the big size in PATCHes of [`Options::patch`], MB/s.
    pub(crate) s3_chunked: Samples,
    /// The service on S3: VmHWM after the big PATCH, bytes.
    pub(crate) s3_rss_hwm: Samples,
    /// The service on S3: the largest VmRSS sampled during the big PATCH, bytes.
    pub(crate) s3_rss_sampled: Samples,
    /// The peers (`--peers`), measured or not.
    pub(crate) peers: Vec<PeerFigures>,
    /// What each round measured, with CPU times: printed as it happens, kept for the report.
    pub(crate) log: Vec<String>,
}

impl Figures {
    /// Prints a line of progress to stderr and keeps it for the report.
    pub(crate) fn note(&mut self, line: String) {
        eprintln!("{line}");
        self.log.push(line);
    }

    /// The best sequential write among `modes`: (mode, block size, samples).
    fn best_disk(&self, modes: &[WriteMode]) -> Option<(WriteMode, usize, &Samples)> {
        self.disk
            .iter()
            .filter(|((mode, _), _)| modes.contains(mode))
            .max_by(|a, b| a.1.median().total_cmp(&b.1.median()))
            .map(|((mode, block), s)| (*mode, *block, s))
    }
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// Its median.
    pub value: String,
    /// What it is compared with.
    pub limit: String,
    /// value / limit, when there is a ratio.
    pub ratio: Option<f64>,
    /// The target of issue #5.
    pub target: String,
    /// Whether the target is met (`None`: no target).
    pub met: Option<bool>,
    /// Each round's value.
    pub runs: String,
    /// The best peer's median of the same figure in the same run, and which peer.
    pub peer: String,
    /// value / the best peer's (higher is better for rates, lower for times and memory).
    pub vs_peer: Option<f64>,
}

/// The results of a run.
#[derive(Clone, Debug)]
pub struct Report {
    rows: Vec<Row>,
    markdown: String,
}

impl Report {
    pub(crate) fn new(
        options: &Options,
        figures: Figures,
        data_dir: &Path,
        load_before: String,
        load_after: String,
        elapsed: Duration,
    ) -> Self {
        let rows = rows(options, &figures);
        let markdown = markdown(
            options,
            &figures,
            &rows,
            data_dir,
            &load_before,
            &load_after,
            elapsed,
        );
        Self { rows, markdown }
    }

    /// The table's rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Whether every figure with a target meets it.
    pub fn targets_met(&self) -> bool {
        self.rows.iter().all(|r| r.met != Some(false))
    }

    /// The whole document (machine, table, rounds, method).
    pub fn markdown(&self) -> &str {
        &self.markdown
    }

    /// Prints the table to stdout.
    ///
    /// # Errors
    /// When stdout cannot be written.
    pub fn print(&self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out)?;
        out.write_all(table(&self.rows).as_bytes())?;
        out.flush()
    }

    /// Writes the document to `path`, creating its directory.
    ///
    /// # Errors
    /// When it cannot be written.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, &self.markdown)
    }
}

fn rows(options: &Options, f: &Figures) -> Vec<Row> {
    let big = size(options.big);
    let empty = Samples::default();
    let (disk_mode, disk_block, disk) = f
        .best_disk(&[WriteMode::Buffered, WriteMode::Direct])
        .unwrap_or((WriteMode::Buffered, 0, &empty));
    let buffered = f
        .best_disk(&[WriteMode::Buffered])
        .map_or(f64::NAN, |(_, _, s)| s.median());
    let disk_mbs = disk.median();
    let sink_mbs = f.sink_big.median();
    let limit = disk_mbs.min(sink_mbs);
    let limit_text = format!("L = {limit:.0} MB/s");
    let judged = !options.smoke;
    let at_least = |value: f64, min: f64| Some(judged.then_some(value >= min)).flatten();
    let throughput = |figure: String, s: &Samples, target: Option<f64>| {
        let ratio = s.median() / limit;
        Row {
            figure,
            value: format!("{:.0} MB/s", s.median()),
            limit: limit_text.clone(),
            ratio: Some(ratio),
            target: target.map_or("—".to_owned(), |t| format!("≥ {t:.2}")),
            met: target.and_then(|t| at_least(ratio, t)),
            runs: s.list(0),
            peer: String::new(),
            vs_peer: None,
        }
    };
    let info = |figure: String, value: String, runs: String| Row {
        figure,
        value,
        limit: String::new(),
        ratio: None,
        target: String::new(),
        met: None,
        runs,
        peer: String::new(),
        vs_peer: None,
    };

    let mb_s = |v: f64| format!("{v:.0} MB/s");
    let per_s = |v: f64| format!("{v:.0}/s");
    let ms = |v: f64| format!("{v:.2} ms");
    let mut rows = vec![
        info(
            format!(
                "Limit: sequential write of {big} + fdatasync to the same disk, best of buffered and \
                 O_DIRECT over block sizes ({}, {} blocks)",
                disk_mode.label(),
                size(disk_block as u64)
            ),
            format!("{disk_mbs:.0} MB/s"),
            disk.list(0),
        ),
        info(
            "… buffered only, best block size (the issue's `dd conv=fsync`)".to_owned(),
            format!("{buffered:.0} MB/s"),
            String::new(),
        ),
        info(
            format!("Limit: the same client PATCHing {big} to a loopback sink that discards"),
            format!("{sink_mbs:.0} MB/s"),
            f.sink_big.list(0),
        ),
        against_peers(
            throughput(format!("One {big} PATCH"), &f.one_patch, Some(0.90)),
            f.one_patch.median(),
            f,
            |p| p.one_patch.median(),
            Better::Higher,
            mb_s,
        ),
        against_peers(
            throughput(
                format!(
                    "{big} as {} PATCHes of {}",
                    options.big.div_ceil(options.patch),
                    size(options.patch)
                ),
                &f.chunked,
                Some(0.85),
            ),
            f.chunked.median(),
            f,
            |p| p.chunked.median(),
            Better::Higher,
            mb_s,
        ),
        against_peers(
            throughput(
                format!(
                    "{big} as {} PATCHes of {} (tus-js-client's and Uppy's typical chunk size)",
                    options.big.div_ceil(options.patch_small),
                    size(options.patch_small)
                ),
                &f.chunked_small,
                // Issue #11's target for tus-js-client's and Uppy's chunk size.
                Some(0.70),
            ),
            f.chunked_small.median(),
            f,
            |p| p.chunked_small.median(),
            Better::Higher,
            mb_s,
        ),
        against_peers(
            throughput(format!("One {} PATCH", size(options.huge)), &f.huge, None),
            f.huge.median(),
            f,
            |p| p.huge.median(),
            Better::Higher,
            mb_s,
        ),
    ];

    let linearity = f.huge.median() / f.one_patch.median();
    rows.push(Row {
        figure: format!("Linearity: {} vs {big} throughput", size(options.huge)),
        value: format!("{linearity:.3}"),
        limit: "1.000".to_owned(),
        ratio: Some(linearity),
        target: "1 ± 0.05".to_owned(),
        met: judged.then_some((linearity - 1.0).abs() <= 0.05),
        runs: String::new(),
        peer: String::new(),
        vs_peer: None,
    });
    rows.push(against_peers(
        throughput(
            format!(
                "{} concurrent {} uploads, aggregate",
                options.concurrent,
                size(options.concurrent_size)
            ),
            &f.concurrent,
            Some(0.85),
        ),
        f.concurrent.median(),
        f,
        |p| p.concurrent.median(),
        Better::Higher,
        mb_s,
    ));

    // Each small-upload client: its rate against the same client on the sink (issue #11:
    // ≥ 0.85 for both), then its latencies; the filesystem floor after the keep-alive rate.
    let p50: fn(&SmallSamples) -> f64 = |s| s.p50_ms.median();
    let p99: fn(&SmallSamples) -> f64 = |s| s.p99_ms.median();
    let keep_alive: fn(&PeerFigures) -> &SmallSamples = |p| &p.small;
    let curl_each: fn(&PeerFigures) -> &SmallSamples = |p| &p.small_curl;
    let clients = [
        (
            "one keep-alive client",
            "",
            &f.small,
            &f.sink_small,
            keep_alive,
        ),
        (
            "a new `curl` process per request",
            ", curl per request",
            &f.small_curl,
            &f.sink_small_curl,
            curl_each,
        ),
    ];
    for (client, latency_of, ours, sink, peer_samples) in clients {
        let ratio = ours.rate.median() / sink.rate.median();
        rows.push(against_peers(
            Row {
                figure: format!(
                    "{} small uploads (create + one {} PATCH, finalised), {client}",
                    options.small_count,
                    size(options.small_size)
                ),
                value: format!("{:.0} uploads/s", ours.rate.median()),
                limit: format!("sink: {:.0}/s", sink.rate.median()),
                ratio: Some(ratio),
                target: "≥ 0.85".to_owned(),
                met: at_least(ratio, 0.85),
                runs: ours.rate.list(0),
                peer: String::new(),
                vs_peer: None,
            },
            ours.rate.median(),
            f,
            |p| peer_samples(p).rate.median(),
            Better::Higher,
            per_s,
        ));
        if latency_of.is_empty() {
            let floor = f.small_floor.median();
            rows.push(Row {
                figure: format!(
                    "… vs the filesystem steps of one durable {} upload done directly (create + \
                     dir fsync, write + fdatasync, rename + 2 dir fsyncs)",
                    size(options.small_size)
                ),
                value: format!("{:.0} uploads/s", ours.rate.median()),
                limit: format!("fs: {floor:.0}/s"),
                ratio: Some(ours.rate.median() / floor),
                target: "—".to_owned(),
                met: None,
                runs: f.small_floor.list(0),
                peer: String::new(),
                vs_peer: None,
            });
        }
        for (name, ours, floor, pick) in [
            ("p50", &ours.p50_ms, &sink.p50_ms, p50),
            ("p99", &ours.p99_ms, &sink.p99_ms, p99),
        ] {
            rows.push(against_peers(
                Row {
                    figure: format!("Small upload latency {name}{latency_of} (create + PATCH)"),
                    value: format!("{:.2} ms", ours.median()),
                    limit: format!("sink: {:.2} ms", floor.median()),
                    ratio: Some(ours.median() / floor.median()),
                    target: "—".to_owned(),
                    met: None,
                    runs: ours.list(2),
                    peer: String::new(),
                    vs_peer: None,
                },
                ours.median(),
                f,
                |p| pick(peer_samples(p)),
                Better::Lower,
                ms,
            ));
        }
    }

    let hwm = f.rss_hwm.median();
    let whose = if f.rss_is_server {
        "server"
    } else {
        "in-process: this process's"
    };
    rows.push(against_peers(
        Row {
            figure: format!(
                "Peak RSS ({whose} VmHWM) during the {big} PATCH; sampled VmRSS peak {}",
                size(f.rss_sampled.median() as u64)
            ),
            value: size(hwm as u64),
            limit: size(RSS_LIMIT),
            ratio: Some(hwm / RSS_LIMIT as f64),
            target: "≤ 1.00".to_owned(),
            met: (judged && f.rss_is_server).then_some(hwm <= RSS_LIMIT as f64),
            runs: f
                .rss_hwm
                .0
                .iter()
                .map(|b| size(*b as u64))
                .collect::<Vec<_>>()
                .join(", "),
            peer: String::new(),
            vs_peer: None,
        },
        hwm,
        f,
        // This process's memory (in-process) is no peer's to compare with.
        |p| {
            if f.rss_is_server {
                p.rss_hwm.median()
            } else {
                f64::NAN
            }
        },
        Better::Lower,
        |b| size(b as u64),
    ));
    if options.runs_scenario(Scenario::S3) {
        rows.extend(s3_rows(options, f));
    }
    rows
}

/// Which way a figure is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Better {
    /// Rates.
    Higher,
    /// Times and memory.
    Lower,
}

/// `row` with its best-peer columns: the best of the peers' medians of the same figure (`pick`)
/// and `ours` / it. Unchanged without peers; "—" when no peer has that figure.
fn against_peers(
    mut row: Row,
    ours: f64,
    f: &Figures,
    pick: impl Fn(&PeerFigures) -> f64,
    better: Better,
    unit: impl Fn(f64) -> String,
) -> Row {
    if f.peers.is_empty() {
        return row;
    }
    let best = f
        .peers
        .iter()
        .map(|p| (pick(p), p.kind.name()))
        .filter(|(v, _)| v.is_finite())
        .reduce(|a, b| {
            let b_better = match better {
                Better::Higher => b.0 > a.0,
                Better::Lower => b.0 < a.0,
            };
            if b_better {
                b
            } else {
                a
            }
        });
    match best {
        Some((value, name)) => {
            row.peer = format!("{} ({name})", unit(value));
            row.vs_peer = Some(ours / value);
        }
        None => row.peer = "—".to_owned(),
    }
    row
}

/// The memory bound of the S3 rows: the local bound plus the parts a PATCH may hold.
fn s3_rss_limit() -> u64 {
    RSS_LIMIT + (s3::PART_SIZE * s3::PARTS_IN_FLIGHT) as u64
}

/// The S3 rows: the service on s3s-fs against the direct `put_part` limit of the same run.
fn s3_rows(options: &Options, f: &Figures) -> Vec<Row> {
    let big = size(options.big);
    let judged = !options.smoke;
    let direct = f.s3_direct.median();
    let limit_text = format!("D = {direct:.0} MB/s");
    let throughput = |figure: String, s: &Samples, target: f64| {
        let ratio = s.median() / direct;
        Row {
            figure,
            value: format!("{:.0} MB/s", s.median()),
            limit: limit_text.clone(),
            ratio: Some(ratio),
            target: format!("≥ {target:.2}"),
            met: judged.then_some(ratio >= target),
            runs: s.list(0),
            peer: String::new(),
            vs_peer: None,
        }
    };
    let rss_limit = s3_rss_limit();
    let hwm = f.s3_rss_hwm.median();
    let whose = if f.rss_is_server {
        "server"
    } else {
        "in-process: this process's"
    };
    vec![
        Row {
            figure: format!(
                "S3 limit D: the same object_store client put_part-ing {big} straight to s3s-fs \
                 ({} parts, {} in flight)",
                size(s3::PART_SIZE as u64),
                s3::PARTS_IN_FLIGHT
            ),
            value: format!("{direct:.0} MB/s"),
            limit: String::new(),
            ratio: None,
            target: String::new(),
            met: None,
            runs: f.s3_direct.list(0),
            peer: String::new(),
            vs_peer: None,
        },
        throughput(format!("S3: one {big} PATCH"), &f.s3_one, 0.8),
        throughput(
            format!(
                "S3: {big} as {} PATCHes of {}",
                options.big.div_ceil(options.patch),
                size(options.patch)
            ),
            &f.s3_chunked,
            0.7,
        ),
        Row {
            figure: format!(
                "S3: peak RSS ({whose} VmHWM) during the {big} PATCH; sampled VmRSS peak {}; \
                 limit 64 MiB + {} parts × {} in flight",
                size(f.s3_rss_sampled.median() as u64),
                size(s3::PART_SIZE as u64),
                s3::PARTS_IN_FLIGHT
            ),
            value: size(hwm as u64),
            limit: size(rss_limit),
            ratio: Some(hwm / rss_limit as f64),
            target: "≤ 1.00".to_owned(),
            met: (judged && f.rss_is_server).then_some(hwm <= rss_limit as f64),
            runs: f
                .s3_rss_hwm
                .0
                .iter()
                .map(|b| size(*b as u64))
                .collect::<Vec<_>>()
                .join(", "),
            peer: String::new(),
            vs_peer: None,
        },
    ]
}

/// The table; with the best-peer columns when peers were measured.
fn table(rows: &[Row]) -> String {
    let peers = rows.iter().any(|r| !r.peer.is_empty());
    let mut out = if peers {
        String::from(
            "| Figure | Median | Limit | Ratio | Target | Met | Best peer (same run) | ÷ best peer | Rounds |\n\
             |---|---:|---:|---:|---|:-:|---:|---:|---|\n",
        )
    } else {
        String::from(
            "| Figure | Median | Limit | Ratio | Target | Met | Rounds |\n|---|---:|---:|---:|---|:-:|---|\n",
        )
    };
    for r in rows {
        let ratio = r.ratio.map_or(String::new(), |x| format!("{x:.2}"));
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let peer = if peers {
            let vs = r.vs_peer.map_or(String::new(), |x| format!("{x:.2}"));
            format!(" {} | {vs} |", r.peer)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio} | {} | {met} |{peer} {} |",
            r.figure, r.value, r.limit, r.target, r.runs
        );
    }
    out
}

/// One figure of a peer, formatted.
type PeerValue = Box<dyn Fn(&PeerFigures) -> String>;

/// The peers: what each is, whether it was measured (or why not), and its medians.
fn peers_section(options: &Options, f: &Figures) -> String {
    let mut md = String::from("\n## Peers\n\n");
    if !options.peers {
        md.push_str(
            "Not measured in this run: `make bench PEERS=1` (`--peers`) installs and measures \
             the other TUS servers beside the service.\n",
        );
        return md;
    }
    md.push_str(
        "Other TUS servers, measured in the same run with the same client and the same files \
         (`make bench PEERS=1`; installed by `scripts/bench-peers` into the tools cache, outside \
         the checkout). **Neither peer syncs what it writes**: a 204 from them means the bytes \
         were handed to the kernel, not that they are on disk; the service's 204 means they \
         are (`fdatasync`). The ratio column of the table above is the service's median over \
         the best peer's (above 1 is better for rates, below 1 for times and memory).\n\n",
    );
    for peer in &f.peers {
        let status = match &peer.unavailable {
            None => "measured".to_owned(),
            Some(why) if peer.one_patch.0.is_empty() && peer.small.rate.0.is_empty() => {
                format!("**not measured**: {why}")
            }
            Some(why) => format!("measured, then **left out**: {why}"),
        };
        let _ = writeln!(md, "- **{}** ({}): {status}", peer.kind, peer.label);
    }
    let measured: Vec<&PeerFigures> = f
        .peers
        .iter()
        .filter(|p| !p.one_patch.0.is_empty() || !p.small.rate.0.is_empty())
        .collect();
    if measured.is_empty() {
        return md;
    }
    let big = size(options.big);
    let mb_s = |s: &Samples| format!("{:.0} MB/s", s.median());
    let figures: Vec<(String, PeerValue)> = vec![
        (
            format!("One {big} PATCH"),
            Box::new(move |p| mb_s(&p.one_patch)),
        ),
        (
            format!("{big} as {} PATCHes", size(options.patch)),
            Box::new(move |p| mb_s(&p.chunked)),
        ),
        (
            format!("{big} as {} PATCHes", size(options.patch_small)),
            Box::new(move |p| mb_s(&p.chunked_small)),
        ),
        (
            format!("One {} PATCH", size(options.huge)),
            Box::new(move |p| mb_s(&p.huge)),
        ),
        (
            format!(
                "{} concurrent {} uploads, aggregate",
                options.concurrent,
                size(options.concurrent_size)
            ),
            Box::new(move |p| mb_s(&p.concurrent)),
        ),
        (
            format!(
                "{} small uploads, one keep-alive client",
                options.small_count
            ),
            Box::new(|p| format!("{:.0} uploads/s", p.small.rate.median())),
        ),
        (
            "… latency p50 / p99".to_owned(),
            Box::new(|p| {
                format!(
                    "{:.2} / {:.2} ms",
                    p.small.p50_ms.median(),
                    p.small.p99_ms.median()
                )
            }),
        ),
        (
            format!(
                "{} small uploads, a new `curl` process per request",
                options.small_count
            ),
            Box::new(|p| format!("{:.0} uploads/s", p.small_curl.rate.median())),
        ),
        (
            "… latency p50 / p99".to_owned(),
            Box::new(|p| {
                format!(
                    "{:.2} / {:.2} ms",
                    p.small_curl.p50_ms.median(),
                    p.small_curl.p99_ms.median()
                )
            }),
        ),
        (
            format!("Peak RSS (VmHWM) after the {big} PATCH"),
            Box::new(|p| size(p.rss_hwm.median() as u64)),
        ),
    ];
    md.push_str("\nMedians (every round is in the log below):\n\n| Figure |");
    for peer in &measured {
        let _ = write!(md, " {} |", peer.kind);
    }
    md.push_str("\n|---|");
    for _ in &measured {
        md.push_str("---:|");
    }
    md.push('\n');
    for (figure, value) in &figures {
        let _ = write!(md, "| {figure} |");
        for peer in &measured {
            let _ = write!(md, " {} |", value(peer));
        }
        md.push('\n');
    }
    let failures: Vec<String> = f
        .peers
        .iter()
        .flat_map(|p| {
            p.failures
                .iter()
                .map(move |(figure, e)| format!("- {}: {figure}: {e}", p.kind))
        })
        .collect();
    if !failures.is_empty() {
        md.push_str("\nMeasurements that failed (those rounds do not count):\n\n");
        for line in failures {
            md.push_str(&line);
            md.push('\n');
        }
    }
    md
}

fn markdown(
    options: &Options,
    f: &Figures,
    rows: &[Row],
    data_dir: &Path,
    load_before: &str,
    load_after: &str,
    elapsed: Duration,
) -> String {
    let mut md = String::from("# `make bench` results\n\n");
    let _ = writeln!(
        md,
        "Generated by `make bench` (`crates/bench`, issue #5). Medians of {} rounds; MB = 10⁶ bytes.\n",
        options.runs
    );
    md.push_str("## Machine\n\n");
    for (name, value) in machine(data_dir) {
        let _ = writeln!(md, "- **{name}**: {value}");
    }
    let server = match &options.server {
        // Relative to the checkout when inside it: the report names no machine's paths.
        ServerMode::Binary(path) => format!(
            "`{}` (child process)",
            path.strip_prefix(workspace_root())
                .unwrap_or(path)
                .display()
        ),
        ServerMode::InProcess => "in-process `roughy_server::Application`".to_owned(),
    };
    let _ = writeln!(
        md,
        "- **service**: {server}, embedded defaults, temporary `ROUGHY_DATA_DIR`"
    );
    if options.runs_scenario(Scenario::S3) {
        let _ = writeln!(
            md,
            "- **S3 rows**: the same service with `ROUGHY_STORAGE_URL=s3://{}/{}` on a local \
             s3s-fs (`scripts/s3s-fs run`, same disk), part size {}, {} parts in flight (its \
             defaults)",
            s3::BUCKET,
            s3::PREFIX,
            size(s3::PART_SIZE as u64),
            s3::PARTS_IN_FLIGHT
        );
    }
    let _ = writeln!(
        md,
        "- **load average** (1, 5, 15 min): {load_before} before, {load_after} after"
    );
    let _ = writeln!(md, "- **run time**: {:.0} s\n", elapsed.as_secs_f64());

    md.push_str("## Results\n\n");
    md.push_str(&table(rows));
    md.push_str("\nSequential write + fdatasync by mode and block size (median MB/s; rounds):\n\n");
    for ((mode, block), samples) in &f.disk {
        let _ = writeln!(
            md,
            "- {}, {}: {:.0} ({})",
            mode.label(),
            size(*block as u64),
            samples.median(),
            samples.list(0)
        );
    }
    if let Some((_, _, buffered)) = f.best_disk(&[WriteMode::Buffered]) {
        // The issue's literal limit: buffered writes only.
        let limit = buffered.median().min(f.sink_big.median());
        let _ = writeln!(
            md,
            "\nAgainst the buffered-only limit L' = {limit:.0} MB/s (the issue's `dd conv=fsync`): \
             one PATCH {:.2}, 16 MiB PATCHes {:.2}, concurrent {:.2}.",
            f.one_patch.median() / limit,
            f.chunked.median() / limit,
            f.concurrent.median() / limit
        );
    }
    let _ = writeln!(
        md,
        "\nSmall-upload latency rounds against the sink: p50 {} ms; p99 {} ms.",
        f.sink_small.p50_ms.list(2),
        f.sink_small.p99_ms.list(2)
    );
    md.push_str(&peers_section(options, f));
    md.push_str(METHOD);
    if options.runs_scenario(Scenario::S3) {
        md.push_str(S3_METHOD);
    }
    if options.peers {
        md.push_str(PEERS_METHOD);
    }
    md.push_str("\n## Rounds\n\nThe run's log: every measurement, with the CPU seconds the server and the client \
                 (this benchmark) spent against the wall time.\n\n```text\n");
    for line in &f.log {
        md.push_str(line);
        md.push('\n');
    }
    md.push_str("```\n");
    md
}

const METHOD: &str = "
## Method

- **Limit L** = min(best sequential write + `fdatasync`, the HTTP client to a discarding
  loopback sink). The write goes to the directory the service stages uploads in, is synced once
  at the end, and is deleted afterwards; it is measured through the page cache (`dd
  conv=fsync`, the issue's definition) and with `O_DIRECT` (`dd oflag=direct conv=fsync`, how
  the service writes), at several block sizes, and the best counts — the stricter limit. The
  ratios against the buffered-only limit are given under the table. The sink is a minimal
  raw-tokio HTTP/1.1 server (one 256 KiB read buffer per connection); the client is the same
  `reqwest` client, sending the same request with the same streamed body.
- Every round starts a fresh service process (so its `VmHWM` is the peak of that round's big
  PATCH), mints a key through `/admin/v1`, makes one small upload (the fresh process's first
  requests are not measured), and uploads generated WAV files (44-byte header, 16-bit stereo
  PCM noise). Each upload counts only once its asset is `ready` and the stored object has the
  size and SHA-256 that was sent; the asset is then deleted.
- Timings: a PATCH from sending its request to receiving its 204 (the service has synced the
  bytes by then, and finalised the upload on the last byte). Small uploads: `POST /v1/assets` +
  one PATCH, timed together, one after the other on one keep-alive connection; the sink answers
  the same two requests.
- Small uploads by a new client process per request: the same create + PATCH, each request
  a `curl` process (`--data-binary @file` from a file of the same bytes), one after the
  other, timed from spawning the first to the second's exit; the sink answers the same
  two processes. This is what a shell script or a one-shot client pays: a new connection and
  process per request, no keep-alive.
- The big size is also sent as 5 MiB PATCHes, tus-js-client's and Uppy's typical chunk size.
- Small uploads are also compared with the filesystem steps one durable upload takes, done
  directly on the same disk (no HTTP, no repository): the gap is the rest of the service's
  work per upload (repository round trips and commits, HTTP, and processing of the previous
  uploads running alongside).
- This machine is a VM: page-cache writes into pages the guest has not used yet cost a fault in
  the host each and run at a few hundred MB/s, while rewrites of freed pages run at GB/s. The
  buffered limit is measured at its best (each write reuses the pages the previous one freed,
  after a warm-up); the service writes with `O_DIRECT` and does not depend on it.
";

const S3_METHOD: &str = "- **S3 rows** (`scripts/s3s-fs run`, on by default when its
  `ROUGHY_TEST_S3_*` variables are set): each round first measures the limit **D**: the same
  `object_store` S3 client the service uses, configured alike, uploads the same 1 GiB straight
  to s3s-fs as a multipart upload of the service's part size, as many parts in flight as the
  service allows, each part a zero-copy list of the content's chunks; D = bytes / (create +
  all `put_part`s), which is what a PATCH's time covers (`complete_multipart` follows, timed
  apart in the log: the service completes it while processing). Then a fresh service process
  with its blobs in the same bucket takes one 1 GiB PATCH (peak RSS sampled; bound 64 MiB +
  part size × parts in flight) and 1 GiB as 16 MiB PATCHes. Each asset must become `ready`
  and its object (the bucket's file under `<prefix>/objects/`) must have the size and SHA-256
  sent; the smoke run downloads it through its presigned `download_url` instead.
";

const PEERS_METHOD: &str =
    "- **Peers** (`--peers`, `make bench PEERS=1`): `scripts/bench-peers install`
  installs @tus/server with @tus/file-store from npm (versions pinned by
  `bench/peers/package-lock.json`, run by our `bench/peers/tus-node-server.mjs`: a FileStore
  on a directory, path `/files`, no auth) and builds rustus from crates.io (`cargo install
  --locked`, default features), both once, into the tools cache. A peer that cannot be built
  or started is named above with the reason, and the run goes on without it. Each round,
  after the service's rows, each peer is started as a child process on a free loopback port
  with a fresh data directory on the same disk as the service's, takes one small upload
  (not measured), then the same uploads as the service (all but the S3 rows) from the same
  client code: a TUS creation `POST` (`Upload-Length`, `Tus-Resumable: 1.0.0`) instead of
  `POST /v1/assets`, then the same PATCHes; the curl rows spawn the same two curl processes
  per upload. An upload counts only once the file the peer stored (found by the upload's id
  in its data directory) has the size and SHA-256 that was sent; the file is then deleted.
  The peers only store the bytes (no processing, no database), and **do not sync them**
  (no `fsync`): they are not durable; the service is. rustus 0.5 reads each PATCH body
  whole into memory before writing it and refuses bodies over `--max-body-size` (256 KiB by
  default, which would refuse even the 1 MiB PATCH): it runs with that raised to the largest
  PATCH sent, so its peak RSS grows with the PATCH size.
";

/// The machine's description: CPU, cores, memory, kernel, disk, toolchain, date.
fn machine(data_dir: &Path) -> Vec<(&'static str, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .map_or("unknown".to_owned(), |kib| size(kib * 1024));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".to_owned(), |k| k.trim().to_owned());
    let df = command_output("df", &["-hT", &data_dir.to_string_lossy()])
        .and_then(|out| out.lines().last().map(str::to_owned))
        .map_or("unknown".to_owned(), |l| {
            l.split_whitespace().collect::<Vec<_>>().join(" ")
        });
    let rustc = command_output("rustc", &["--version"])
        .map_or("unknown".to_owned(), |v| v.trim().to_owned());
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    vec![
        ("date", date),
        ("CPU", format!("{cpu}, {cores} cores (nproc)")),
        ("memory", memory),
        ("kernel", kernel),
        ("disk (`df -hT` of the data directory)", format!("`{df}`")),
        ("rustc", rustc),
    ]
}

/// The load average (1, 5 and 15 minutes) from `/proc/loadavg`.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or("unknown".to_owned(), |l| {
        l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    })
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A byte count in binary units: `512 KiB`, `1 GiB`, `11.8 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    if (value - value.round()).abs() < 0.05 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(1 << 30), "1 GiB");
        assert_eq!(size(4 << 30), "4 GiB");
        assert_eq!(size(256 << 10), "256 KiB");
        assert_eq!(size(12_373_196), "11.8 MiB");
        assert_eq!(size(100), "100 B");
    }

    #[test]
    fn medians() {
        assert_eq!(Samples(vec![3.0, 1.0, 2.0]).median(), 2.0);
        assert_eq!(Samples(vec![4.0, 1.0, 2.0, 3.0]).median(), 2.5);
        assert!(Samples::default().median().is_nan());
    }
}
