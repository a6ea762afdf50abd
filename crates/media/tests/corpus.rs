//! Runs every file of the committed corpus (`tests/media/`, made by its `gen.sh`) through
//! sniffing (first 64 bytes only) and probing, against `tests/media/expected.tsv`.

// Test helpers outside `#[test]` functions: a missing fixture should panic loudly.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use roughy_app::ports::{BlobReader, MediaInspector, ProbeError};
use roughy_domain::MediaFormat;
use roughy_media::SymphoniaInspector;

/// How far a measured duration may be from the expected one.
const TOLERANCE_MS: u64 = 30;

/// A file as the blob store would hand it over.
struct FileReader {
    file: File,
    len: u64,
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for FileReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl BlobReader for FileReader {
    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

/// A reader whose storage fails after the first kilobyte.
struct FailingReader {
    inner: FileReader,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inner.file.stream_position()? >= 1024 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "store went away",
            ));
        }
        self.inner.read(buf)
    }
}

impl Seek for FailingReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl BlobReader for FailingReader {
    fn byte_len(&self) -> Option<u64> {
        self.inner.byte_len()
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/media")
}

fn open(path: &Path) -> FileReader {
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    FileReader { file, len }
}

fn head(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.truncate(64);
    bytes
}

/// One row of `expected.tsv`.
#[derive(Debug)]
struct Expected {
    file: String,
    /// The sniffed format; `None` when sniffing must reject the file.
    format: Option<MediaFormat>,
    duration_ms: Option<u64>,
    /// A probe failure code, `unsupported` (rejected at sniffing, not probed) or `None`.
    failure: Option<String>,
}

fn expected() -> Vec<Expected> {
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

#[tokio::test]
async fn every_corpus_file_sniffs_and_probes_as_expected() {
    let inspector = SymphoniaInspector::new();
    let rows = expected();
    assert!(
        rows.len() >= 20,
        "the corpus is missing: {}",
        corpus_dir().display()
    );
    let (mut measured, mut failed, mut rejected) = (0, 0, 0);
    let mut problems = Vec::new();

    for row in &rows {
        let path = corpus_dir().join(&row.file);
        let sniffed = inspector.sniff(&head(&path));
        if sniffed != row.format.map(sniff_family) {
            problems.push(format!(
                "{}: sniffed {sniffed:?}, expected {:?}",
                row.file, row.format
            ));
            continue;
        }
        if row.failure.as_deref() == Some("unsupported") {
            rejected += 1;
            continue;
        }
        // Files that sniffing rejects but that are still probed (to check the probe's own
        // verdict) are probed as the format their name claims.
        let as_format = sniffed.unwrap_or_else(|| {
            let ext = row.file.rsplit('.').next().unwrap();
            MediaFormat::from_extension(ext).unwrap()
        });
        let result = inspector.probe(Box::new(open(&path)), as_format).await;
        match (&row.failure, result) {
            (None, Ok(info)) => {
                let want = row.duration_ms.unwrap();
                let got = info.duration.millis();
                if got.abs_diff(want) > TOLERANCE_MS {
                    problems.push(format!("{}: {got} ms, expected {want} ms", row.file));
                } else if Some(info.format) != row.format {
                    problems.push(format!("{}: format {:?}", row.file, info.format));
                } else {
                    measured += 1;
                }
                println!("{:<32} {:>6} ms (expected {want})", row.file, got);
            }
            (Some(code), Err(ProbeError::Media(f))) if &f.code == code => {
                println!("{:<32} {} ({})", row.file, f.code, f.message);
                failed += 1;
            }
            (want, got) => problems.push(format!("{}: got {got:?}, expected {want:?}", row.file)),
        }
    }
    println!(
        "corpus: {} files, {measured} measured, {failed} failed as expected, {rejected} rejected at sniffing, {} problems",
        rows.len(),
        problems.len()
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Sniffing cannot see whether Matroska holds video: MKA files sniff as MKV.
fn sniff_family(format: MediaFormat) -> MediaFormat {
    if format == MediaFormat::Mka {
        MediaFormat::Mkv
    } else {
        format
    }
}

#[tokio::test]
async fn a_storage_failure_is_transient() {
    let inner = open(&corpus_dir().join("sine.wav"));
    let result = SymphoniaInspector::new()
        .probe(Box::new(FailingReader { inner }), MediaFormat::Wav)
        .await;
    assert!(
        matches!(result, Err(ProbeError::Transient(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn without_decoding_the_scan_still_measures() {
    let inspector = SymphoniaInspector::new().with_audio_decoding(false);
    let path = corpus_dir().join("sine.flac");
    let info = inspector
        .probe(Box::new(open(&path)), MediaFormat::Flac)
        .await
        .unwrap();
    assert!(info.duration.millis().abs_diff(3000) <= TOLERANCE_MS);
}
