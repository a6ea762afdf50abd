//! What the corpus tests share: the corpus, its table of expected results, and a file reader
//! standing in for the blob store.

// Test helpers: a missing fixture should panic loudly; the per-file lines are the report.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    dead_code,
    reason = "helpers shared by several test binaries, each using a part"
)]

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use roughy_app::ports::{MediaInspector, ProbeError};
use roughy_domain::MediaFormat;

/// How far a measured duration may be from the expected one.
pub const TOLERANCE_MS: u64 = 30;

/// The committed corpus.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/media")
}

/// A corpus file as the local blob store hands it over: the file itself.
pub fn open(path: &Path) -> File {
    File::open(path).unwrap()
}

/// The first chunk the contract decides from: the first 64 bytes.
pub fn head(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.truncate(64);
    bytes
}

/// One row of `expected.tsv`.
#[derive(Debug)]
pub struct Expected {
    pub file: String,
    /// The sniffed format; `None` when sniffing must reject the file.
    pub format: Option<MediaFormat>,
    pub duration_ms: Option<u64>,
    /// A probe failure code, `unsupported` (rejected at sniffing, not probed) or `None`.
    pub failure: Option<String>,
}

/// The rows of `expected.tsv`.
pub fn expected() -> Vec<Expected> {
    let table = std::fs::read_to_string(corpus_dir().join("expected.tsv")).unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "{line}");
            let dash = |s: &str| (s != "-").then(|| s.to_owned());
            Expected {
                file: cols[0].to_owned(),
                format: dash(cols[1]).map(|ext| {
                    MediaFormat::from_extension(&ext).unwrap_or_else(|| panic!("format {ext}"))
                }),
                duration_ms: dash(cols[2]).map(|ms| ms.parse().unwrap()),
                failure: dash(cols[3]),
            }
        })
        .collect()
}

/// The corpus files that `expected.tsv` does not list (every file must have a verdict).
pub fn unlisted(rows: &[Expected]) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "expected.tsv" && name != "gen.sh")
        .filter(|name| !rows.iter().any(|row| &row.file == name))
        .collect();
    names.sort();
    names
}

/// Runs one corpus file through sniffing (its first 64 bytes) and probing; `Err` describes
/// how it missed its row of `expected.tsv`.
pub async fn check(inspector: &dyn MediaInspector, row: &Expected) -> Result<String, String> {
    let path = corpus_dir().join(&row.file);
    let sniffed = inspector.sniff(&head(&path));
    if sniffed != row.format.map(sniff_family) {
        return Err(format!("sniffed {sniffed:?}, expected {:?}", row.format));
    }
    if row.failure.as_deref() == Some("unsupported") {
        return Ok("rejected at the first chunk".to_owned());
    }
    // Files that sniffing rejects but that are still probed (to check the probe's own
    // verdict) are probed as the format their name claims.
    let as_format = match sniffed {
        Some(format) => format,
        None => {
            let ext = row.file.rsplit('.').next().unwrap_or_default();
            MediaFormat::from_extension(ext).ok_or(format!("no format for .{ext}"))?
        }
    };
    let result = inspector.probe(Box::new(open(&path)), as_format).await;
    match (&row.failure, result) {
        (None, Ok(info)) => {
            let want = row.duration_ms.ok_or("no expected duration")?;
            let got = info.duration.millis();
            if got.abs_diff(want) > TOLERANCE_MS {
                Err(format!("{got} ms, expected {want} ms"))
            } else if Some(info.format) != row.format {
                Err(format!(
                    "format {:?}, expected {:?}",
                    info.format, row.format
                ))
            } else {
                Ok(format!("{got:>5} ms (expected {want})"))
            }
        }
        (Some(code), Err(ProbeError::Media(f))) if &f.code == code => {
            Ok(format!("{} ({})", f.code, f.message))
        }
        (want, got) => Err(format!("got {got:?}, expected {want:?}")),
    }
}

/// Sniffing cannot see whether Matroska holds video: MKA files sniff as MKV.
pub fn sniff_family(format: MediaFormat) -> MediaFormat {
    if format == MediaFormat::Mka {
        MediaFormat::Mkv
    } else {
        format
    }
}

/// Runs every corpus file through `inspector`, printing one line per file: the files that
/// passed, and a description of each one that did not.
pub async fn run_corpus(inspector: &dyn MediaInspector) -> (usize, Vec<String>) {
    run_corpus_except(inspector, &[]).await
}

/// [`run_corpus`] without the files named in `skip` (each must be a row of `expected.tsv`).
pub async fn run_corpus_except(
    inspector: &dyn MediaInspector,
    skip: &[&str],
) -> (usize, Vec<String>) {
    let rows = expected();
    for name in skip {
        assert!(
            rows.iter().any(|row| row.file == *name),
            "{name} is not in expected.tsv"
        );
    }
    assert!(
        rows.len() >= 20,
        "the corpus is missing: {}",
        corpus_dir().display()
    );
    let mut problems: Vec<String> = unlisted(&rows)
        .into_iter()
        .map(|name| format!("{name}: not listed in expected.tsv"))
        .collect();
    let mut passed = 0;
    for row in &rows {
        if skip.contains(&row.file.as_str()) {
            println!("skip {}", row.file);
            continue;
        }
        match check(inspector, row).await {
            Ok(verdict) => {
                passed += 1;
                println!("ok   {:<30} {verdict}", row.file);
            }
            Err(problem) => {
                println!("FAIL {:<30} {problem}", row.file);
                problems.push(format!("{}: {problem}", row.file));
            }
        }
    }
    (passed, problems)
}

/// Prints the summary line `<label>: N passed, M failed` where CI reads it: straight to the
/// process's stdout, past the test harness's capture (which keeps the per-file lines for a
/// failure or `--nocapture`), on a line of its own even when the harness has started one.
pub fn print_summary(label: &str, passed: usize, failed: usize) {
    let mut out = io::stdout().lock();
    // Nothing to do about a closed stdout.
    let _ = writeln!(out, "\n{label}: {passed} passed, {failed} failed");
    let _ = out.flush();
}
