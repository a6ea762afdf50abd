//! Runs every file of the committed corpus (`tests/media/`, made by its `gen.sh`) through
//! sniffing (first 64 bytes only) and probing, against `tests/media/expected.tsv`.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed expectation is the test's failure"
)]

mod common;

use std::io::{self, Read, Seek, SeekFrom};

use roughy_app::ports::{BlobReader, MediaInspector, ProbeError};
use roughy_domain::MediaFormat;
use roughy_media::SymphoniaInspector;

use common::{corpus_dir, open, print_summary, run_corpus, TOLERANCE_MS};

/// Every corpus file: every supported file within 30 ms of its exact duration, every broken
/// file `failed` with its code, every unsupported file rejected by sniffing its first 64
/// bytes. Prints one line per file and the summary line `media corpus: N passed, M failed`.
#[tokio::test]
async fn every_corpus_file_sniffs_and_probes_as_expected() {
    let (passed, problems) = run_corpus(&SymphoniaInspector::new()).await;
    print_summary("media corpus", passed, problems.len());
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A reader whose storage fails after the first kilobyte.
struct FailingReader {
    inner: std::fs::File,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inner.stream_position()? >= 1024 {
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
